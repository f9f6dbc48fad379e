"""The state directory of one local mesh: ``state.json``, a lock, the xDS files and the logs.

Every process that changes the mesh (the supervisor, ``local weights``, ``local down``) does it under an exclusive
``flock`` on ``<state-dir>/lock`` and rewrites ``state.json`` atomically, so several commands and the supervisor
never interleave. Processes are recorded as (pid, start time in clock ticks) so a recycled PID is never killed.
Since ``state.json`` decides which PIDs ``down`` kills, everything here is owner-only: directories 0700, files
0600, whatever the umask (setup.privatefs).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from splitproof.setup.errors import SetupError
from splitproof.setup.mesh.envoy import atomic_write
from splitproof.setup.privatefs import open_private, private_dir
from splitproof.setup.proc import pid_alive
from splitproof.verifier.errors import InputError

STATE_ENV = "SPLITPROOF_STATE_DIR"
STATE_FILE = "state.json"
LOCK_FILE = "lock"
FORMAT = 1


def default_state_dir() -> Path:
    """$SPLITPROOF_STATE_DIR, else ``.splitproof/local`` in the current directory."""
    env = os.environ.get(STATE_ENV)
    return Path(env) if env else Path.cwd() / ".splitproof" / "local"


def prepare_state_dir(state_dir: Path) -> None:
    """Create the state directory owner-only (setup.privatefs) and check it can be written: InputError (one line,
    exit 3: a bad --state-dir) when it cannot -- before anything is started."""
    try:
        private_dir(state_dir)
        os.close(open_private(state_dir / LOCK_FILE))
    except OSError as exc:
        raise InputError(f"--state-dir {state_dir}: cannot create or write it ({exc.strerror or exc})") from None


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Exclusive lock on the state directory (between processes and between threads: one open() per holder)."""
    private_dir(state_dir)
    fd = open_private(state_dir / LOCK_FILE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def read_state(state_dir: Path) -> dict[str, Any] | None:
    """The mesh's state, or None when there is none. SetupError when it is unreadable."""
    path = state_dir / STATE_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SetupError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        state = json.loads(text)
    except ValueError:
        raise SetupError(f"{path} is corrupt (not JSON); remove it after checking nothing is running") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise SetupError(f"{path} was written by another version of splitproof; remove it")
    return state


def write_state(state_dir: Path, state: dict[str, Any]) -> None:
    private_dir(state_dir)
    atomic_write(state_dir / STATE_FILE, json.dumps(state, indent=1) + "\n")


def remove_state(state_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (state_dir / STATE_FILE).unlink()


def start_ticks(pid: int) -> int | None:
    """The process start time (clock ticks after boot, /proc/<pid>/stat field 22), None when gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return int(fh.read().rsplit(") ", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def proc_ref(pid: int) -> dict[str, int | None]:
    return {"pid": pid, "ticks": start_ticks(pid)}


def same_process(ref: dict[str, Any] | None) -> bool:
    """True when the recorded process is still the one running under that PID (and is not a zombie)."""
    if not ref or not ref.get("pid"):
        return False
    pid = int(ref["pid"])
    if not pid_alive(pid):
        return False
    ticks = ref.get("ticks")
    return ticks is None or start_ticks(pid) == ticks


def terminate(ref: dict[str, Any] | None, timeout: float = 5.0) -> bool:
    """SIGTERM the recorded process, SIGKILL after ``timeout``; True when it is gone. Never a recycled PID."""
    if not same_process(ref):
        return True
    assert ref is not None
    pid = int(ref["pid"])
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        delay = 0.01
        while time.monotonic() < deadline:
            _reap(pid)
            if not same_process(ref):
                return True
            time.sleep(delay)
            delay = min(delay * 1.5, 0.1)
    return not same_process(ref)


def _reap(pid: int) -> None:
    """Reap ``pid`` if it is our child (a zombie child of ours would look alive to kill(0))."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
