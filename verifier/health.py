"""Canary health: is the canary worse than production? Types, the fixed-n judge, and the gate's combined outcome.

Per metric (errors; slow responses) and per canary, with ``d = canary rate - production rate`` given the responses
each version received (method: docs/health-method.md, math: :mod:`verifier.difference`):

* **FAIL** when H0 "d <= fail_margin" is rejected (default margin 0: the canary is shown worse than production at
  all -- its share of the bad events exceeds its share of the traffic). Level ``alpha / (number of FAIL tests)``
  (Bonferroni over canaries and metrics), so the health verdict wrongly FAILs a canary no worse than production with
  probability at most ``alpha``.
* **PASS** when not FAIL and H0 "d >= max_increase" is rejected for every canary and metric (intersection-union:
  each at ``alpha``, no correction needed): a canary worse by the margin or more PASSes with probability <= alpha.
* **INCONCLUSIVE** otherwise, with the further responses likely to decide (:mod:`verifier.health_plan`).

A metric whose per-version counts cannot be had (errors under payload attribution: a failed call has no payload to
attribute) is given as :class:`NotJudged`; it is reported and excluded, and the other metrics are judged.
The sequential (anytime-valid) judge is :class:`verifier.health_sequential.HealthMonitor`; both return a
:class:`HealthVerdict`. :func:`combine` joins it with the split gate's verdict into the gate's exit code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from splitproof.verifier.difference import exact_bound, exact_p_value
from splitproof.verifier.errors import InputError
from splitproof.verifier.health_plan import fixed_n_needed
from splitproof.verifier.latency import SlowThreshold
from splitproof.verifier.stats import EXIT_CODES, FAIL, INCONCLUSIVE, PASS, UNDECIDED, WITHIN

ERRORS = "errors"
LATENCY = "latency"
WORSE = "worse"              # row status: shown worse than production + fail_margin
NOT_JUDGED = "not judged"    # metric outcome: its per-version counts are not available
DEFAULT_MAX_ERROR_INCREASE = 0.01   # 1 pp
DEFAULT_MAX_SLOW_INCREASE = 0.05    # 5 pp of responses slower than the threshold
ERROR_DEFINITION = "HTTP 5xx or no response, gRPC status other than OK, product page without its recommendations"


@dataclass(frozen=True)
class Tally:
    """Responses judged on one metric for one version, and how many of them were bad."""

    total: int
    bad: int

    def __post_init__(self) -> None:
        for name in ("total", "bad"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise InputError(f"{name} must be a non-negative integer, got {value!r}")
        if self.bad > self.total:
            raise InputError(f"bad ({self.bad}) cannot exceed total ({self.total})")

    def __add__(self, other: Tally) -> Tally:
        return Tally(int(self.total + other.total), int(self.bad + other.bad))

    @property
    def rate(self) -> float | None:
        return self.bad / self.total if self.total else None


@dataclass(frozen=True)
class NotJudged:
    """A metric that cannot be judged, with the one-line reason shown to the user."""

    reason: str


ERRORS_NOT_ATTRIBUTABLE = NotJudged(
    "errors cannot be attributed to a version (a failed call has no payload to count): judge them with header "
    "attribution (--header) or a telemetry source; the unattributed-response limit still bounds them overall")


@dataclass(frozen=True)
class Criterion:
    """What one health metric demands. Margins are fractions (0.01 = 1 percentage point)."""

    metric: str                            # ERRORS | LATENCY
    max_increase: float                    # PASS needs d < max_increase shown
    fail_margin: float = 0.0               # FAIL needs d > fail_margin shown
    threshold: SlowThreshold | None = None  # LATENCY: what "slow" means (None: set by a production warm-up)

    @property
    def noun(self) -> str:
        if self.metric == ERRORS:
            return "errors"
        return f"slow (>{self.threshold.ms:.3g} ms)" if self.threshold else "slow"

    @property
    def definition(self) -> str:
        if self.metric == ERRORS:
            return ERROR_DEFINITION
        return self.threshold.describe() if self.threshold else "slower than production's warm-up quantile"


def error_criterion(max_increase: float = DEFAULT_MAX_ERROR_INCREASE, fail_margin: float = 0.0) -> Criterion:
    return Criterion(ERRORS, max_increase, fail_margin)


def latency_criterion(threshold: SlowThreshold | None = None, max_increase: float = DEFAULT_MAX_SLOW_INCREASE,
                      fail_margin: float = 0.0) -> Criterion:
    return Criterion(LATENCY, max_increase, fail_margin, threshold)


@dataclass(frozen=True)
class ComparisonRow:
    """One canary against production on one metric."""

    metric: str
    version: str
    baseline: str
    n: int                       # canary responses judged on this metric
    bad: int
    baseline_n: int
    baseline_bad: int
    lo: float                    # lower bound for d at 1 - alpha_fail (CI fixed-n, CS sequential)
    hi: float                    # upper bound for d at 1 - alpha
    p_worse: float               # H0 d <= fail_margin; small -> shown worse (FAIL)
    p_within: float              # H0 d >= max_increase; small -> shown within the margin (PASS)
    status: str                  # WORSE | WITHIN | UNDECIDED
    samples_needed: int | None   # further responses of the pair likely to decide (UNDECIDED only)

    @property
    def rate(self) -> float | None:
        return self.bad / self.n if self.n else None

    @property
    def baseline_rate(self) -> float | None:
        return self.baseline_bad / self.baseline_n if self.baseline_n else None

    @property
    def difference(self) -> float | None:
        if self.rate is None or self.baseline_rate is None:
            return None
        return self.rate - self.baseline_rate

    @property
    def bad_share(self) -> float | None:
        """The canary's share of the pair's bad events -- compare with :attr:`traffic_share`."""
        total = self.bad + self.baseline_bad
        return self.bad / total if total else None

    @property
    def traffic_share(self) -> float | None:
        total = self.n + self.baseline_n
        return self.n / total if total else None


@dataclass(frozen=True)
class MetricVerdict:
    metric: str
    outcome: str                          # PASS | FAIL | INCONCLUSIVE | NOT_JUDGED
    reason: str
    rows: tuple[ComparisonRow, ...]
    criterion: Criterion | None


@dataclass(frozen=True)
class HealthVerdict:
    outcome: str                          # PASS | FAIL | INCONCLUSIVE
    reason: str                           # one line
    metrics: tuple[MetricVerdict, ...]
    baseline: str
    method: str                           # "fixed-n" | "sequential"
    alpha: float                          # PASS level per test; bounds a wrong PASS
    alpha_fail: float                     # FAIL level per test (alpha / FAIL tests); health's wrong FAIL <= alpha
    samples_needed: int | None            # further responses (all versions) likely to decide; INCONCLUSIVE only
    interval: str                         # what lo/hi are
    notes: tuple[str, ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    @property
    def decided(self) -> bool:
        return self.outcome != INCONCLUSIVE

    def metric(self, name: str) -> MetricVerdict:
        for m in self.metrics:
            if m.metric == name:
                return m
        raise KeyError(name)


def baseline_of(expected: Mapping[str, float], name: str = "production") -> str:
    """Production among the expected split's versions: the one called ``name``, else the largest share."""
    if not expected:
        raise InputError("no versions to pick production from")
    return name if name in expected else max(expected, key=lambda v: (expected[v], v))


