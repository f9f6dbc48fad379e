"""The telemetry sources' errors: one class per way a read can go wrong, each carrying a one-line message -- on the
shared hierarchy of :mod:`verifier.errors`, so each carries its exit code (README "Exit codes"):

* ``TelemetryInputError`` -- an :class:`~verifier.errors.InputError` (exit 2): a bad time, selector, label, token
  file or log file;
* ``TelemetryQueryError`` -- also an InputError (exit 2): the source answered, but not with counts we can use;
* ``TelemetryUnreachable`` -- an :class:`~verifier.errors.Unreachable` (exit 4): nothing usable answered.

Every message is a single line and never contains a secret: the HTTP layer redacts bearer tokens and header values
before it builds one (:class:`verifier.redact.Redactor`).
"""

from __future__ import annotations

from splitproof.verifier.errors import InputError, SplitproofError, Unreachable
from splitproof.verifier.exitcodes import ExitCode


class TelemetryError(SplitproofError):
    """Base class: a telemetry source could not produce counts. ``str(exc)`` is one line."""


class TelemetryInputError(TelemetryError, InputError):
    """The caller's input is wrong: a bad time, selector, label, token file or log file."""

    exit_code = ExitCode.USAGE


class TelemetryUnreachable(TelemetryError, Unreachable):
    """Nothing usable answered: connection refused, DNS failure, timeout, or a gateway error in front of it."""

    exit_code = ExitCode.UNREACHABLE


class TelemetryQueryError(TelemetryError, InputError):
    """The source answered with an error (e.g. Prometheus 400 bad_data) or with something that is not its API."""

    exit_code = ExitCode.USAGE

    def __init__(self, message: str, *, status: int | None = None, error_type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type


class TelemetryResponseTooLarge(TelemetryQueryError):
    """The answer exceeded the response-size bound (the Prometheus reader splits its window and retries)."""
