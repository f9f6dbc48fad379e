"""Per-version request counts from an Envoy admin endpoint: the difference between two stats snapshots.

``--envoy-admin URL``: a local mesh proxy, or a sidecar's admin (``kubectl port-forward POD 15000`` /
``kubectl exec POD -c istio-proxy -- pilot-agent request GET stats``). Per outbound subset cluster of the service
the count is ``upstream_rq_completed`` (one per request with a final response, Envoy's local replies such as 503 UH
included, retried attempts not -- they are charged to ``cluster.<name>.retry.*``); status rows are the
``upstream_rq_<code>`` deltas; retries, timeouts and resets go to the notes. ``upstream_rq_total`` counts attempts:
on a real Envoy (tests/test_telemetry_envoy.py) retried canary requests push it above the requests sent, and
requests to a subset without a healthy host leave it at 0, while ``upstream_rq_completed`` equals the requests.

A restart between the snapshots -- a counter of the service went down, or the process started later than the
first snapshot's process could have (from ``server.uptime``, which Envoy refreshes only at each stats flush, so the
bound is loose by the flush interval) -- means the new process counts from 0: its counters are taken whole and the
note says that the old process's requests after the first snapshot are lost. A hot restart
(``server.hot_restart_epoch`` went up) carries the counters over and is not a reset.

Latency per subset is the delta of the clusters' ``upstream_rq_time`` histograms (verifier.telemetry.envoyhist: as
of Envoy's last stats flush before each snapshot, upstream responses only).

Istio's proxies export per-cluster stats only when asked (``proxyStatsMatcher.inclusionRegexps`` in meshConfig or
the ``proxy.istio.io/config`` annotation); without them the service's clusters are missing and the error says so.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import TypeVar

from splitproof.verifier.istio import parse_cluster
from splitproof.verifier.telemetry import envoyhist
from splitproof.verifier.telemetry.clusters import Service, sanitized
from splitproof.verifier.telemetry.envoystats import STATS_FLUSH_INTERVAL, EnvoySnapshot, parse_snapshot
from splitproof.verifier.telemetry.errors import TelemetryQueryError
from splitproof.verifier.telemetry.httpget import DEFAULT_TIMEOUT, Endpoint, one_line, request
from splitproof.verifier.telemetry.latency import LatencyHistogram
from splitproof.verifier.telemetry.promql import re2_escape
from splitproof.verifier.telemetry.result import CountsBuilder, StatusKey, TelemetryCounts
from splitproof.verifier.telemetry.watch import ticks
from splitproof.verifier.telemetry.window import Window, format_duration

T = TypeVar("T")
FORMATS = ("json", "text", "prometheus")
COUNTED = "upstream_rq_completed"
RESTART_SLACK = 0.5  # s: margin beyond the bounds on the process start (rounding, flush, request)
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
_EXTRAS = {
    "upstream_rq_retry": "retried attempts",
    "upstream_rq_timeout": "upstream timeouts",
    "upstream_rq_per_try_timeout": "per-try timeouts",
    "upstream_rq_pending_overflow": "circuit-breaker overflows",
    "upstream_rq_rx_reset": "upstream resets",
    "upstream_cx_none_healthy": "no-healthy-upstream replies",
    "upstream_cx_connect_fail": "connection failures",
}
STATS_HINT = ("Istio proxies export per-cluster stats only with proxyStatsMatcher (meshConfig.defaultConfig."
              "proxyStatsMatcher.inclusionRegexps: [\".*upstream_rq_.*\"], or the proxy.istio.io/config annotation)")


def service_clusters(snapshot: EnvoySnapshot, service: Service) -> dict[str, Mapping[str, int]]:
    """subset ('' = the whole-service cluster) -> stats, for the outbound clusters of ``service``; with Gateway API
    version Services (``Service.versions``), their whole-service clusters keyed by their version."""
    return _by_subset(snapshot, snapshot.clusters, service)


def service_histograms(snapshot: EnvoySnapshot, service: Service) -> dict[str, LatencyHistogram]:
    """subset -> ``upstream_rq_time`` histogram, for the same clusters as :func:`service_clusters`."""
    return _by_subset(snapshot, snapshot.histograms, service)


def _by_subset(snapshot: EnvoySnapshot, per_cluster: Mapping[str, T], service: Service) -> dict[str, T]:
    want = sanitized(service.fqdn)
    by_host = {sanitized(h) if snapshot.format == "prometheus" else h: v
               for h, v in service.version_service_hosts().items()}
    out: dict[str, T] = {}
    for name, value in per_cluster.items():
        c = parse_cluster(name)
        if c is None or c.direction != "outbound":
            continue
        host = sanitized(c.host) if snapshot.format == "prometheus" else c.host
        if host in by_host:
            out[by_host[host]] = value
        elif c.host == service.fqdn or (snapshot.format == "prometheus" and host == want):
            out[c.subset] = value
    return out


def latency_between(before: EnvoySnapshot, after: EnvoySnapshot, service: Service, restarted: bool,
                    ) -> tuple[dict[str, LatencyHistogram], list[str]]:
    """Per version, the ``upstream_rq_time`` requests between two snapshots, and notes on what could not be taken
    (no buckets at all, a histogram that went down). The whole-service cluster ('' subset) has no version."""
    b, a = service_histograms(before, service), service_histograms(after, service)
    if not a:
        return {}, [f"no latency: the snapshots have no {envoyhist.STAT} buckets of the service's clusters (an "
                    "Envoy without histogram_buckets=cumulative, or no upstream response flushed yet)"]
    out: dict[str, LatencyHistogram] = {}
    notes = [f"latency: the {envoyhist.STAT} histograms as of Envoy's last stats flush before each snapshot (every "
             f"{STATS_FLUSH_INTERVAL:g} s by default), upstream responses only"]
    for subset, hist in sorted(a.items()):
        if not subset:
            continue
        d = envoyhist.delta(None if restarted else b.get(subset), hist)
        if d is None:
            notes.append(f"subset {subset}: its {envoyhist.STAT} histogram went down or changed its buckets between "
                         "the snapshots: taken whole from the second")
            d = hist
        out[subset] = d
    return out, notes


def _restarted(before: EnvoySnapshot, after: EnvoySnapshot, b: Mapping[str, Mapping[str, int]],
               a: Mapping[str, Mapping[str, int]]) -> str | None:
    """Why the second snapshot is of a new process whose counters started at 0 (None: the same counters)."""
    for subset, stats in a.items():
        for stat, value in stats.items():
            old = b.get(subset, {}).get(stat)
            if old is not None and value < old:
                return f"{stat} of subset {subset or '(none)'} went down from {old} to {value}"
    if before.epoch is not None and after.epoch is not None and after.epoch > before.epoch:
        return None  # a hot restart: the new process took the counters over
    b_start, a_start = before.started(), after.started()
    if b_start is not None and a_start is not None and a_start[0] > b_start[1] + RESTART_SLACK:
        return (f"server.uptime {before.uptime:g}s -> {after.uptime:g}s: the process started at least "
                f"{a_start[0] - b_start[1]:.0f}s after the first snapshot's")
    return None


def counts_between(before: EnvoySnapshot, after: EnvoySnapshot, service: Service, source: str = "Envoy admin",
                   counter: str = COUNTED, *, batch: bool = False) -> TelemetryCounts:
    """Requests per subset between two snapshots of one proxy."""
    b, a = service_clusters(before, service), service_clusters(after, service)
    if not a and not b:
        raise TelemetryQueryError(f"{source}: no outbound cluster of {service.fqdn} in the proxy's stats "
                                  f"({len(after.clusters)} clusters seen); {STATS_HINT}")
    builder = CountsBuilder()
    restart = _restarted(before, after, b, a)
    if restart:
        builder.note(f"Envoy restarted between the snapshots ({restart}): counted from 0 in the new process; "
                     "requests the old process served after the first snapshot are not seen")
    extras: Counter[tuple[str, str]] = Counter()
    for subset in sorted(set(a) | set(b)):
        if subset not in a:
            builder.note(f"subset {subset or '(none)'}: its cluster disappeared between the snapshots")
            continue
        base = {} if restart or subset not in b else b[subset]
        delta = {stat: v - base.get(stat, 0) for stat, v in a[subset].items()}
        if counter not in a[subset]:
            raise TelemetryQueryError(f"{source}: the cluster of subset {subset or '(none)'} has no {counter} stat; "
                                      f"{STATS_HINT}")
        version = subset or None
        cause = None if subset else f"no subset (outbound|*||{service.fqdn} routes to the whole service)"
        n = delta[counter]
        by_code = {stat[len("upstream_rq_"):]: d for stat, d in delta.items()
                   if stat[len("upstream_rq_"):].isdigit() and d > 0}
        for code, d in sorted(by_code.items()):
            builder.by_status[(version, StatusKey(code))] += d
        rest = n - sum(by_code.values())
        if rest > 0:
            builder.by_status[(version, StatusKey())] += rest
        builder.add(version, n, None, cause)
        for stat, what in _EXTRAS.items():
            if delta.get(stat, 0) > 0:
                extras[(subset or "(none)", what)] += delta[stat]
    for (subset, what), n in sorted(extras.items()):
        builder.note(f"{subset}: {n} {what}")
    latency, latency_notes = latency_between(before, after, service, bool(restart))
    for text in latency_notes:
        builder.note(text)
    return builder.build(Window(before.t, after.t), f"{source}: {counter} per subset cluster of {service.fqdn}",
                         latency, empty_note=not batch)


class EnvoyAdmin:
    """Reads stats snapshots from one Envoy admin endpoint."""

    def __init__(self, endpoint: Endpoint, fmt: str = "json") -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}")
        self.endpoint = endpoint
        self.fmt = fmt

    @classmethod
    def from_url(cls, url: str, *, fmt: str = "json", timeout: float = DEFAULT_TIMEOUT,
                 max_bytes: int = DEFAULT_MAX_BYTES, secret_headers: Mapping[str, str] | None = None) -> EnvoyAdmin:
        return cls(Endpoint.parse(url, timeout=timeout, max_bytes=max_bytes, secret_headers=secret_headers), fmt)

    @property
    def url(self) -> str:
        return self.endpoint.base_url

    def snapshot(self, service: Service, clock: Callable[[], float] = time.time) -> EnvoySnapshot:
        if self.fmt == "prometheus":
            path, params = "/stats/prometheus", {}
        else:
            host = "|".join(re2_escape(h) for h in (service.fqdn, *service.version_service_hosts()))
            host = f"({host})" if service.versions else host
            params = {"filter": rf"^cluster\.outbound\|[0-9]+\|[^|]*\|{host};?\.upstream_(rq|cx)_|"
                                r"^server\.(uptime|hot_restart_epoch)$"}
            if self.fmt == "json":
                params["format"] = "json"
            params["histogram_buckets"] = "cumulative"  # upstream_rq_time as buckets, not quantiles (envoyhist)
            path = "/stats"
        t, mono = clock(), time.monotonic()
        answer = request(self.endpoint, path, params=params, accept="*/*")
        mono_end = time.monotonic()
        if answer.status != 200:
            snippet = one_line(self.endpoint.redactor(answer.body[:200].decode("utf-8", "replace")), 120)
            raise TelemetryQueryError(f"Envoy admin {answer.url}: HTTP {answer.status}: {snippet}",
                                      status=answer.status)
        try:
            text = answer.body.decode("utf-8")
        except UnicodeDecodeError:
            raise TelemetryQueryError(f"Envoy admin {answer.url}: the answer is not UTF-8 text") from None
        return replace(parse_snapshot(text, t, self.fmt), mono=mono, mono_end=mono_end)


def watch(admin: EnvoyAdmin, service: Service, interval: float, *, duration: float | None = None,
          clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
          ) -> Iterator[TelemetryCounts]:
    """A snapshot now, then one every ``interval``: each batch is the delta to the previous snapshot."""
    previous = admin.snapshot(service, clock)
    source = f"Envoy admin {admin.url} (watch, every {format_duration(interval)})"
    for _ in ticks(interval, start=previous.t, duration=duration, clock=clock, sleep=sleep):
        current = admin.snapshot(service, clock)
        yield counts_between(previous, current, service, source, batch=True)
        previous = current
