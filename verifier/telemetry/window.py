"""Time windows for passive verification: ``--since`` / ``--until`` values and the window they make.

A time is one of (pure functions, ``now`` passed in):

* unix seconds: ``1764110000`` or ``1764110000.25``;
* RFC 3339 (https://www.rfc-editor.org/rfc/rfc3339#section-5.6) with a zone: ``2025-11-25T22:10:00Z``,
  ``2025-11-25T23:10:00.5+01:00`` (a lower-case ``t``/``z`` and a space instead of ``T`` are accepted, as RFC 3339
  section 5.6 allows; a time without a zone is refused: it would silently depend on the machine's zone);
* a duration back from now, in Prometheus' duration syntax
  (https://prometheus.io/docs/prometheus/latest/querying/basics/#time-durations): ``10m``, ``1h30m``, ``90s``,
  ``1500ms``, ``2d``, ``1w`` -- units ms, s, m, h, d, w, each at most once, largest first;
* ``now``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime

from splitproof.verifier.telemetry.errors import TelemetryInputError

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_ORDER = ("w", "d", "h", "m", "s", "ms")
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_NUMBER = re.compile(r"[+]?\d+(\.\d+)?")
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")


@dataclass(frozen=True, slots=True)
class Window:
    """The half-open interval ``(since, until]`` in unix seconds.

    Prometheus counts: a counter sample at exactly ``since`` is the baseline, samples in ``(since, until]`` count.
    Access logs: a request counts when its start time is in ``[since, until)``. Envoy snapshots: the two snapshot
    times."""

    since: float
    until: float

    @property
    def seconds(self) -> float:
        return self.until - self.since

    def describe(self) -> str:
        return f"{_iso(self.since)} .. {_iso(self.until)} ({format_duration(self.seconds)})"


def _iso(t: float) -> str:
    if not math.isfinite(t):
        return str(t)
    return datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus-style duration (``1h30m`` -> 5400.0). Raises TelemetryInputError."""
    s = text.strip()
    if not s:
        raise TelemetryInputError("empty duration")
    pos, total, last_rank = 0, 0, -1
    for m in _DURATION.finditer(s):
        if m.start() != pos:
            break
        rank = _ORDER.index(m.group(2))
        if rank <= last_rank:
            raise TelemetryInputError(f"duration {text!r}: units must go from largest to smallest, each once")
        last_rank = rank
        total += int(m.group(1)) * _UNITS_MS[m.group(2)]
        pos = m.end()
    if pos != len(s):
        raise TelemetryInputError(f"not a duration: {text!r} (e.g. 90s, 10m, 1h30m, 2d)")
    return total / 1000.0


def format_duration(seconds: float) -> str:
    """``5400`` -> ``1h30m``; sub-second remainders in ms."""
    ms = round(seconds * 1000)
    if ms <= 0:
        return "0s"
    out = []
    for unit in _ORDER:
        n, ms = divmod(ms, _UNITS_MS[unit])
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)


def parse_time(text: str, now: float) -> float:
    """Unix seconds for ``text`` (unix seconds, RFC 3339 with a zone, a duration back from ``now``, or ``now``)."""
    s = text.strip()
    if not s:
        raise TelemetryInputError("empty time")
    if s.lower() == "now":
        return float(now)
    if _NUMBER.fullmatch(s):
        value = float(s)
        if value > 1e11:  # a millisecond timestamp passed by mistake would land in the year 5000+
            raise TelemetryInputError(f"time {text!r} looks like milliseconds; give unix seconds")
        return value
    if _RFC3339.fullmatch(s):
        try:
            return datetime.fromisoformat(s.upper().replace(" ", "T")).timestamp()
        except ValueError as exc:
            raise TelemetryInputError(f"bad RFC 3339 time {text!r}: {exc}") from None
    if re.fullmatch(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d(:\d\d(\.\d+)?)?", s):
        raise TelemetryInputError(f"time {text!r} has no zone: add Z (UTC) or an offset such as +01:00")
    try:
        return float(now) - parse_duration(s)
    except TelemetryInputError:
        raise TelemetryInputError(f"not a time: {text!r} (unix seconds, RFC 3339 such as 2025-11-25T22:10:00Z, "
                                  "or a duration back from now such as 10m or 1h30m)") from None


def resolve_window(since: str, until: str | None, now: float) -> Window:
    """The window for ``--since`` / ``--until`` (``until`` defaults to now). Refuses an empty or inverted window
    and one that ends in the future (counts for the future would silently be missing)."""
    start = parse_time(since, now)
    end = float(now) if until is None else parse_time(until, now)
    if end > now + 1.0:
        raise TelemetryInputError(f"--until {until} is in the future ({format_duration(end - now)} from now)")
    if start >= end:
        raise TelemetryInputError(f"empty window: --since ({_iso(start)}) is not before --until ({_iso(end)})")
    return Window(start, end)