# ------------------------------------------------------------------------------------------------ validation

def check_health_parameters(alpha: float, criteria: Sequence[Criterion], power: float | None = None) -> None:
    if not (isinstance(alpha, int | float) and 0.0 < alpha < 0.5):
        raise InputError(f"alpha must be between 0 and 0.5, got {alpha!r}")
    if power is not None and not (isinstance(power, int | float) and 0.0 < power < 1.0):
        raise InputError(f"power must be between 0 and 1, got {power!r}")
    seen = set()
    for c in criteria:
        if c.metric not in (ERRORS, LATENCY) or c.metric in seen:
            raise InputError(f"health metrics are {ERRORS!r} and {LATENCY!r}, each once; got {c.metric!r}")
        seen.add(c.metric)
        if not 0.0 < c.max_increase < 1.0:
            raise InputError(f"the {c.metric} margin must be above 0 and below 100 pp, got {100 * c.max_increase:g}")
        if not 0.0 <= c.fail_margin <= c.max_increase:
            raise InputError(f"the {c.metric} fail margin must be from 0 to the PASS margin "
                             f"({100 * c.max_increase:g} pp), got {100 * c.fail_margin:g}")


def fail_tests(criteria: Sequence[Criterion], judged: Sequence[str], canaries: int) -> int:
    return max(1, canaries * sum(1 for c in criteria if c.metric in judged))


# ------------------------------------------------------------------------------------------------ formatting

