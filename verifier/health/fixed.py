"""The fixed-n health judge: exact unconditional tests of each canary against production, per metric
(the method: docs/health-method.md; the rule: :mod:`verifier.health.model`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from splitproof.verifier import defaults
from splitproof.verifier.errors import InputError
from splitproof.verifier.health.decide import (
    metric_verdict,
    not_judged,
    overall,
    parameters,
    row_status,
    samples_to_decide,
    with_total_needed,
)
from splitproof.verifier.health.difference import exact_bound, exact_p_value
from splitproof.verifier.health.model import (
    ComparisonRow,
    Criterion,
    HealthVerdict,
    MetricCount,
    MetricVerdict,
    NotJudged,
    check_health_parameters,
    difference_interval,
    error_criterion,
    fail_tests,
)
from splitproof.verifier.health.plan import fixed_n_needed
from splitproof.verifier.verdict import Method, Outcome, Status

TEST = "exact unconditional score test (Farrington-Manning statistic, Berger-Boos nuisance interval)"


def compare_fixed(criterion: Criterion, version: str, baseline: str, canary: MetricCount, base: MetricCount, *,
                  alpha: float, alpha_fail: float, power: float, intervals: bool = True) -> ComparisonRow:
    """Exact unconditional tests of one canary against production
    (see :func:`verifier.health.difference.exact_p_value`)."""
    yc, nc, yp, np_ = canary.bad, canary.total, base.bad, base.total
    p_worse = exact_p_value(yc, nc, yp, np_, criterion.fail_margin, "greater")
    p_within = exact_p_value(yc, nc, yp, np_, criterion.max_increase, "less")
    status = row_status(p_worse, p_within, alpha_fail, alpha)
    lo, hi = -1.0, 1.0
    if intervals:
        lo = exact_bound(yc, nc, yp, np_, alpha_fail, "lower")
        hi = exact_bound(yc, nc, yp, np_, alpha, "upper")
    needed = None
    if status == Status.UNDECIDED and nc > 0 and np_ > 0:
        needed = fixed_n_needed(yc / nc, yp / np_, nc / (nc + np_), fail_margin=criterion.fail_margin,
                                max_increase=criterion.max_increase, alpha=alpha, alpha_fail=alpha_fail, power=power,
                                current=nc + np_)
    return ComparisonRow(criterion.metric, version, baseline, nc, yc, np_, yp,
                         difference_interval(lo, hi, Method.FIXED_N, alpha, alpha_fail), p_worse, p_within, status,
                         needed)


def judge_health(tallies: Mapping[str, Mapping[str, MetricCount] | NotJudged], baseline: str, *,
                 criteria: Sequence[Criterion] | None = None, alpha: float = defaults.ALPHA,
                 power: float = defaults.POWER,
                 intervals: bool = True, canaries: Sequence[str] | None = None) -> HealthVerdict:
    """Fixed-n health verdict for ``canaries`` (default: every version in the tallies but ``baseline``).

    ``tallies`` maps a metric (ERRORS, LATENCY) to per-version :class:`MetricCount` counts, or to :class:`NotJudged`
    when that metric cannot be attributed. Use it when the number of responses was not chosen by looking at the
    results (a load test of fixed length, a Prometheus window fixed in advance).
    """
    criteria = list(criteria) if criteria is not None else [error_criterion()]
    check_health_parameters(alpha, criteria, power)
    by_metric = {c.metric: c for c in criteria}
    for metric in tallies:
        if metric not in by_metric:
            raise InputError(f"no criterion for health metric {metric!r}")
    judged = [m for m, t in tallies.items() if not isinstance(t, NotJudged)]
    if canaries is None:
        canaries = sorted({v for m in judged for v in tallies[m]} - {baseline})  # type: ignore[union-attr]
    canaries = [v for v in canaries if v != baseline]
    alpha_fail = alpha / fail_tests(criteria, judged, len(canaries))
    metrics: list[MetricVerdict] = []
    routes: list[tuple[ComparisonRow, int, int]] = []
    for criterion in criteria:
        given = tallies.get(criterion.metric)
        if given is None:
            continue
        if isinstance(given, NotJudged):
            metrics.append(not_judged(criterion.metric, given.reason, criterion))
            continue
        base = given.get(baseline, MetricCount(0, 0))
        total = sum(t.total for t in given.values())
        rows = []
        for version in canaries:
            tally = given.get(version, MetricCount(0, 0))
            row = compare_fixed(criterion, version, baseline, tally, base, alpha=alpha, alpha_fail=alpha_fail,
                                power=power, intervals=intervals)
            rows.append(row)
            routes.append((row, tally.total + base.total, total))
        metrics.append(metric_verdict(criterion, rows))
    needed = samples_to_decide(routes)
    outcome, reason = overall(metrics, needed)
    reason = with_total_needed(reason, outcome, needed, routes)
    return HealthVerdict(
        outcome=outcome, reason=reason, metrics=tuple(metrics), baseline=baseline, method=Method.FIXED_N, alpha=alpha,
        alpha_fail=alpha_fail, samples_needed=needed if outcome == Outcome.INCONCLUSIVE else None,
        parameters=parameters(criteria, alpha, alpha_fail, power), method_details={"test": TEST})
