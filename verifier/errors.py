"""The errors a user can cause or meet, each carrying its exit code from :mod:`verifier.exitcodes`.

Both commands print such an error as one line and exit with its code -- never a traceback. ``canary-setup`` adds
its own (setup/errors.py) on the same base class.
"""

from __future__ import annotations

from splitproof.verifier.exitcodes import ExitCode


class SplitproofError(Exception):
    """A failure to report as one line with the exit code of its kind."""

    exit_code: ExitCode = ExitCode.FAIL

    def __init__(self, message: str, exit_code: ExitCode | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class InputError(SplitproofError, ValueError):
    """A user mistake: a bad option, file, YAML document, manifest or unsupported Istio field (exit 2)."""

    exit_code = ExitCode.USAGE


class Unreachable(SplitproofError, RuntimeError):
    """Something the command must talk to (a target, the Kubernetes API, Prometheus, a cluster) cannot be
    reached (exit 4)."""

    exit_code = ExitCode.UNREACHABLE
