"""``--prometheus`` / ``--envoy-admin`` / ``--access-log``: the real traffic's counts into the one tally.

A window (``--since/--until``, or the two Envoy snapshots ``--duration`` apart, or the whole access log) is ONE count
batch: the fixed-n test by default, the sequential gate deciding at its end with ``--sequential``. ``--watch`` polls
from now every ``--interval`` (Prometheus: its scrape interval) and hands each poll's batch to the tally, which
updates the anytime-valid gate by the whole batch and decides only at its end (``Tally.add_batch``); it stops at the
verdict, at ``--max-samples`` or INCONCLUSIVE at ``--duration``. A source that stops answering in the middle of a
watch ends the watch with the verdict so far (a note says why); one that cannot be reached at the start is exit 4.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from splitproof.verifier import defaults
from splitproof.verifier.command.settings import telemetry_source
from splitproof.verifier.tally import Tally
from splitproof.verifier.telemetry import (
    EnvoyAdmin,
    PrometheusClient,
    Service,
    TelemetryCounts,
    TelemetryError,
    auth_headers,
    count_access_log,
    count_window,
    counts_between,
    envoy_candidates,
    istio_duration_buckets,
    istio_requests,
    promql,
    resolve_window,
    watch_envoy,
    watch_prometheus,
)
from splitproof.verifier.telemetry.window import Window, format_duration
from splitproof.verifier.verdict import Method

DEFAULT_ENVOY_INTERVAL = 1.0      # s: Envoy admin counters are live, a poll a second is cheap
DEFAULT_SCRAPE_INTERVAL = 15.0    # s: Prometheus' own default, when the server does not say
DEFAULT_ENVOY_WINDOW = 60.0       # s: --envoy-admin without --watch: the two snapshots this far apart


@dataclass
class Observed:
    """What a telemetry run read: every batch (one for a window), the sum of them, for the outputs."""

    source: str
    batches: list[TelemetryCounts] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    interval: float | None = None

    @property
    def counted(self) -> TelemetryCounts | None:
        return sum_batches(self.batches) if self.batches else None


def sum_batches(batches: list[TelemetryCounts]) -> TelemetryCounts:
    """Every batch as one result (counts, statuses, skipped and latency added; the window spanning them)."""
    from collections import Counter

    from splitproof.verifier.telemetry.latency import LatencyHistogram

    counts: Counter[str] = Counter()
    unattributed: Counter[str] = Counter()
    by_status: Counter[Any] = Counter()
    skipped: Counter[str] = Counter()
    latency: dict[str, LatencyHistogram] = {}
    notes: list[str] = []
    for b in batches:
        counts.update(b.counts)
        unattributed.update(b.unattributed)
        by_status.update(b.by_status)
        skipped.update(b.skipped)
        for v, h in b.latency.items():
            old = latency.get(v)
            if old is not None and old.bounds != h.bounds:  # a proxy restarted with other buckets: not addable
                note = f"{v}: the latency buckets changed between batches: the later batches' kept"
                if note not in notes:
                    notes.append(note)
                old = None
            latency[v] = h if old is None else LatencyHistogram(
                h.bounds, tuple(a + c for a, c in zip(old.cumulative, h.cumulative, strict=True)))
        notes.extend(n for n in b.notes if n not in notes)
    first, last = batches[0], batches[-1]
    return TelemetryCounts(dict(counts), dict(unattributed), Window(first.window.since, last.window.until),
                           first.source, dict(by_status), dict(skipped), latency, tuple(notes))


def _service(args: argparse.Namespace) -> Service:
    """The service counted; with ``--from-httproute`` it also maps each backend Service to its version (Gateway
    API routing: the telemetry names the version Service, not a subset)."""
    namespace = args.namespace or defaults.SERVICE_NAMESPACE
    if getattr(args, "from_httproute", None):
        from splitproof.verifier.inputs.httproute import read_route

        route, services, route_ns = read_route(args.from_httproute, args.namespace, args.host, args.context)
        return Service.from_httproute(route, services, args.service, route_ns or namespace)
    return Service(args.service, namespace)


def _secrets(args: argparse.Namespace) -> dict[str, str]:
    return auth_headers(token_file=args.token_file, token_env=args.token_env, header_file=args.header_file)


def _prometheus_specs(args: argparse.Namespace, service: Service) -> tuple[Any, Any]:
    """(the counted spec(s), the latency spec or None)."""
    if args.promql:
        return promql(args.promql, args.version_label), None
    if args.metric == "envoy":
        return envoy_candidates(service), None
    return istio_requests(service, args.reporter), istio_duration_buckets(service, args.reporter)


def first_with_series(client: PrometheusClient, specs: tuple[Any, ...], lookback: float = 300.0) -> Any:
    """Of Envoy's tag spellings (promql.envoy_candidates), the first with series in the last ``lookback`` seconds
    (a watch reads one selector; a window tries them in order itself)."""
    now_ms = round(time.time() * 1000)
    for spec in specs:
        if any(chunk.series for chunk in client.read_range(spec.selector, now_ms - round(lookback * 1000), now_ms)):
            return spec
    return specs[0]


def scrape_interval(client: PrometheusClient) -> tuple[float, str]:
    """The poll interval for --watch: the longest scrape interval of Prometheus' active targets (a poll shorter
    than the scrape interval only sees empty batches), or Prometheus' default when it lists none."""
    intervals = client.scrape_intervals()
    if not intervals:
        return DEFAULT_SCRAPE_INTERVAL, f"no active targets listed: polling every {DEFAULT_SCRAPE_INTERVAL:g}s"
    worst = max(intervals.values())
    return worst, f"polling at the scrape interval ({format_duration(worst)}, the longest of {len(intervals)} pools)"


