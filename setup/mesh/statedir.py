"""The state directory of one local mesh: ``state.json``, a lock, the xDS files and the logs.

Every process that changes the mesh (the supervisor, ``local weights``, ``local down``) does it under an exclusive
``flock`` on ``<state-dir>/lock`` and rewrites ``state.json`` atomically, so several commands and the supervisor
never interleave. Since ``state.json`` decides which PIDs ``down`` kills, everything here is owner-only:
directories 0700, files 0600, whatever the umask (setup.privatefs).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from splitproof.setup.errors import SetupError
from splitproof.setup.mesh.state import FORMAT, MeshState
from splitproof.setup.privatefs import open_private, private_dir, write_private
from splitproof.setup.proc import ProcRef
from splitproof.verifier.errors import InputError

STATE_ENV = "SPLITPROOF_STATE_DIR"
STATE_FILE = "state.json"
LOCK_FILE = "lock"


def default_state_dir() -> Path:
    """$SPLITPROOF_STATE_DIR, else ``.splitproof/local`` in the current directory."""
    env = os.environ.get(STATE_ENV)
    return Path(env) if env else Path.cwd() / ".splitproof" / "local"


def prepare_state_dir(state_dir: Path) -> None:
    """Create the state directory owner-only (setup.privatefs) and check it can be written: InputError (one line,
    exit 2: a bad --state-dir) when it cannot -- before anything is started."""
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


def read_state(state_dir: Path) -> MeshState | None:
    """The mesh's state, or None when there is none. SetupError (one line saying what to do) when it is unreadable,
    corrupt, or written by another version of splitproof."""
    path = state_dir / STATE_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SetupError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise SetupError(f"{path} is corrupt (not JSON); remove it after checking nothing is running") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SetupError(_other_version(path, data))
    try:
        return MeshState.from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise SetupError(f"{path} is corrupt (not a local mesh state); remove it after checking nothing is "
                         f"running") from None


def _other_version(path: Path, data: object) -> str:
    """What to do with a state file another version wrote: whether its supervisor still runs decides."""
    found = data.get("format") if isinstance(data, dict) else None
    what = f"{path} was written by another version of splitproof (state format {found!r}, this one reads {FORMAT})"
    supervisor = ProcRef.from_json(data.get("supervisor")) if isinstance(data, dict) else None
    if supervisor is not None and supervisor.alive():
        return (f"{what}, and its supervisor (pid {supervisor.pid}) still runs: stop it with the version that "
                f"started it, or kill it, then remove {path}")
    return f"{what}; no supervisor of it is running: remove {path}"


def write_state(state_dir: Path, state: MeshState) -> None:
    private_dir(state_dir)
    write_private(state_dir / STATE_FILE, json.dumps(state.to_json(), indent=1) + "\n")


def remove_state(state_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (state_dir / STATE_FILE).unlink()
