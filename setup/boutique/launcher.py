"""Start boutique services as child processes: ``spawn`` one (waiting for its READY line), or a ``ServiceGroup``
started together and always stopped together. Each child runs ``python -P -m splitproof.setup.boutique``
(setup.boutique.serve) in its own session; stopping escalates from SIGTERM to SIGKILL (setup.proc)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from splitproof.setup import proc
from splitproof.setup.boutique import SERVICES
from splitproof.setup.errors import PortInUseError, SetupError
from splitproof.verifier.exitcodes import ExitCode

START_TIMEOUT_S = 20.0


@dataclass
class Spawned:
    """A boutique service running as a child process."""

    service: str
    proc: proc.Child
    host: str
    port: int
    log: Path

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = proc.STOP_GRACE_S) -> int:
        """SIGTERM (then SIGKILL after ``timeout``); returns the exit code."""
        proc.stop(self.proc, timeout)
        return int(self.proc.returncode)


def service_argv(service: str, args: Sequence[str] = (), python: str | None = None) -> list[str]:
    return proc.python_argv("-m", "splitproof.setup.boutique", service, *args, python=python)


def spawn(service: str, args: Sequence[str] = (), *, log: Path, env: Mapping[str, str] | None = None,
          timeout: float = START_TIMEOUT_S, python: str | None = None,
          on_start: Callable[[proc.Child], None] | None = None, argv: Sequence[str] | None = None) -> Spawned:
    """Start ``service`` as a child (stdout+stderr to ``log``), wait for its READY line, return where it listens.

    ``args`` are the service's own options (default ``--port 0`` when no port is given); ``argv`` replaces the
    whole command (a benchmark running a patched server) -- it must print the same READY line. The child runs in
    its own session; the caller must ``stop()`` it (``on_start`` receives the Popen as soon as it exists, so a
    supervisor can stop it even if this call is interrupted). Raises PortInUseError/SetupError (child stopped)
    when it fails.
    """
    if service not in SERVICES:
        raise SetupError(f"unknown boutique service {service!r} (one of {', '.join(SERVICES)})", ExitCode.USAGE)
    command = list(argv) if argv is not None else service_argv(service, args, python)
    if argv is None and "--port" not in args and not (env and "PORT" in env):
        command += ["--port", "0"]
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(b"")
    ready = proc.ReadyLine(log, service)
    child = proc.spawn(command, env=dict(env or {}), log=log, on_start=on_start)
    try:
        found = proc.wait_ready(child, ready, timeout)
    except BaseException:
        proc.stop(child)
        raise
    if found is None:
        code = child.wait()
        detail = proc.log_tail(log, 1) or "no output"
        if code == PortInUseError.exit_code:
            raise PortInUseError(f"{service} could not bind: {detail}")
        raise SetupError(f"{service} exited with code {code} before it was ready: {detail}")
    host, port = found
    return Spawned(service, child, host, port, log)


class ServiceGroup:
    """Boutique services started together and always stopped together (a context manager).

    >>> with ServiceGroup(Path("logs")) as group:
    ...     catalog = group.start("catalog")
    ...     recs = group.start("recommendation", ["--catalog-addr", catalog.addr])
    """

    def __init__(self, logs: Path, timeout: float = START_TIMEOUT_S) -> None:
        self.logs = logs
        self.timeout = timeout
        self.services: list[Spawned] = []
        self._children: list[proc.Child] = []

    def start(self, service: str, args: Sequence[str] = (), *, name: str | None = None,
              env: Mapping[str, str] | None = None) -> Spawned:
        """Spawn ``service`` (log ``<logs>/<name or service>.log``) and wait for READY."""
        spawned = spawn(service, args, log=self.logs / f"{name or service}.log", env=env, timeout=self.timeout,
                        on_start=self._children.append)
        self.services.append(spawned)
        return spawned

    def stop(self) -> None:
        proc.stop_all(self._children)

    def __enter__(self) -> ServiceGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
