"""The process toolkit: every child this project starts, waits for, restarts or stops goes through here.

- ``python_argv``: the command line of every Python child (``python -P``: never imports from the caller's cwd).
- ``spawn``: start an argv (never a shell) in its own session, output to a log, optionally dying with its parent.
- ``ReadyLine`` / ``wait_ready``: the one reader of a child's ``READY <name> <host>:<port>`` line.
- ``wait_until``: the one poll loop -- a readiness predicate, a deadline, a growing (or steady) interval.
- ``Backoff``: the one restart delay (exponential, reset after a good run), like a kubelet's CrashLoopBackOff.
- ``stop`` / ``stop_all``: SIGTERM, then SIGKILL after a grace period; always reaped.
- ``ProcRef``: a process known by PID *and* start time, so a recycled PID is never signalled.

No fixed sleeps anywhere: every wait polls a predicate with a deadline.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from splitproof.setup.errors import WaitTimeoutError
from splitproof.setup.privatefs import open_private

T = TypeVar("T")
Child = subprocess.Popen[bytes]

# Python's "safe path" flag (3.11+): ``-m``/``-c`` do not put the current directory first on sys.path.
SAFE_PATH = "-P"
READY_RE = re.compile(r"^READY (\S+) (\S+):(\d+)$", re.M)
STOP_GRACE_S = 5.0

# Sets PR_SET_PDEATHSIG (1) = SIGTERM (Linux prctl(2)), checks the parent is still the one that started us (it
# may have died before the prctl), sets umask 077 (what the child creates is owner-only), then execs the real
# command: the child dies with its parent even when the parent is SIGKILLed.
_PDEATHSIG_EXEC = (
    "import ctypes,os,signal,sys\n"
    "ctypes.CDLL(None).prctl(1, signal.SIGTERM)\n"
    "os.getppid() == int(sys.argv[1]) or sys.exit(1)\n"
    "os.umask(0o077)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def python_argv(*args: str, python: str | None = None) -> list[str]:
    """The command line of every Python child this project starts: ``python -P ARGS``.

    ``python -m MODULE`` (and ``-c``) put the caller's working directory first on ``sys.path``, so a folder that
    holds a ``splitproof/`` package, a ``yaml.py`` or a ``grpc/`` would be imported -- executed -- by the child.
    ``-P`` leaves it out; everything else (PYTHONPATH, the venv's site-packages) is as usual. Locust re-inserts the
    working directory itself when it loads a locustfile: loadtest/boutique.py takes that entry out again.
    """
    return [python or sys.executable, SAFE_PATH, *args]


# ----------------------------------------------------------------------------------------------------- waiting


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.02, *,
               max_interval: float = 0.25) -> T:
    """Poll ``predicate`` until it returns something true and return that; WaitTimeoutError naming ``what`` after
    ``timeout`` seconds (the predicate gets one last look at the deadline).

    The pause starts at ``interval`` and grows by half each round up to ``max_interval``: local readiness is seen
    within milliseconds without spinning. ``max_interval=interval`` polls at a steady pace -- for predicates that
    are themselves expensive, like a ``kubectl`` or ``istioctl`` call against a cluster.
    """
    deadline = time.monotonic() + timeout
    delay = interval
    cap = max(interval, max_interval)
    while True:
        value = predicate()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(min(delay, remaining))
        delay = min(delay * 1.5, cap)


@dataclass
class Backoff:
    """The delay before restarting a crashed process: ``start`` seconds, doubling up to ``limit``; back to
    ``start`` once the process has stayed up longer than ``reset_after`` (a kubelet's CrashLoopBackOff)."""

    start: float = 0.2
    limit: float = 10.0
    reset_after: float = 10.0
    current: float = field(init=False)

    def __post_init__(self) -> None:
        self.current = self.start

    def next_delay(self) -> float:
        """The delay for this restart; the next one will be twice as long (up to ``limit``)."""
        delay = self.current
        self.current = min(self.current * 2, self.limit)
        return delay

    def ran_for(self, seconds: float) -> None:
        """The process has been up ``seconds``: after a long enough good run the next crash starts over."""
        if seconds > self.reset_after:
            self.current = self.start


# ---------------------------------------------------------------------------------------------------- starting


def spawn(argv: Sequence[str], *, log: Path | None = None, env: Mapping[str, str] | None = None,
          die_with_parent: bool = False, new_session: bool = True, inherit_output: bool = False,
          cwd: Path | None = None, on_start: Callable[[Child], None] | None = None) -> Child:
    """Start ``argv`` (a list, never a shell string) with stdout+stderr appended to ``log`` (created owner-only),
    discarded, or -- with ``inherit_output`` -- on our own stdout/stderr; in its own session unless told otherwise.

    ``die_with_parent``: the child gets SIGTERM when this process dies, even when it is SIGKILLed (an exec wrapper
    sets PR_SET_PDEATHSIG before exec'ing ``argv``), so a supervisor never leaves orphans.
    ``on_start`` receives the child before a Ctrl-C can interrupt us: in the main thread a SIGINT arriving between
    the fork and the callback is deferred (not lost) and re-raised once the child is registered, so a supervisor
    that cleans up on KeyboardInterrupt never misses a child that was being started at that instant.
    """
    command = list(argv)
    if die_with_parent:
        binary = command[0] if os.path.isabs(command[0]) else shutil.which(command[0]) or command[0]
        command = [sys.executable, "-I", "-S", "-c", _PDEATHSIG_EXEC, str(os.getpid()), binary, *command[1:]]
    out: Any = os.fdopen(open_private(log), "ab") if log else None if inherit_output else subprocess.DEVNULL
    deferred: list[int] = []
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: deferred.append(signum)) if in_main else None
    try:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=None if out is None else subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=new_session,
            cwd=cwd,
        )
        if on_start is not None:
            on_start(child)
        return child
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
            if deferred:
                signal.raise_signal(signal.SIGINT)
        if log:
            out.close()


