"""Process and readiness helpers shared by the launchers, the local mesh and the tests.

No fixed sleeps: every wait polls a readiness predicate with a deadline.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from splitproof.setup.errors import WaitTimeoutError

LOOPBACK = "127.0.0.1"

# Python's "safe path" flag (3.11+): ``-m``/``-c`` do not put the current directory first on sys.path.
SAFE_PATH = "-P"


def python_argv(*args: str, python: str | None = None) -> list[str]:
    """The command line of every Python child this project starts: ``python -P ARGS``.

    ``python -m MODULE`` (and ``-c``) put the caller's working directory first on ``sys.path``, so a folder that
    holds a ``splitproof/`` package, a ``yaml.py`` or a ``grpc/`` would be imported -- executed -- by the child.
    ``-P`` leaves it out; everything else (PYTHONPATH, the venv's site-packages) is as usual. Locust re-inserts the
    working directory itself when it loads a locustfile: loadtest/boutique.py takes that entry out again.
    """
    return [python or sys.executable, SAFE_PATH, *args]


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> None:
    """Poll ``predicate`` until it is true; raise WaitTimeoutError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise WaitTimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def bindable(host: str, port: int) -> bool:
    """True when a server could listen on ``host:port`` now (SO_REUSEADDR, as servers and Envoy set it: a socket
    in TIME_WAIT does not count as taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def http_ok(url: str, timeout: float = 0.5) -> bool:
    """True when GET ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 -- loopback URLs we built
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def grpc_healthy(address: str, service: str = "", timeout: float = 0.5) -> bool:
    """True when the standard grpc.health.v1 Check on ``address`` says SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        with grpc.insecure_channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
            return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


def start(argv: Sequence[str], *, env: dict[str, str] | None = None, log: Path | None = None,
          new_session: bool = True, inherit_output: bool = False,
          on_start: Callable[[subprocess.Popen[bytes]], None] | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv`` (a list, never a shell string) with stdout/stderr to ``log`` (or discarded, or -- with
    ``inherit_output`` -- to our own stdout/stderr).

    ``on_start`` receives the child before a Ctrl-C can interrupt us: in the main thread a SIGINT arriving between
    the fork and the callback is deferred (not lost) and re-raised once the child is registered, so a supervisor
    that cleans up on KeyboardInterrupt never misses a child that was being started at that instant.
    """
    out = open(log, "ab") if log else None if inherit_output else subprocess.DEVNULL  # noqa: SIM115
    deferred: list[int] = []
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: deferred.append(signum)) if in_main else None
    try:
        child = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=None if out is None else subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=new_session,
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
            out.close()  # type: ignore[union-attr]


def stop(proc: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> None:
    """SIGTERM, wait up to ``timeout``, then SIGKILL; always reaps. Safe on an already-exited process."""
    if proc is None:
        return
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    else:
        proc.wait()


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
