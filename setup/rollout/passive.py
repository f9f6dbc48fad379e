"""``--source prometheus``: each step judged on the real traffic as Prometheus counts it (passive: nothing is sent).

Per step, once the proxies serve the step's weights, Prometheus is polled at its scrape interval
(verifier.telemetry's ``watch``: each poll's new requests per version as ONE count batch, late samples never counted
twice) and every batch goes to the one Tally -- the sequential split gate updated by the whole batch and deciding
only at its end (never response by response in an order of our choosing) -- and, with ``--health``, to the
HealthMonitor through the batch's statuses. The **first poll after the switch is not counted**: its counter
increases span the scrape before the switch, so part of it may be requests the proxies routed on the old weights.

Metrics: ``istio`` (``istio_requests_total`` by ``destination_version``, reporter ``source``: a cluster's default)
or ``envoy`` (the proxy's own cluster counters, one cluster per subset: the local mesh's Envoy scraped at
``/stats/prometheus``). Envoy's cluster counters carry HTTP status codes only -- a failed gRPC call is HTTP 200 with
a ``grpc-status`` -- so ``--health`` on ``envoy`` metrics is refused rather than shown healthy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from splitproof.setup.rollout.driver import NoCanaryCheck, StepVerdict
from splitproof.setup.rollout.plan import CANARY, PRODUCTION, RolloutPlan, Step
from splitproof.verifier.errors import InputError
from splitproof.verifier.expected import Expected
from splitproof.verifier.health.combined import combine
from splitproof.verifier.health.sequential import HealthMonitor
from splitproof.verifier.tally import Tally
from splitproof.verifier.telemetry import (
    PrometheusClient,
    Service,
    count_window,
    envoy_candidates,
    istio_requests,
    watch_prometheus,
)
from splitproof.verifier.telemetry.window import Window
from splitproof.verifier.verdict import Method

METRICS = ("istio", "envoy")
CHECK_POLLS = 4           # after a rollback: polls (the first not counted) that must show production only
DETECT_WINDOW_S = 300.0   # envoy metrics: which stats-tag form has series in the last five minutes
ENVOY_NO_HEALTH = ("--health with --metric envoy: Envoy's cluster counters carry HTTP status codes only (a failed "
                   "gRPC call is HTTP 200 with a grpc-status), so errors would look healthy; use --source sample "
                   "(the local mesh) or --metric istio (istio_requests_total has grpc_response_status)")


def series_spec(client: PrometheusClient, metric: str, service: Service, reporter: str = "source",
                clock: Callable[[], float] = time.time) -> Any:
    """The series to count: Istio's request metric, or the Envoy cluster counter form that has series (Istio's
    stats tags, upstream Envoy's; the first with series in the last minutes, else Istio's)."""
    if metric == "istio":
        return istio_requests(service, reporter)
    candidates = envoy_candidates(service)
    now = clock()
    got = count_window(client, candidates, Window(now - DETECT_WINDOW_S, now))
    return next((c for c in candidates if c.description in got.source), candidates[0])


class PrometheusSource:
    def __init__(self, client: PrometheusClient, spec: Any, interval: float, *, health: bool, metric: str,
                 watch: Callable[..., Any] = watch_prometheus) -> None:
        if health and metric == "envoy":
            raise InputError(ENVOY_NO_HEALTH)
        if interval <= 0:
            raise InputError("--interval must be a positive number of seconds")
        self.client, self.spec, self.interval, self.watch = client, spec, interval, watch

    def judge(self, plan: RolloutPlan, step: Step, timeout: float) -> StepVerdict:
        level = plan.step_alpha(step)
        expected = Expected.from_weights(step.weights, source=step.label)
        monitor = HealthMonitor([PRODUCTION, CANARY], PRODUCTION, alpha=level,
                                criteria=plan.health_criteria()) if plan.health_judged(step) else None
        tally = Tally(expected, method=Method.SEQUENTIAL, alpha=level, tolerance=plan.tolerance, health=monitor)
        start = time.monotonic()
        series: list[tuple[float, float]] = []
        polls = skipped = 0
        for batch in self.watch(self.client, self.spec, self.interval, duration=timeout):
            polls += 1
            if polls == 1:  # straddles the switch (module docstring)
                skipped = batch.total
                continue
            tally.add_batch(batch)
            if tally.n:
                series.append((time.monotonic() - start, tally.counts[CANARY] / tally.n))
            split_fail = tally.decided and str(tally.verdict().outcome) == "FAIL"
            health_fail = monitor is not None and monitor.decided and str(monitor.verdict().outcome) == "FAIL"
            if split_fail or health_fail or (tally.decided and (monitor is None or monitor.decided)):
                break
        split = tally.verdict()
        health = monitor.verdict() if monitor is not None else None
        gate = combine(split, health)
        row = next((r for r in split.rows if r.version == CANARY), None)
        band = (max(0.0, step.percent / 100 - row.margin), min(1.0, step.percent / 100 + row.margin)) if row else None
        reason = f"{gate.reason} ({polls} polls every {self.interval:g}s; the first, {skipped} requests, not counted)"
        if tally.total == 0:
            reason = f"no traffic of the service seen in {polls} polls: nothing to judge ({gate.reason})"
        return StepVerdict(str(gate.outcome), reason, samples=tally.total,
                           counts={**dict(tally.counts), "unattributed": tally.unattributed},
                           split=str(split.outcome), health=str(health.outcome) if health else None,
                           health_reason=health.reason if health else None, band=band,
                           interval=(row.lo, row.hi) if row else None, series=tuple(series))

    def confirm_no_canary(self) -> NoCanaryCheck:
        production = canary = polls = 0
        for batch in self.watch(self.client, self.spec, self.interval, duration=CHECK_POLLS * self.interval + 1):
            polls += 1
            if polls == 1:
                continue
            production += batch.counts.get(PRODUCTION, 0)
            canary += batch.counts.get(CANARY, 0)
            if polls >= CHECK_POLLS:
                break
        return NoCanaryCheck(production + canary, canary,
                             f"(Prometheus {self.client.url}, {polls - 1} polls counted after the first)")