def rate_pct(x: float | None) -> str:
    """4.3% / 0.0% / 0.35% (two decimals below 1%, so 0.4% vs 0.5% does not read as equal)."""
    if x is None:
        return "n/a"
    return f"{100 * x:.2f}%" if 0 < abs(x) < 0.01 else f"{100 * x:.1f}%"


def signed_pp(x: float) -> str:
    """A bound or a difference in percentage points, three significant digits: +4.3 pp, +0.998 pp, -12.5 pp."""
    value = 100 * x
    return "+0 pp" if abs(value) < 5e-4 else f"{value:+.3g} pp"


def margin_pp(x: float) -> str:
    return f"+{100 * x:g} pp"


def row_text(row: ComparisonRow, criterion: Criterion) -> str:
    head = (f"{row.version} {criterion.noun} {rate_pct(row.rate)} vs {row.baseline} {rate_pct(row.baseline_rate)}")
    if row.n == 0 or row.baseline_n == 0:
        missing = row.version if row.n == 0 else row.baseline
        return f"{criterion.noun}: no responses from {missing} yet"
    diff = row.difference or 0.0
    if row.status == WORSE:
        worse = ("shown worse" if criterion.fail_margin == 0
                 else f"shown worse by more than {margin_pp(criterion.fail_margin)}")
        return f"{head} ({signed_pp(diff)}, {worse}: lower bound {signed_pp(row.lo)})"
    if row.status == WITHIN:
        return f"{head} (shown below {margin_pp(criterion.max_increase)}: upper bound {signed_pp(row.hi)})"
    text = (f"{head}: not yet shown below {margin_pp(criterion.max_increase)} (bounds {signed_pp(row.lo)} to "
            f"{signed_pp(row.hi)})")
    if row.samples_needed:
        text += f", about {row.samples_needed:,} more responses"
    return text


# ------------------------------------------------------------------------------------------------- decisions

def row_status(p_worse: float, p_within: float, alpha_fail: float, alpha: float) -> str:
    if p_worse < alpha_fail:
        return WORSE
    if p_within < alpha:
        return WITHIN
    return UNDECIDED


def metric_verdict(criterion: Criterion, rows: Sequence[ComparisonRow]) -> MetricVerdict:
    worse = [r for r in rows if r.status == WORSE]
    if worse:
        return MetricVerdict(criterion.metric, FAIL, "; ".join(row_text(r, criterion) for r in worse), tuple(rows),
                             criterion)
    if rows and all(r.status == WITHIN for r in rows):
        return MetricVerdict(criterion.metric, PASS, "; ".join(row_text(r, criterion) for r in rows), tuple(rows),
                             criterion)
    pending = [r for r in rows if r.status != WITHIN] or list(rows)
    text = "; ".join(row_text(r, criterion) for r in pending) or f"{criterion.noun}: no responses yet"
    return MetricVerdict(criterion.metric, INCONCLUSIVE, text, tuple(rows), criterion)


def not_judged(metric: str, reason: str, criterion: Criterion | None) -> MetricVerdict:
    return MetricVerdict(metric, NOT_JUDGED, f"{metric} not judged: {reason}", (), criterion)


def overall(metrics: Sequence[MetricVerdict], samples_needed: int | None) -> tuple[str, str]:
    """Health outcome and one-line reason from the metric verdicts (FAIL if any fails; PASS if all judged pass)."""
    judged = [m for m in metrics if m.outcome != NOT_JUDGED]
    skipped = [m.reason for m in metrics if m.outcome == NOT_JUDGED]
    failed = [m for m in judged if m.outcome == FAIL]
    if failed:
        return FAIL, "; ".join(m.reason for m in failed)
    if judged and all(m.outcome == PASS for m in judged):
        return PASS, "; ".join([m.reason for m in judged] + skipped)
    if not judged:
        return INCONCLUSIVE, "; ".join(skipped) or "no health metric to judge"
    pending = [m.reason for m in judged if m.outcome != PASS]
    return INCONCLUSIVE, "; ".join(pending + skipped)


def pair_to_total(needed_pair: int | None, pair: int, total: int) -> int | None:
    """Further responses of all versions, from the further responses of one canary + production pair."""
    if needed_pair is None:
        return None
    return needed_pair if pair <= 0 or total <= pair else int(np.ceil(needed_pair * total / pair))


