"""Where a rollout step's evidence comes from. ``sample``: live sampling through the mesh entry (the local mesh's
gRPC entry, or a cluster's ingress ``--target`` / ``--url``), each response attributed to a version (by the
``--version-header`` response header when the routes set one, else by item count) and fed in the order it
happened to the split's SequentialGate -- and, with ``--health``, to the anytime-valid HealthMonitor: a failed call
counts against the version its header names (without a header a failed call names no version, so errors cannot
be attributed and ``--health`` is refused: verifier.health).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from splitproof.setup.rollout.driver import NoCanaryCheck, StepVerdict
from splitproof.setup.rollout.plan import CANARY, PRODUCTION, RolloutPlan, Step
from splitproof.verifier import defaults
from splitproof.verifier.errors import InputError, Unreachable
from splitproof.verifier.expected import Expected
from splitproof.verifier.health.combined import combine
from splitproof.verifier.health.sequential import HealthMonitor
from splitproof.verifier.inputs import probes, sampling
from splitproof.verifier.inputs.attribution import Attribution
from splitproof.verifier.inputs.records import Record
from splitproof.verifier.tally import Tally
from splitproof.verifier.verdict import Method

MAX_STEP_SAMPLES = 200_000   # per step: the step timeout bounds it first at any realistic rate
CHECK_SAMPLES = 200          # after a rollback: responses that must all come from production
CHECK_DURATION_S = 30.0
SERIES_POINTS = 400          # points of the share-over-time chart per step (evenly thinned)
SERIES_FROM = 20             # the first responses' cumulative share swings 0-100%: the chart starts after them

HEALTH_NEEDS_HEADER = ("--health needs errors attributed to a version, and a failed call carries no items to count: "
                       "start the local mesh with `canary-setup local up --version-header x-version` (cluster: "
                       "give --header NAME with routes that set it)")


@dataclass(frozen=True)
class SampleTarget:
    """What to sample: a gRPC mesh entry (``HOST:PORT``) or a shop URL through the ingress."""

    target: str | None = None
    url: str | None = None
    header: str | None = None
    concurrency: int = 8
    timeout: float = 5.0

    def __post_init__(self) -> None:
        if (self.target is None) == (self.url is None):
            raise InputError("sampling needs exactly one of --target HOST:PORT or --url URL")

    def attribution(self) -> Attribution:
        channel = "grpc" if self.target else "http"
        return Attribution.with_overrides(None, self.header, channel=channel)

    def probe(self) -> probes.Probe:
        if self.target:
            return probes.GrpcProbe(self.target, self.attribution(), timeout=self.timeout)
        assert self.url is not None
        return probes.HttpProbe(self.url, self.attribution(), timeout=self.timeout)

    @property
    def where(self) -> str:
        return self.target or self.url or ""


class Series:
    """The cumulative canary share over time, thinned to at most ``SERIES_POINTS`` (every k-th response)."""

    def __init__(self, start: float) -> None:
        self.start, self.points, self.every, self.seen = start, [], 1, 0

    def add(self, t: float, canary: int, n: int) -> None:
        self.seen += 1
        if n >= SERIES_FROM and self.seen % self.every == 0:
            self.points.append((t - self.start, canary / n))
            if len(self.points) >= SERIES_POINTS:
                self.points = self.points[::2]
                self.every *= 2


class SampleSource:
    """The ``sample`` source (module docstring). ``make_probe`` is injectable for tests."""

    def __init__(self, target: SampleTarget, *, health: bool = False,
                 make_probe: Callable[[], probes.Probe] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if health and target.header is None:
            raise InputError(HEALTH_NEEDS_HEADER)
        self.target = target
        self.make_probe = make_probe or target.probe
        self.clock = clock

    def judge(self, plan: RolloutPlan, step: Step, timeout: float) -> StepVerdict:
        level = plan.step_alpha(step)
        expected = Expected.from_weights(step.weights, source=step.label)
        tally = Tally(expected, method=Method.SEQUENTIAL, alpha=level, tolerance=plan.tolerance,
                      max_samples=MAX_STEP_SAMPLES)
        monitor = HealthMonitor([PRODUCTION, CANARY], PRODUCTION, alpha=level,
                                criteria=plan.health_criteria()) if plan.health_judged(step) else None
        series = Series(self.clock())
        probe = self.make_probe()

        def decided() -> bool:
            split = tally.verdict().outcome if tally.decided else None
            health = monitor.verdict().outcome if monitor is not None and monitor.decided else None
            if "FAIL" in (str(split), str(health)):
                return True
            return tally.decided and (monitor is None or monitor.decided)

        def on_record(rec: Record) -> bool:
            tally.record(rec)
            if tally.ok == 0 and tally.total >= defaults.UNREACHABLE_AFTER:
                raise Unreachable(f"target unreachable: no successful response from {probe.target} in the first "
                                  f"{tally.total} attempts (last error: {probe.last_error or 'unknown'})")
            if monitor is not None and rec.version in (PRODUCTION, CANARY):
                monitor.observe(rec.version, error=not rec.ok, latency_ms=rec.latency_ms)
            series.add(self.clock(), tally.counts[CANARY], tally.n)
            return decided()

        try:
            probe.check(min(timeout, 10.0))
            sampling.sample(probe, concurrency=self.target.concurrency, max_samples=MAX_STEP_SAMPLES,
                            duration=timeout, on_record=on_record)
        finally:
            probe.close()
            tally.close()
        split = tally.verdict()
        health = monitor.verdict() if monitor is not None else None
        gate = combine(split, health)
        row = split.row(CANARY) if any(r.version == CANARY for r in split.rows) else None
        band = (max(0.0, step.percent / 100 - row.margin), min(1.0, step.percent / 100 + row.margin)) if row else None
        reason = gate.reason
        if plan.health and monitor is None:
            reason += "; health not judged at canary 100 (no production traffic to compare with)"
        return StepVerdict(
            outcome=str(gate.outcome), reason=reason, samples=tally.total,
            counts={**dict(tally.counts), "unattributed": tally.unattributed},
            split=str(split.outcome), health=str(health.outcome) if health else None,
            health_reason=health.reason if health else None, band=band,
            interval=(row.lo, row.hi) if row else None, series=tuple(series.points))

    def confirm_no_canary(self) -> NoCanaryCheck:
        probe = self.make_probe()
        seen = {"n": 0, "canary": 0, "ok": 0}

        def on_record(rec: Record) -> bool:
            seen["n"] += 1
            seen["ok"] += rec.ok
            seen["canary"] += rec.version == CANARY
            return False

        try:
            probe.check(10.0)
            result = sampling.sample(probe, concurrency=self.target.concurrency, max_samples=CHECK_SAMPLES,
                                     duration=CHECK_DURATION_S, on_record=on_record)
        finally:
            probe.close()
        detail = f"({seen['ok']} answered; sampled {self.target.where} for {result.elapsed:.1f}s)"
        return NoCanaryCheck(seen["ok"], seen["canary"], detail)
