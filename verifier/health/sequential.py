"""The anytime-valid health judge: feed responses one by one (live sampling) or as count batches (telemetry polls).

Per metric and canary it runs two e-processes on the cumulative counts
(:func:`verifier.health.difference.log_e_value`):
against "d <= fail_margin" (FAIL when it reaches ``1/alpha_fail``) and against "d >= max_increase" (the row is
shown *within* the margin when it reaches ``1/alpha``). By Ville's inequality each crosses wrongly with
probability at most its level however often one looks, so both forms are valid:

* :meth:`HealthMonitor.observe` -- one response (its version, whether it failed, its latency): a look after every
  response.
* :meth:`HealthMonitor.observe_batch` -- per-version :class:`~verifier.health.model.MetricCount` deltas per metric, as a
  telemetry source delivers them per poll: one look per batch, and since the statistic depends on the cumulative
  counts only, the order inside a batch cannot matter.

A row shown within its margin stays so (the crossing was a valid event) while its FAIL test keeps running until
the whole verdict is decided: a canary that turns bad later still FAILs. The verdict is frozen once decided.

Latency needs a threshold. Given one (:class:`~verifier.health.latency.SlowThreshold`), responses count at once; without
one, production's first ``warmup`` successful latencies set it (:class:`~verifier.health.latency.WarmupThreshold`)
and are not used in the test; canary latencies seen meanwhile are held (up to :data:`HOLD_LIMIT`) and counted once the
threshold is known -- they are independent of it, so the test stays exact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from splitproof.verifier import defaults
from splitproof.verifier.errors import InputError
from splitproof.verifier.health.decide import (
    metric_verdict,
    not_judged,
    overall,
    parameters,
    samples_to_decide,
    with_total_needed,
)
from splitproof.verifier.health.difference import constrained_mle_scalar, rate_prior, sequence_bound
from splitproof.verifier.health.latency import SlowThreshold, WarmupThreshold
from splitproof.verifier.health.model import (
    ERRORS,
    ERRORS_NOT_ATTRIBUTABLE,
    LATENCY,
    ComparisonRow,
    Criterion,
    HealthVerdict,
    MetricCount,
    MetricVerdict,
    check_health_parameters,
    difference_interval,
    error_criterion,
    fail_tests,
)
from splitproof.verifier.health.plan import sequential_needed
from splitproof.verifier.verdict import Method, Outcome, Status

TEST = "beta-binomial mixture over the constrained maximum likelihood (e-process)"
HOLD_LIMIT = 100_000  # canary latencies held while production's warm-up sets the threshold


def _lbeta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _loglik(y: float, n: float, p: float) -> float:
    out = 0.0
    if y > 0:
        out += y * math.log(p) if p > 0 else -math.inf
    if n - y > 0:
        out += (n - y) * math.log1p(-p) if p < 1 else -math.inf
    return out


def log_e(yc: int, nc: int, yp: int, np_: int, margin: float, prior: tuple[float, float]) -> float:
    """Scalar :func:`verifier.health.difference.log_e_value` (math module only: the per-response hot path)."""
    a, b = prior
    pc, pp = constrained_mle_scalar(yc, nc, yp, np_, margin)
    null = _loglik(yc, nc, pc) + _loglik(yp, np_, pp)
    if null == -math.inf:
        return math.inf
    mix = _lbeta(a + yc, b + nc - yc) + _lbeta(a + yp, b + np_ - yp) - 2 * _lbeta(a, b)
    return mix - null


class _Row:
    """One canary against production on one metric: the two running e-process maxima and sticky statuses."""

    __slots__ = ("canary", "best_fail", "best_pass", "status", "hi_at_pass", "lo_at_fail")

    def __init__(self, canary: str) -> None:
        self.canary = canary
        self.best_fail = -math.inf
        self.best_pass = -math.inf
        self.status = Status.UNDECIDED
        self.hi_at_pass = 1.0
        self.lo_at_fail = -1.0


class HealthMonitor:
    """Sequential health verdict for ``versions`` (each one other than ``baseline`` is a canary)."""

    def __init__(self, versions: Sequence[str], baseline: str, *, criteria: Sequence[Criterion] | None = None,
                 alpha: float = defaults.ALPHA, errors_attributable: bool = True,
                 warmup: WarmupThreshold | None = None, decide: bool = True) -> None:
        self.criteria = list(criteria) if criteria is not None else [error_criterion()]
        check_health_parameters(alpha, self.criteria)
        if baseline not in versions:
            raise InputError(f"the baseline {baseline!r} is not one of the versions ({', '.join(versions)})")
        self.versions, self.baseline, self.alpha = list(versions), baseline, alpha
        self._known = frozenset(self.versions)
        self.canaries = [v for v in self.versions if v != baseline]
        if not self.canaries:
            raise InputError("health needs at least one canary besides the baseline")
        self._by_metric = {c.metric: c for c in self.criteria}
        self.errors_attributable = errors_attributable
        judged = [m for m in self._by_metric if m != ERRORS or errors_attributable]
        self.alpha_fail = alpha / fail_tests(self.criteria, judged, len(self.canaries))
        self._limit_fail, self._limit_pass = math.log(1 / self.alpha_fail), math.log(1 / alpha)
        self._counts = {m: {v: [0, 0] for v in self.versions} for m in judged}
        self._rows = {m: [_Row(c) for c in self.canaries] for m in judged}
        self._priors = {c.metric: rate_prior(c.max_increase) for c in self.criteria}
        latency = self._by_metric.get(LATENCY)
        self._warmup = None
        if latency is not None and latency.threshold is None:
            self._warmup = warmup or WarmupThreshold()
        self._held: list[tuple[str, float]] = []
        self.responses = 0
        self.ignored = 0
        self.observed_after_decision = 0
        self._decision: HealthVerdict | None = None
        self._decide = decide  # False: only count (the fixed-n judge reads tallies() at the end)

    # ------------------------------------------------------------------------------------------ observation

    @property
    def decided(self) -> bool:
        return self._decision is not None

    @property
    def warmup(self) -> WarmupThreshold | None:
        """Production's warm-up setting the slow threshold (None when the threshold was given)."""
        return self._warmup

    @property
    def latency_threshold(self) -> SlowThreshold | None:
        c = self._by_metric.get(LATENCY)
        return c.threshold if c else None

    def observe(self, version: str, *, error: bool, latency_ms: float | None = None,
                count_error: bool = True) -> None:
        """One response of ``version``: did it fail, and (for a success) how long it took. ``count_error=False``:
        its latency only (a success whose version a failure could not have named: payload-attributed)."""
        if self._decision is not None:
            self.observed_after_decision += 1
            return
        if version not in self._known:
            self.ignored += 1
            return
        self.responses += 1
        if ERRORS in self._counts and count_error:
            cell = self._counts[ERRORS][version]
            cell[0] += 1
            cell[1] += bool(error)
        if LATENCY in self._counts and not error and latency_ms is not None:
            self._observe_latency(version, float(latency_ms))
        self._check()

    def _observe_latency(self, version: str, latency_ms: float) -> None:
        threshold = self.latency_threshold
        if threshold is None:
            assert self._warmup is not None
            if version == self.baseline:
                found = self._warmup.add(latency_ms)  # consumed by the warm-up, not counted in the test
                if found is not None:
                    self._by_metric[LATENCY] = Criterion(LATENCY, self._by_metric[LATENCY].max_increase,
                                                         self._by_metric[LATENCY].fail_margin, found)
                    self.criteria = [self._by_metric[c.metric] for c in self.criteria]
                    held, self._held = self._held, []
                    for v, ms in held:
                        self._count_latency(v, ms > found.ms)
            elif len(self._held) < HOLD_LIMIT:
                self._held.append((version, latency_ms))
            return
        self._count_latency(version, threshold.is_slow(latency_ms))

    def _count_latency(self, version: str, slow: bool) -> None:
        cell = self._counts[LATENCY][version]
        cell[0] += 1
        cell[1] += slow

    def observe_batch(self, batch: Mapping[str, Mapping[str, MetricCount]]) -> None:
        """Count deltas from one telemetry poll: ``{metric: {version: Tally}}``; one look after the batch."""
        if self._decision is not None:
            self.observed_after_decision += sum(t.total for per in batch.values() for t in per.values())
            return
        for metric, per_version in batch.items():
            if metric not in self._by_metric:
                raise InputError(f"no criterion for health metric {metric!r}")
            if metric == LATENCY and self.latency_threshold is None:
                raise InputError("latency batches need the slow threshold up front (a bucket boundary)")
            if metric not in self._counts:
                continue  # errors under payload attribution: not judged
            for version, tally in per_version.items():
                if version not in self._counts[metric]:
                    self.ignored += tally.total
                    continue
                cell = self._counts[metric][version]
                cell[0] += tally.total
                cell[1] += tally.bad
        self.responses = max(sum(c[0] for c in per.values()) for per in self._counts.values()) if self._counts else 0
        self._check()

    # ---------------------------------------------------------------------------------------------- decision

    def _update(self, metric: str) -> None:
        c = self._by_metric[metric]
        prior = self._priors[metric]
        counts = self._counts[metric]
        np_, yp = counts[self.baseline]
        for row in self._rows[metric]:
            nc, yc = counts[row.canary]
            if nc == 0 or np_ == 0:
                continue
            d = yc / nc - yp / np_
            if d > c.fail_margin:
                value = log_e(yc, nc, yp, np_, c.fail_margin, prior)
                row.best_fail = max(row.best_fail, value)
                if value >= self._limit_fail and row.status != Status.WORSE:
                    row.status = Status.WORSE
                    row.lo_at_fail = sequence_bound(yc, nc, yp, np_, prior, self.alpha_fail, "lower")
            if d < c.max_increase and row.status == Status.UNDECIDED:
                value = log_e(yc, nc, yp, np_, c.max_increase, prior)
                row.best_pass = max(row.best_pass, value)
                if value >= self._limit_pass:
                    row.status = Status.WITHIN
                    row.hi_at_pass = sequence_bound(yc, nc, yp, np_, prior, self.alpha, "upper")

    def _state(self) -> Outcome | None:
        rows = [r for metric in self._rows for r in self._rows[metric]]
        if any(r.status == Status.WORSE for r in rows):
            return Outcome.FAIL
        latency_pending = LATENCY in self._counts and self.latency_threshold is None
        if rows and not latency_pending and all(r.status == Status.WITHIN for r in rows):
            return Outcome.PASS
        return None

    def tallies(self) -> dict[str, dict[str, MetricCount]]:
        """The counts so far per judged metric and version (latency: once its threshold is known)."""
        out = {}
        for metric, counts in self._counts.items():
            if metric == LATENCY and self.latency_threshold is None:
                continue
            out[metric] = {v: MetricCount(n, bad) for v, (n, bad) in counts.items()}
        return out

    def _check(self) -> None:
        if not self._decide:
            return
        for metric in self._counts:
            if metric != LATENCY or self.latency_threshold is not None:
                self._update(metric)
        if self._state() is not None:
            self._decision = self._build()

    def verdict(self) -> HealthVerdict:
        """The frozen verdict once decided, else the current (INCONCLUSIVE) state."""
        return self._decision if self._decision is not None else self._build()

    def _row(self, metric: str, row: _Row) -> ComparisonRow:
        c, prior = self._by_metric[metric], self._priors[metric]
        counts = self._counts[metric]
        (nc, yc), (np_, yp) = counts[row.canary], counts[self.baseline]
        lo, hi = -1.0, 1.0
        if nc and np_:
            lo = max(row.lo_at_fail, sequence_bound(yc, nc, yp, np_, prior, self.alpha_fail, "lower"))
            hi = min(row.hi_at_pass, sequence_bound(yc, nc, yp, np_, prior, self.alpha, "upper"))
        needed = None
        if row.status == Status.UNDECIDED and nc and np_:
            needed = sequential_needed(yc / nc, yp / np_, nc / (nc + np_), fail_margin=c.fail_margin,
                                       max_increase=c.max_increase, alpha=self.alpha, alpha_fail=self.alpha_fail,
                                       current=nc + np_)
        p_worse = min(1.0, math.exp(-row.best_fail)) if row.best_fail > 0 else 1.0
        p_within = min(1.0, math.exp(-row.best_pass)) if row.best_pass > 0 else 1.0
        return ComparisonRow(metric, row.canary, self.baseline, nc, yc, np_, yp,
                             difference_interval(lo, hi, Method.SEQUENTIAL, self.alpha, self.alpha_fail), p_worse,
                             p_within, row.status, needed)

    def _build(self) -> HealthVerdict:
        metrics: list[MetricVerdict] = []
        routes: list[tuple[ComparisonRow, int, int]] = []
        for c in self.criteria:
            if c.metric == ERRORS and not self.errors_attributable:
                metrics.append(not_judged(ERRORS, ERRORS_NOT_ATTRIBUTABLE.reason, c))
                continue
            if c.metric == LATENCY and self.latency_threshold is None:
                assert self._warmup is not None
                rows = ()
                metrics.append(MetricVerdict(LATENCY, Outcome.INCONCLUSIVE, "latency: production's warm-up is setting "
                                             f"the slow threshold ({self._warmup.count} responses)", rows, c))
                continue
            counts = self._counts[c.metric]
            total = sum(cell[0] for cell in counts.values())
            rows = tuple(self._row(c.metric, r) for r in self._rows[c.metric])
            for row in rows:
                routes.append((row, row.n + row.baseline_n, total))
            metrics.append(metric_verdict(c, rows))
        needed = samples_to_decide(routes)
        outcome, reason = overall(metrics, needed)
        reason = with_total_needed(reason, outcome, needed, routes)
        if outcome != Outcome.INCONCLUSIVE:
            reason = f"{reason} (decided after {self.responses:,} responses)"
        return HealthVerdict(
            outcome=outcome, reason=reason, metrics=tuple(metrics), baseline=self.baseline, method=Method.SEQUENTIAL,
            alpha=self.alpha, alpha_fail=self.alpha_fail,
            samples_needed=needed if outcome == Outcome.INCONCLUSIVE else None,
            parameters=parameters(self.criteria, self.alpha, self.alpha_fail, None),
            method_details={"test": TEST, "priors": {m: list(p) for m, p in self._priors.items()}})
