"""The health judge's settings in one object, and the judges built from them -- what ``verify-split --health``, the
Locust plugin and a rollout driver share (one place turns options into criteria, monitors and verdicts).

    from splitproof.verifier.health.options import HealthOptions

    options = HealthOptions(max_error_increase=0.01, latency_threshold_ms=None)   # None: production's warm-up
    monitor = options.monitor(["production", "canary"], "production", errors_attributable=True)
    monitor.observe("canary", error=True)             # ... one response at a time, or observe_batch(...)
    monitor.verdict()                                 # HealthVerdict (PASS / FAIL / INCONCLUSIVE)

Margins are fractions (0.01 = 1 percentage point), as everywhere in the Python API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from splitproof.verifier import defaults
from splitproof.verifier.health.latency import DEFAULT_QUANTILE, DEFAULT_WARMUP, WarmupThreshold, given_threshold
from splitproof.verifier.health.model import (
    Criterion,
    HealthVerdict,
    MetricCount,
    NotJudged,
    check_health_parameters,
    error_criterion,
    latency_criterion,
)

if TYPE_CHECKING:
    from splitproof.verifier.health.sequential import HealthMonitor

# The judges (scipy) are imported when one is built: checking the options (verify-split's preflight) needs neither.


@dataclass(frozen=True)
class HealthOptions:
    """What the health verdict demands (see docs/health-method.md for each number's meaning)."""

    alpha: float = defaults.ALPHA
    power: float = defaults.POWER
    max_error_increase: float = defaults.MAX_ERROR_INCREASE   # errors: PASS needs d shown below this
    error_fail_margin: float = 0.0                            # errors: FAIL needs d shown above this
    latency: bool = True                                      # judge slow responses too
    latency_threshold_ms: float | None = None                 # slow = above this; None: production's warm-up
    max_slow_increase: float = defaults.MAX_SLOW_INCREASE
    slow_fail_margin: float = 0.0
    warmup: int = DEFAULT_WARMUP                              # production's first N successes set the threshold
    warmup_quantile: float = DEFAULT_QUANTILE

    def criteria(self) -> list[Criterion]:
        out = [error_criterion(self.max_error_increase, self.error_fail_margin)]
        if self.latency:
            threshold = given_threshold(self.latency_threshold_ms) if self.latency_threshold_ms is not None else None
            out.append(latency_criterion(threshold, self.max_slow_increase, self.slow_fail_margin))
        return out

    def check(self) -> None:
        """InputError (one line) for any bad value."""
        check_health_parameters(self.alpha, self.criteria(), self.power)
        if self.latency and self.latency_threshold_ms is None:
            WarmupThreshold(self.warmup, self.warmup_quantile)

    def monitor(self, versions: Sequence[str], baseline: str, *, errors_attributable: bool = True,
                decide: bool = True) -> HealthMonitor:
        """The anytime-valid judge (``decide=False``: it only counts, for :meth:`judge` at a fixed n)."""
        from splitproof.verifier.health.sequential import HealthMonitor

        warmup = WarmupThreshold(self.warmup, self.warmup_quantile) if self.latency else None
        return HealthMonitor(versions, baseline, criteria=self.criteria(), alpha=self.alpha,
                             errors_attributable=errors_attributable, warmup=warmup, decide=decide)

    def judge(self, tallies: Mapping[str, Mapping[str, MetricCount] | NotJudged], baseline: str,
              canaries: Sequence[str], criteria: Sequence[Criterion] | None = None) -> HealthVerdict:
        """The fixed-n judge over counts (``criteria``: with the latency threshold a warm-up found)."""
        from splitproof.verifier.health.fixed import judge_health

        return judge_health(tallies, baseline, criteria=list(criteria or self.criteria()), alpha=self.alpha,
                            power=self.power, canaries=canaries)