def samples_to_decide(rows: Sequence[tuple[ComparisonRow, int, int]]) -> int | None:
    """Further responses (all versions) until every undecided row is likely decided; None when one never is."""
    needs = []
    for row, pair, total in rows:
        if row.status == UNDECIDED:
            need = pair_to_total(row.samples_needed, pair, total)
            if need is None:
                return None
            needs.append(need)
    return max(needs) if needs else None


def with_total_needed(reason: str, outcome: str, needed: int | None,
                      routes: Sequence[tuple[ComparisonRow, int, int]]) -> str:
    """Add the all-versions figure when it differs from the one row's own (several rows or versions)."""
    undecided = [(row, pair, total) for row, pair, total in routes if row.status == UNDECIDED]
    if outcome != INCONCLUSIVE or not needed:
        return reason
    if len(undecided) == 1 and undecided[0][0].samples_needed == needed:
        return reason
    return f"{reason} (about {needed:,} more responses in all)"


# --------------------------------------------------------------------------------------------- fixed-n judge

def compare_fixed(criterion: Criterion, version: str, baseline: str, canary: Tally, base: Tally, *,
                  alpha: float, alpha_fail: float, power: float, intervals: bool = True) -> ComparisonRow:
    """Exact unconditional tests of one canary against production (see :func:`verifier.difference.exact_p_value`)."""
    yc, nc, yp, np_ = canary.bad, canary.total, base.bad, base.total
    p_worse = exact_p_value(yc, nc, yp, np_, criterion.fail_margin, "greater")
    p_within = exact_p_value(yc, nc, yp, np_, criterion.max_increase, "less")
    status = row_status(p_worse, p_within, alpha_fail, alpha)
    lo, hi = -1.0, 1.0
    if intervals:
        lo = exact_bound(yc, nc, yp, np_, alpha_fail, "lower")
        hi = exact_bound(yc, nc, yp, np_, alpha, "upper")
    needed = None
    if status == UNDECIDED and nc > 0 and np_ > 0:
        needed = fixed_n_needed(yc / nc, yp / np_, nc / (nc + np_), fail_margin=criterion.fail_margin,
                                max_increase=criterion.max_increase, alpha=alpha, alpha_fail=alpha_fail, power=power,
                                current=nc + np_)
    return ComparisonRow(criterion.metric, version, baseline, nc, yc, np_, yp, lo, hi, p_worse, p_within, status,
                         needed)


def judge_health(tallies: Mapping[str, Mapping[str, Tally] | NotJudged], baseline: str, *,
                 criteria: Sequence[Criterion] | None = None, alpha: float = 0.01, power: float = 0.9,
                 intervals: bool = True, canaries: Sequence[str] | None = None) -> HealthVerdict:
    """Fixed-n health verdict for ``canaries`` (default: every version in the tallies but ``baseline``).

    ``tallies`` maps a metric (ERRORS, LATENCY) to per-version :class:`Tally` counts, or to :class:`NotJudged`
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
        base = given.get(baseline, Tally(0, 0))
        total = sum(t.total for t in given.values())
        rows = []
        for version in canaries:
            tally = given.get(version, Tally(0, 0))
            row = compare_fixed(criterion, version, baseline, tally, base, alpha=alpha, alpha_fail=alpha_fail,
                                power=power, intervals=intervals)
            rows.append(row)
            routes.append((row, tally.total + base.total, total))
        metrics.append(metric_verdict(criterion, rows))
    needed = samples_to_decide(routes)
    outcome, reason = overall(metrics, needed)
    reason = with_total_needed(reason, outcome, needed, routes)
    level = f"{100 * (1 - alpha_fail):g}% / {100 * (1 - alpha):g}%"
    return HealthVerdict(
        outcome=outcome, reason=reason, metrics=tuple(metrics), baseline=baseline, method="fixed-n", alpha=alpha,
        alpha_fail=alpha_fail, samples_needed=needed if outcome == INCONCLUSIVE else None,
        interval=f"exact lower / upper confidence bounds for the difference at {level}",
        parameters=_parameters(criteria, alpha, alpha_fail, power, "exact unconditional score test "
                               "(Farrington-Manning statistic, Berger-Boos nuisance interval)"))


def _parameters(criteria: Sequence[Criterion], alpha: float, alpha_fail: float, power: float | None,
                test: str) -> dict[str, Any]:
    return {"alpha": alpha, "alpha_fail": alpha_fail, "power": power, "test": test,
            "criteria": {c.metric: {"max_increase": c.max_increase, "fail_margin": c.fail_margin,
                                    "definition": c.definition} for c in criteria}}