def parse_ready(text: str, name: str) -> tuple[str, int] | None:
    """(host, port) from the first ``READY <name> <host>:<port>`` line in ``text``, or None."""
    for match in READY_RE.finditer(text):
        if match.group(1) == name:
            return match.group(2), int(match.group(3))
    return None


class ReadyLine:
    """A child's ``READY <name> <host>:<port>`` line in its log -- the one way a parent learns where a child it
    started on port 0 listens. Reads from where the log ended when this was made (before the child starts), so a
    restarted child appending to the same log is never mistaken for ready by its predecessor's line."""

    def __init__(self, log: Path, name: str) -> None:
        self.log = log
        self.name = name
        self.offset = log.stat().st_size if log.exists() else 0
        self.found: tuple[str, int] | None = None

    def poll(self) -> tuple[str, int] | None:
        """(host, port) once the line is there, else None (never raises)."""
        if self.found is None:
            try:
                with open(self.log, "rb") as fh:
                    fh.seek(self.offset)
                    self.found = parse_ready(fh.read().decode("utf-8", "replace"), self.name)
            except OSError:
                pass
        return self.found


def wait_ready(child: Child, ready: ReadyLine, timeout: float) -> tuple[str, int] | None:
    """Wait until ``child`` prints its READY line -- (host, port) -- or exits first (None). WaitTimeoutError after
    ``timeout`` seconds; the child is left running either way (the caller stops it)."""
    wait_until(lambda: ready.poll() is not None or child.poll() is not None, timeout,
               f"{ready.name} to print READY (log: {ready.log})")
    return ready.poll()


def log_tail(path: Path, lines: int = 3) -> str:
    """The last ``lines`` non-empty lines of a log, joined with `` | `` (for one-line error messages)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    kept = [line.strip() for line in text if line.strip()]
    return " | ".join(kept[-lines:])


# ---------------------------------------------------------------------------------------------------- stopping


def stop(child: Child | None, timeout: float = STOP_GRACE_S) -> None:
    """SIGTERM, wait up to ``timeout``, then SIGKILL; always reaps. Safe on an already-exited process."""
    if child is None:
        return
    if child.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=timeout)
    else:
        child.wait()


def stop_all(children: list[Child], timeout: float = STOP_GRACE_S) -> None:
    """Stop every child: SIGTERM to all at once (they shut down in parallel), then ``stop`` each, last started
    first, removing each from ``children`` once reaped. A Ctrl-C during the stop does not leave the rest running:
    the stop goes on, and KeyboardInterrupt is re-raised at the end."""
    for child in children:
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
    interrupted = False
    while children:
        try:
            stop(children[-1], timeout)
        except KeyboardInterrupt:
            interrupted = True
            continue
        children.pop()
    if interrupted:
        raise KeyboardInterrupt


# ------------------------------------------------------------------------------------- processes known by PID


def pid_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def start_ticks(pid: int) -> int | None:
    """The process start time (clock ticks after boot, /proc/<pid>/stat field 22), None when gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return int(fh.read().rsplit(") ", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


@dataclass(frozen=True)
class ProcRef:
    """A process recorded by PID and start time (another process reusing the PID has another start time)."""

    pid: int
    ticks: int | None = None

    @classmethod
    def of(cls, pid: int) -> ProcRef:
        return cls(pid, start_ticks(pid))

    @classmethod
    def from_json(cls, data: Any) -> ProcRef | None:
        """From ``{"pid": N, "ticks": T}`` (None for no or a null pid)."""
        if not isinstance(data, Mapping) or not data.get("pid"):
            return None
        ticks = data.get("ticks")
        return cls(int(data["pid"]), None if ticks is None else int(ticks))

    def to_json(self) -> dict[str, int | None]:
        return {"pid": self.pid, "ticks": self.ticks}

    def alive(self) -> bool:
        """True when the recorded process is still the one running under that PID (and is not a zombie)."""
        if not pid_alive(self.pid):
            return False
        return self.ticks is None or start_ticks(self.pid) == self.ticks

    def terminate(self, timeout: float = STOP_GRACE_S) -> bool:
        """SIGTERM, SIGKILL after ``timeout``; True when it is gone. Never signals a recycled PID."""
        for sig, grace in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
            if not self.alive():
                return True
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
            with contextlib.suppress(WaitTimeoutError):
                wait_until(self._gone, grace, f"pid {self.pid} to exit", 0.01, max_interval=0.1)
        return not self.alive()

    def _gone(self) -> bool:
        with contextlib.suppress(ChildProcessError, OSError):  # a zombie child of ours would look alive to kill(0)
            os.waitpid(self.pid, os.WNOHANG)
        return not self.alive()
