"""The telemetry sources' errors: one class per way a read can go wrong, each carrying a one-line message.

The CLI maps them to exit codes (the integrator's choice; suggested): ``TelemetryUnreachable`` -> 4 (target
unreachable), ``TelemetryInputError`` -> 2 (usage or input error), ``TelemetryQueryError`` -> 2 as well (the source
answered, but not with counts we can use). Every message is a single line and never contains a secret: the HTTP layer
redacts bearer tokens and header values before it builds one (see ``httpget.Redactor``).
"""

from __future__ import annotations


class TelemetryError(Exception):
    """Base class: a telemetry source could not produce counts. ``str(exc)`` is one line."""


class TelemetryInputError(TelemetryError):
    """The caller's input is wrong: a bad time, selector, label, token file or log file."""


class TelemetryUnreachable(TelemetryError):
    """Nothing usable answered: connection refused, DNS failure, timeout, or a gateway error in front of it."""


class TelemetryQueryError(TelemetryError):
    """The source answered with an error (e.g. Prometheus 400 bad_data) or with something that is not its API."""

    def __init__(self, message: str, *, status: int | None = None, error_type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type


class TelemetryResponseTooLarge(TelemetryQueryError):
    """The answer exceeded the response-size bound (the Prometheus reader splits its window and retries)."""
