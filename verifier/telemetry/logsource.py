"""Per-version request counts from Istio sidecar access logs (a file, or ``-`` for stdin), streamed.

Only *client-side* lines count for the split: a line whose upstream cluster is ``outbound|PORT|SUBSET|HOST`` for the
service was written by the caller's sidecar at the moment it routed the request, and names the subset it chose.
Server-side lines (``inbound|...``) only show that a request arrived -- after routing, and once per attempt -- so
they are skipped (and counted as such). Of the outbound lines for the service, a request with no subset (the
whole-service cluster) is unattributed; so is an unparseable line that names the service host (it may be one of
its requests). Everything else -- other services, inbound lines, TCP connection lines, the proxy's own log lines,
lines outside the window, overlong lines -- is ``skipped`` by reason, never silently dropped.

Window: a request counts when its ``start_time`` is in ``[since, until)``. ``kubectl logs --since=10m`` selects by
the time the line was *written* (the request's end), so give the window here as well.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from splitproof.verifier.telemetry.accesslog import AccessLogEntry, Rejected, parse_line
from splitproof.verifier.telemetry.clusters import Service
from splitproof.verifier.telemetry.errors import TelemetryInputError
from splitproof.verifier.telemetry.latency import DurationBuckets
from splitproof.verifier.telemetry.result import CountsBuilder, TelemetryCounts
from splitproof.verifier.telemetry.window import Window

MAX_LINE = 64 * 1024  # an Istio access-log line is a few hundred bytes; a longer one is not one


@dataclass(frozen=True, slots=True)
class Line:
    number: int
    text: str | None  # None: longer than the bound (skipped, counted)


def read_lines(stream: BinaryIO, max_line: int = MAX_LINE) -> Iterator[Line]:
    """Lines of a binary stream (UTF-8, undecodable bytes replaced), each bounded to ``max_line`` bytes: the rest
    of an overlong line is read and discarded in bounded pieces, never held."""
    number = 0
    while True:
        raw = stream.readline(max_line + 1)
        if not raw:
            return
        number += 1
        if len(raw) > max_line and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):
                raw = stream.readline(max_line + 1)
            yield Line(number, None)
            continue
        yield Line(number, raw.rstrip(b"\r\n").decode("utf-8", "replace"))


@contextmanager
def open_log(path: str) -> Iterator[BinaryIO]:
    """``-`` is stdin; a file is opened for binary reading (a missing file -> TelemetryInputError)."""
    if path == "-":
        yield sys.stdin.buffer
        return
    try:
        fh = open(path, "rb")  # noqa: SIM115 -- closed below
    except FileNotFoundError:
        raise TelemetryInputError(f"access log {path}: no such file") from None
    except IsADirectoryError:
        raise TelemetryInputError(f"access log {path}: is a directory") from None
    except PermissionError:
        raise TelemetryInputError(f"access log {path}: permission denied") from None
    with fh:
        yield fh


class LogTally:
    """Streaming tally of access-log lines for one service (feed lines, then ``result``)."""

    def __init__(self, service: Service, window: Window | None = None) -> None:
        self.service = service
        self.window = window
        self.builder = CountsBuilder()
        self.durations: dict[str, DurationBuckets] = {}
        self.first_bad: tuple[int, str] | None = None
        self.lines = 0
        self.t_min: float | None = None
        self.t_max: float | None = None

    def feed_line(self, line: Line) -> None:
        self.lines += 1
        skipped = self.builder.skipped
        if line.text is None:
            skipped["overlong lines"] += 1
            return
        if not line.text.strip():
            return
        parsed = parse_line(line.text)
        if isinstance(parsed, Rejected):
            self._rejected(line, parsed)
            return
        self.feed_entry(parsed)

    def _rejected(self, line: Line, rejected: Rejected) -> None:
        if rejected.kind == "other":
            self.builder.skipped["non-access-log lines (the proxy's own log)"] += 1
            return
        if self.first_bad is None:
            self.first_bad = (line.number, rejected.reason)
        if rejected.kind == "malformed" and f"|{self.service.fqdn}" in (line.text or ""):
            self.builder.add(None, 1, cause="unparseable access-log line naming the service")
        elif rejected.kind == "envoy-default":
            self.builder.skipped["lines in Envoy's default format (no upstream cluster)"] += 1
        else:
            self.builder.skipped["unparseable lines"] += 1

    def feed_entry(self, entry: AccessLogEntry) -> None:
        skipped = self.builder.skipped
        if entry.is_tcp:
            skipped["TCP connection lines"] += 1
            return
        cluster = entry.cluster
        if cluster is None:
            if entry.upstream_cluster is None and entry.authority and self._names_service(entry.authority):
                if self._in_window(entry):
                    self.builder.add(None, 1, entry.status,
                                     f"no upstream cluster (response_flags {entry.response_flags})")
            else:
                skipped["lines for other upstreams"] += 1
            return
        if cluster.direction == "inbound":
            skipped["inbound lines (server side: not the routing decision)"] += 1
            return
        attributed = self.service.cluster_version(cluster)   # the subset, or a Gateway API version Service's version
        if attributed is None:
            skipped["outbound lines for other services"] += 1
            return
        if not self._in_window(entry):
            return
        version, cause = attributed
        if version is None:
            self.builder.add(None, 1, entry.status, cause)
            return
        self.builder.add(version, 1, entry.status)
        if entry.duration_ms is not None:
            self.durations.setdefault(version, DurationBuckets()).add(entry.duration_ms)

    def _names_service(self, authority: str) -> bool:
        host = authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority
        svc = self.service
        return host in (svc.fqdn, svc.name, f"{svc.name}.{svc.namespace}", f"{svc.name}.{svc.namespace}.svc")

    def _in_window(self, entry: AccessLogEntry) -> bool:
        t = entry.start_time
        self.t_min = t if self.t_min is None else min(self.t_min, t)
        self.t_max = t if self.t_max is None else max(self.t_max, t)
        if self.window is not None and not self.window.since <= t < self.window.until:
            self.builder.skipped["lines of the service outside the window"] += 1
            return False
        return True

    def result(self, source: str) -> TelemetryCounts:
        b = self.builder
        b.note("client-side (outbound) lines only: they name the subset the caller's proxy routed to")
        for reason, n in sorted(b.skipped.items()):
            b.note(f"{n} {reason} skipped")
        if self.first_bad is not None:
            b.note(f"first unparseable line: {self.first_bad[0]} ({self.first_bad[1]})")
        window = self.window
        if window is None:
            window = Window(self.t_min or 0.0, (self.t_max or 0.0) + 0.001)
        latency = {v: d.freeze() for v, d in sorted(self.durations.items())}
        if not b.counts and not b.unattributed:
            where = f" in the window {self.window.describe()}" if self.window else ""
            b.note(f"no requests of {self.service.fqdn} in the log{where}")
        return b.build(window, f"{source}: {self.lines} lines, outbound to {self.service.fqdn} by subset",
                       latency, empty_note=False)


def tally_lines(lines: Iterable[Line], service: Service, window: Window | None = None,
                source: str = "access log") -> TelemetryCounts:
    tally = LogTally(service, window)
    for line in lines:
        tally.feed_line(line)
    return tally.result(source)


def count_access_log(path: str, service: Service, window: Window | None = None,
                     max_line: int = MAX_LINE) -> TelemetryCounts:
    """Counts from the log at ``path`` (``-``: stdin) in ``window`` (None: every line)."""
    with open_log(path) as stream:
        return tally_lines(read_lines(stream, max_line), service, window,
                           "access log " + ("(stdin)" if path == "-" else path))


def entries(lines: Iterable[Line]) -> Iterator[AccessLogEntry]:
    """Every parsed entry (for a health judge that wants the lines themselves)."""
    for line in lines:
        if line.text:
            parsed = parse_line(line.text)
            if isinstance(parsed, AccessLogEntry):
                yield parsed