def _batches(args: argparse.Namespace, observed: Observed, err: Console) -> Iterator[TelemetryCounts]:
    service = _service(args)
    source = telemetry_source(args)
    duration = args.duration or defaults.LIVE_DURATION_S
    if source == "access-log":
        window = resolve_window(args.since, args.until, time.time()) if args.since else None
        if args.until and not args.since:
            window = resolve_window("0", args.until, time.time())
        yield count_access_log(args.access_log, service, window)
        return
    if source == "envoy-admin":
        admin = EnvoyAdmin.from_url(args.envoy_admin, secret_headers=_secrets(args) or None)
        if args.watch:
            observed.interval = args.interval or DEFAULT_ENVOY_INTERVAL
            yield from watch_envoy(admin, service, observed.interval, duration=duration)
            return
        span = args.duration or DEFAULT_ENVOY_WINDOW
        before = admin.snapshot(service)
        err.print(f"[dim]Envoy admin {admin.url}: counting for {format_duration(span)} ...[/dim]", highlight=False)
        time.sleep(span)
        yield counts_between(before, admin.snapshot(service), service, f"Envoy admin {admin.url}")
        return
    client = PrometheusClient.from_url(args.prometheus, secret_headers=_secrets(args) or None)
    spec, latency = _prometheus_specs(args, service)
    if args.watch:
        if args.interval:
            observed.interval = args.interval
        else:
            observed.interval, how = scrape_interval(client)
            observed.notes.append(how)
        one = spec if not isinstance(spec, tuple) else first_with_series(client, spec)
        yield from watch_prometheus(client, one, observed.interval, duration=duration,
                                    latency=latency if latency is not None else one.latency)
        return
    window = resolve_window(args.since, args.until, time.time())
    yield count_window(client, spec, window, latency=latency, own_latency=True)


def observe_telemetry(args: argparse.Namespace, tally: Tally, err: Console,
                      on_batch: Any = None) -> Observed:
    """Feed the source's batches to ``tally``; returns what was read (for the outputs' ``telemetry`` field)."""
    observed = Observed(telemetry_source(args) or "?")
    started = False
    try:
        for batch in _batches(args, observed, err):
            started = True
            observed.batches.append(batch)
            tally.add_batch(batch)
            if on_batch is not None:
                on_batch(batch)
            if args.watch and not args.no_progress:
                err.print(f"[dim]{batch.window.describe()}: +{batch.attributed} attributed, "
                          f"+{batch.total - batch.attributed} unattributed (total {tally.total:,})[/dim]",
                          highlight=False)
            if tally.done:
                break
    except TelemetryError as exc:
        if not started:
            raise
        observed.notes.append(f"the watch stopped early: {exc}")
    if args.watch and tally.method == Method.SEQUENTIAL and not tally.decided:
        polls = len(observed.batches)
        observed.notes.append(f"stopped by --duration/--max-samples before a decision ({polls} polls)")
    counted = observed.counted
    if counted is not None and counted.empty:
        observed.notes.append("no traffic of the service was seen: nothing to judge (INCONCLUSIVE)")
    return observed


def telemetry_json(observed: Observed) -> dict[str, Any]:
    """The ``telemetry`` field of the JSON verdict (docs/verdict-schema.md): what was read, summed over the batches,
    with the per-version statuses and latency histograms the health judge reads."""
    total = observed.counted
    out: dict[str, Any] = {"source_kind": observed.source, "batches": len(observed.batches),
                           "interval_s": observed.interval}
    if total is None:
        return out | {"source": None, "window": None, "counts": {}, "unattributed": {}, "by_status": [],
                      "skipped": {}, "latency": {}, "notes": list(observed.notes)}
    status = [{"version": v, "response_code": k.response_code, "grpc_status": k.grpc_status, "flags": k.flags,
               "count": n} for (v, k), n in sorted(total.by_status.items(), key=lambda kv: (kv[0][0] or "", kv[0][1]))]
    latency = {v: {"bounds_ms": list(h.bounds), "cumulative": list(h.cumulative)} for v, h in total.latency.items()}
    return out | {"source": total.source, "window": {"since": total.window.since, "until": total.window.until},
                  "counts": dict(total.counts), "unattributed": dict(total.unattributed), "by_status": status,
                  "skipped": dict(total.skipped), "latency": latency,
                  "notes": [*total.notes, *(n for n in observed.notes if n not in total.notes)]}


def destination_errors(args: argparse.Namespace, observed: Observed) -> dict[str, Any] | None:
    """With ``--health`` over a Prometheus window of Istio's metrics: the same window from the destination side
    (``reporter="destination"``: what the canary's own sidecar saw, before the client's retries hid part of its
    UNAVAILABLE errors) -- shown next to the judged clients' view, never judged. None when it does not apply."""
    from splitproof.verifier.health.batches import error_counts

    if not (args.prometheus and not args.watch and not args.promql and args.metric != "envoy"
            and args.reporter == "source" and observed.batches):
        return None
    window = observed.batches[0].window
    try:
        client = PrometheusClient.from_url(args.prometheus, secret_headers=_secrets(args) or None)
        dest = count_window(client, istio_requests(_service(args), "destination"), window)
    except TelemetryError as exc:
        return {"error": str(exc)}
    per = error_counts(dest.by_status).get("errors", {})
    return {v: {"requests": c.total, "errors": c.bad, "rate": c.rate} for v, c in sorted(per.items())}
