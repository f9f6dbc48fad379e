"""The state directory of one local mesh: ``state.json``, a lock, the xDS files and the logs.

Every process that changes the mesh (the supervisor, ``local weights``, ``local down``) does it under an exclusive
``flock`` on ``<state-dir>/lock`` and rewrites ``state.json`` atomically, so several commands and the supervisor
never interleave. Since ``state.json`` decides which PIDs ``down`` kills, everything here is owner-only:
directories 0700, files 0600, whatever the umask (setup.privatefs).

A rollout holds a second lock, ``<state-dir>/rollout.lock``, for its whole walk (``rollout_lock``): a second rollout,
or ``local weights``, on the same mesh is refused (exit 9) instead of moving the weights under the first one's
verdicts. It is an ``flock``, so it belongs to the open file: a rollout that is killed holds nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from splitproof.setup.errors import BusyError, NotRunningError, SetupError
from splitproof.setup.mesh.state import FORMAT, MeshState
from splitproof.setup.privatefs import open_private, private_dir, write_private
from splitproof.setup.proc import ProcRef
from splitproof.verifier.errors import InputError

STATE_ENV = "SPLITPROOF_STATE_DIR"
STATE_FILE = "state.json"
LOCK_FILE = "lock"
ROLLOUT_LOCK_FILE = "rollout.lock"


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


@contextlib.contextmanager
def rollout_lock(state_dir: Path, holder: str) -> Iterator[None]:
    """Hold the rollout lock of the mesh in ``state_dir`` (which must exist) while the block runs; ``holder`` (who
    and since when) is what a refused command prints. BusyError (exit 9) when another process holds it."""
    try:
        fd = open_private(state_dir / ROLLOUT_LOCK_FILE)
    except FileNotFoundError:  # `down` removed it since the mesh was found running
        raise NotRunningError(f"no local mesh is running in {state_dir}") from None
    try:
        _flock_or_busy(fd, fcntl.LOCK_EX, state_dir)
        os.ftruncate(fd, 0)
        os.write(fd, holder.encode("utf-8"))
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def refuse_during_rollout(state_dir: Path) -> None:
    """BusyError (exit 9) when a rollout holds the lock of the mesh in ``state_dir``; creates nothing."""
    try:
        fd = os.open(state_dir / ROLLOUT_LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return  # no rollout ever ran here (or no state dir at all: the command says so itself)
    try:
        _flock_or_busy(fd, fcntl.LOCK_SH, state_dir)
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _flock_or_busy(fd: int, operation: int, state_dir: Path) -> None:
    """``flock(operation)`` on the rollout lock without waiting; BusyError naming the holder when a rollout has it."""
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = (state_dir / ROLLOUT_LOCK_FILE).read_text(encoding="utf-8", errors="replace")[:200].strip()
        except OSError:
            holder = ""
        raise BusyError(f"a rollout is driving the local mesh in {state_dir}{f' ({holder})' if holder else ''}: "
                        "wait for it to end, or stop it (Ctrl-C) first") from None


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
