"""Canary health: is the canary worse than production? The types every health judge shares.

Per metric (errors; slow responses) and per canary, with ``d = canary rate - production rate`` given the responses
each version received (method: docs/health-method.md, math: :mod:`verifier.health.difference`):

* **FAIL** when H0 "d <= fail_margin" is rejected (default margin 0: the canary is shown worse than production at
  all -- its share of the bad events exceeds its share of the traffic). Level ``alpha / (number of FAIL tests)``
  (Bonferroni over canaries and metrics), so the health verdict wrongly FAILs a canary no worse than production with
  probability at most ``alpha``.
* **PASS** when not FAIL and H0 "d >= max_increase" is rejected for every canary and metric (intersection-union:
  each at ``alpha``, no correction needed): a canary worse by the margin or more PASSes with probability <= alpha.
* **INCONCLUSIVE** otherwise, with the further responses likely to decide (:mod:`verifier.health.plan`).

A metric whose per-version counts cannot be had (errors under payload attribution: a failed call has no payload to
attribute) is given as :class:`NotJudged`; it is reported and excluded (its outcome is ``None``: not judged), and
the other metrics are judged. The fixed-n judge is :func:`verifier.health.fixed.judge_health`, the sequential
(anytime-valid) one :class:`verifier.health.sequential.HealthMonitor`; both return a :class:`HealthVerdict`, with the
split verdict's vocabulary (:mod:`verifier.verdict`: Outcome, Status, Method, Interval).
:func:`verifier.health.combined.combine` joins it with the split gate's verdict into the gate's exit code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any, Final

from splitproof.verifier import defaults, fmt
from splitproof.verifier.errors import InputError
from splitproof.verifier.exitcodes import ExitCode
from splitproof.verifier.health.latency import SlowThreshold
from splitproof.verifier.verdict import Interval, IntervalKind, Method, Outcome, Status

ERRORS = "errors"
LATENCY = "latency"
WORSE = Status.WORSE         # row status: shown worse than production + fail_margin
NOT_JUDGED: Final = None     # metric outcome: its per-version counts are not available
ERROR_DEFINITION = "HTTP 5xx or no response, gRPC status other than OK, product page without its recommendations"


@dataclass(frozen=True)
class MetricCount:
    """Responses judged on one metric for one version, and how many of them were bad."""

    total: int
    bad: int

    def __post_init__(self) -> None:
        for name in ("total", "bad"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
                raise InputError(f"{name} must be a non-negative integer, got {value!r}")
        if self.bad > self.total:
            raise InputError(f"bad ({self.bad}) cannot exceed total ({self.total})")

    def __add__(self, other: MetricCount) -> MetricCount:
        return MetricCount(int(self.total + other.total), int(self.bad + other.bad))

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


def error_criterion(max_increase: float = defaults.MAX_ERROR_INCREASE, fail_margin: float = 0.0) -> Criterion:
    return Criterion(ERRORS, max_increase, fail_margin)


def latency_criterion(threshold: SlowThreshold | None = None, max_increase: float = defaults.MAX_SLOW_INCREASE,
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
    interval: Interval           # for d: lower end at 1 - alpha_fail, upper at 1 - alpha (level: both together)
    p_worse: float               # H0 d <= fail_margin; small -> shown worse (FAIL)
    p_within: float              # H0 d >= max_increase; small -> shown within the margin (PASS)
    status: Status               # WORSE | WITHIN | UNDECIDED
    samples_needed: int | None   # further responses of the pair likely to decide (UNDECIDED only)

    @property
    def lo(self) -> float:
        """Lower confidence bound for d (at 1 - alpha_fail): above the fail margin means FAIL."""
        return self.interval.lo

    @property
    def hi(self) -> float:
        """Upper confidence bound for d (at 1 - alpha): below the PASS margin means within."""
        return self.interval.hi

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


def difference_interval(lo: float, hi: float, method: Method, alpha: float, alpha_fail: float) -> Interval:
    """The interval for d of one row: its two one-sided bounds hold together with probability >= 1 - alpha -
    alpha_fail (exact bounds fixed-n, an anytime-valid confidence sequence sequentially)."""
    kind = IntervalKind.EXACT_BOUNDS if method == Method.FIXED_N else IntervalKind.DIFFERENCE_SEQUENCE
    return Interval(lo, hi, 1 - alpha - alpha_fail, kind)


@dataclass(frozen=True)
class MetricVerdict:
    metric: str
    outcome: Outcome | None               # PASS | FAIL | INCONCLUSIVE; None (NOT_JUDGED): not judged
    reason: str
    rows: tuple[ComparisonRow, ...]
    criterion: Criterion | None


@dataclass(frozen=True)
class HealthVerdict:
    outcome: Outcome
    reason: str                           # one line
    metrics: tuple[MetricVerdict, ...]
    baseline: str
    method: Method
    alpha: float                          # PASS level per test; bounds a wrong PASS
    alpha_fail: float                     # FAIL level per test (alpha / FAIL tests); health's wrong FAIL <= alpha
    samples_needed: int | None            # further responses (all versions) likely to decide; INCONCLUSIVE only
    notes: tuple[str, ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)      # alpha, alpha_fail, power, criteria
    method_details: Mapping[str, Any] = field(default_factory=dict)  # the test (and the sequential priors)

    @property
    def exit_code(self) -> ExitCode:
        return self.outcome.exit_code

    @property
    def decided(self) -> bool:
        return self.outcome.decided

    @property
    def interval_name(self) -> str:
        """What each row's lo/hi are."""
        lo, hi = fmt.level(1 - self.alpha_fail), fmt.level(1 - self.alpha)
        if self.method == Method.FIXED_N:
            return f"exact lower / upper confidence bounds for the difference at {lo} / {hi}"
        return f"anytime-valid confidence sequence for the difference: lower end at {lo}, upper end at {hi}"

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
            raise InputError(f"the {c.metric} margin must be above 0 and below 100 pp, got {fmt.pp(c.max_increase)}")
        if not 0.0 <= c.fail_margin <= c.max_increase:
            raise InputError(f"the {c.metric} fail margin must be from 0 to the PASS margin "
                             f"({fmt.pp(c.max_increase)}), got {fmt.pp(c.fail_margin)}")


def fail_tests(criteria: Sequence[Criterion], judged: Sequence[str], canaries: int) -> int:
    return max(1, canaries * sum(1 for c in criteria if c.metric in judged))
