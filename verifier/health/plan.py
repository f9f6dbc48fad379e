"""Sample sizes for the health judge: ``--plan`` and the "about N more responses" of an INCONCLUSIVE verdict.

All figures count responses of the canary + production pair (a canary with share ``s`` of the pair), for one
metric, when the true rates are ``canary`` and ``production``:

* **fixed-n** (:func:`fixed_n_needed`): the normal approximation of the score test,
  ``N = ((z(1 - a) s0 + z(power) s1) / |d - margin|)^2`` with ``s1^2 = p_c (1 - p_c)/s + p_p (1 - p_p)/(1 - s)`` at
  the truth and ``s0`` the same at the rates constrained to ``d = margin`` (Farrington-Manning) -- and, because
  the normal approximation is poor with no bad events at all, never below the zero-count bound
  ``log(1/a) / (s (p_p + margin))`` for a PASS. :func:`plan_health` then corrects small plans with few bad events
  (:data:`EXACT_PLAN_LIMIT`, :data:`EXACT_PLAN_BAD`: where the approximation is worst and the exact sum cheap) with
  the exact power of the judge itself (:func:`fixed_n_rates`); bench/health_calibration.py shows the exact power of
  every plan it uses.
* **sequential** (:func:`sequential_needed`): where the anytime-valid e-value crosses ``1/a`` along the path on
  which the observed fractions hold exactly (typical, not a guarantee; the spread is in the calibration table).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from scipy import stats as sps

from splitproof.verifier import defaults
from splitproof.verifier.errors import InputError
from splitproof.verifier.health.difference import constrained_mle_scalar, exact_p_value, log_e_value, rate_prior

_MAX_N = 10**10
EXACT_PLAN_LIMIT = 3000  # pair responses: plans up to this size ...
EXACT_PLAN_BAD = 60      # ... expecting at most this many bad events are corrected with the exact power


def _z(q: float) -> float:
    return float(sps.norm.ppf(q))


def _unit_sd(pc: float, pp: float, share: float) -> float:
    return math.sqrt(max(pc * (1 - pc) / share + pp * (1 - pp) / (1 - share), 0.0))


def fixed_n_route(pc: float, pp: float, share: float, margin: float, alpha: float, power: float) -> int | None:
    """Pair responses for the fixed-n test at ``margin`` to reject with probability ``power``; None if it can't
    (the truth is on the null side or on the margin)."""
    d = pc - pp
    gap = abs(d - margin)
    if gap < 1e-12 or not 0 < share < 1:
        return None
    yc, yp = pc * share, pp * (1 - share)  # expected counts per pair response (scale-free for the FM MLE)
    qc, qp = constrained_mle_scalar(yc, share, yp, 1 - share, margin)
    s0, s1 = _unit_sd(qc, qp, share), _unit_sd(pc, pp, share)
    n = ((_z(1 - alpha) * s0 + _z(power) * s1) / gap) ** 2
    if d < margin:  # PASS route: even with no canary bad event, (1 - p_p - margin)^(s N) < alpha is needed
        n = max(n, math.log(1 / alpha) / (share * min(pp + margin, 1.0)))
    return min(_MAX_N, max(1, math.ceil(n)))


def sequential_route(pc: float, pp: float, share: float, margin: float, prior: tuple[float, float], alpha: float,
                     start: int = 0) -> int | None:
    """Pair responses at which the e-value against ``d = margin`` reaches 1/alpha along the exact path."""
    d = pc - pp
    if abs(d - margin) < 1e-12 or not 0 < share < 1:
        return None
    limit = math.log(1 / alpha)

    def crossed(n: float) -> bool:
        nc, np_ = share * n, (1 - share) * n
        return float(log_e_value(pc * nc, nc, pp * np_, np_, margin, prior)) >= limit

    lo = max(2, start)
    if crossed(lo):
        return lo
    hi = lo * 2
    while not crossed(hi):
        lo, hi = hi, hi * 2
        if hi > _MAX_N:
            return None
    while hi - lo > max(1, lo // 1000):
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if crossed(mid) else (mid, hi)
    return hi


def _routes(pc: float, pp: float, criterion_fail: float, criterion_pass: float) -> tuple[bool, bool]:
    d = pc - pp
    return d > criterion_fail, d < criterion_pass


def fixed_n_needed(pc: float, pp: float, share: float, *, fail_margin: float, max_increase: float, alpha: float,
                   alpha_fail: float, power: float, current: int = 0) -> int | None:
    """Further pair responses for a fixed-n verdict if the observed rates hold (the quicker possible verdict)."""
    can_fail, can_pass = _routes(pc, pp, fail_margin, max_increase)
    options = []
    if can_fail:
        options.append(fixed_n_route(pc, pp, share, fail_margin, alpha_fail, power))
    if can_pass:
        options.append(fixed_n_route(pc, pp, share, max_increase, alpha, power))
    found = [n for n in options if n is not None]
    return max(1, min(found) - current) if found else None


def sequential_needed(pc: float, pp: float, share: float, *, fail_margin: float, max_increase: float, alpha: float,
                      alpha_fail: float, current: int = 0) -> int | None:
    """Further pair responses for the sequential judge if the observed rates hold."""
    prior = rate_prior(max_increase)
    can_fail, can_pass = _routes(pc, pp, fail_margin, max_increase)
    options = []
    if can_fail:
        options.append(sequential_route(pc, pp, share, fail_margin, prior, alpha_fail, current))
    if can_pass:
        options.append(sequential_route(pc, pp, share, max_increase, prior, alpha, current))
    found = [n for n in options if n is not None]
    return max(1, min(found) - current) if found else None


# ---------------------------------------------------------------------------- exact error rates of the fixed-n judge

def _smallest_rejected(test: Callable[[int], bool], guess: int, floor: int, limit: int) -> int:
    """Smallest i in [floor, limit] with test(i), for a set rejected upwards; limit + 1 when none.

    Starts at ``guess`` (the previous row's edge: usually right or close) and gallops, then walks down past any
    local non-monotonicity, so the result is exact whatever the guess.
    """
    i = max(guess, floor)
    if i > limit:
        i = limit
    if test(i):
        while i - 1 >= floor and test(i - 1):
            i -= 1
        return i
    lo, step = i, 1  # lo not rejected
    while lo + step <= limit and not test(lo + step):
        lo, step = lo + step, step * 2
    if lo + step > limit and not test(limit):
        return limit + 1
    hi = min(lo + step, limit)  # rejected
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if test(mid) else (mid, hi)
    return hi


def _largest_rejected(test: Callable[[int], bool], guess: int, limit: int) -> int:
    """Largest i in [0, limit] with test(i), for a set rejected downwards; -1 when none."""
    i = min(max(guess, 0), limit)
    if not test(i):
        while i - 1 >= 0 and not test(i - 1):
            i -= 1
        return i - 1
    lo, step = i, 1  # lo rejected
    while lo + step <= limit and test(lo + step):
        lo, step = lo + step, step * 2
    if lo + step > limit and test(limit):
        return limit
    hi = min(lo + step, limit)  # not rejected
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if test(mid) else (lo, mid)
    return lo


def fixed_n_rates(n_c: int, n_p: int, canary_rate: float, production_rate: float, *,
                  max_increase: float = defaults.MAX_ERROR_INCREASE, fail_margin: float = 0.0,
                  alpha: float = defaults.ALPHA, fail_tests: int = 2) -> tuple[float, float]:
    """Exact (P(FAIL), P(PASS)) of the fixed-n judge given ``n_c`` canary and ``n_p`` production responses.

    For each production count j (binomial mass above 1e-12) it finds where the judge's own exact p-values start
    rejecting -- FAIL for canary counts from an edge up, PASS up to an edge (FAIL wins where both would) -- and
    sums the binomial probabilities of those regions.
    """
    alpha_fail = alpha / fail_tests
    j_lo = max(0, int(sps.binom.ppf(1e-12, n_p, production_rate)))
    j_hi = min(n_p, int(sps.binom.isf(1e-12, n_p, production_rate)))
    fail_edge, pass_edge = 0, 0
    p_fail = p_pass = 0.0
    for j in range(j_lo, j_hi + 1):
        floor = min(n_c + 1, math.floor(n_c * (j / n_p + fail_margin)) + 1)  # below: no evidence, p = 1
        fail_edge = _smallest_rejected(
            lambda i, j=j: exact_p_value(i, n_c, j, n_p, fail_margin, "greater") < alpha_fail,
            fail_edge, floor, n_c) if floor <= n_c else n_c + 1
        pass_edge = _largest_rejected(
            lambda i, j=j: exact_p_value(i, n_c, j, n_p, max_increase, "less") < alpha, pass_edge, n_c)
        pmf = float(sps.binom.pmf(j, n_p, production_rate))
        p_fail += pmf * float(sps.binom.sf(fail_edge - 1, n_c, canary_rate))
        top = min(pass_edge, fail_edge - 1)
        if top >= 0:
            p_pass += pmf * float(sps.binom.cdf(top, n_c, canary_rate))
    return p_fail, p_pass


@dataclass(frozen=True)
class HealthPlan:
    """Responses of all versions to decide one metric, when the canary gets ``share`` of all responses."""

    share: float
    production_rate: float
    canary_rate: float
    max_increase: float
    fail_margin: float
    alpha: float
    alpha_fail: float
    power: float
    fixed_fail: int | None        # fixed-n FAIL with probability >= power (None: FAIL is not the right verdict)
    fixed_pass: int | None        # fixed-n PASS with probability >= power (None: PASS is not the right verdict)
    sequential_fail: int | None   # sequential, along the exact path
    sequential_pass: int | None

    @property
    def fixed_n(self) -> int | None:
        found = [n for n in (self.fixed_fail, self.fixed_pass) if n is not None]
        return min(found) if found else None

    @property
    def sequential_n(self) -> int | None:
        found = [n for n in (self.sequential_fail, self.sequential_pass) if n is not None]
        return min(found) if found else None


def exact_plan(n0: int, share: float, pc: float, pp: float, *, verdict: str, max_increase: float,
               fail_margin: float, alpha: float, fail_tests: int, power: float) -> int:
    """The smallest pair size near ``n0`` whose exact probability of ``verdict`` reaches ``power`` (bisection;
    the exact power is not monotone in n to the last response, so this is the plan's "about")."""
    def enough(n: int) -> bool:
        nc = round(share * n)
        if nc < 1 or n - nc < 1:
            return False
        rates = fixed_n_rates(nc, n - nc, pc, pp, max_increase=max_increase, fail_margin=fail_margin, alpha=alpha,
                              fail_tests=fail_tests)
        return (rates[0] if verdict == "FAIL" else rates[1]) >= power

    hi = n0
    while not enough(hi):
        hi = math.ceil(hi * 1.5)
        if hi > 4 * EXACT_PLAN_LIMIT:
            return n0
    lo = max(2, hi // 4)
    if enough(lo):
        return lo
    while hi - lo > max(1, hi // 200):
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return hi


def plan_health(share: float, production_rate: float = 0.0, increase: float = 0.0, *,
                max_increase: float = defaults.MAX_ERROR_INCREASE, fail_margin: float = 0.0,
                alpha: float = defaults.ALPHA, fail_tests: int = 2, power: float = defaults.POWER,
                pair_share: float | None = None) -> HealthPlan:
    """Responses needed to judge a canary whose rate is ``production_rate + increase``.

    ``share`` is the canary's share of all responses; ``pair_share`` the canary + production share of all
    responses (default ``1``: two versions). ``fail_tests`` is the Bonferroni divisor of the FAIL level (canaries
    x metrics).
    """
    pair = 1.0 if pair_share is None else pair_share
    if not 0 < share < pair <= 1:
        raise InputError(f"the canary share must be above 0 and below its pair's share, got {share!r}")
    pc = production_rate + increase
    if not (0 <= production_rate <= 1 and 0 <= pc <= 1):
        raise InputError("rates must be fractions from 0 to 1")
    if not 0 < max_increase < 1 or not 0 <= fail_margin <= max_increase:
        raise InputError("margins: 0 < max_increase < 1 and 0 <= fail_margin <= max_increase")
    if not 0 < alpha < 0.5 or not 0 < power < 1 or fail_tests < 1:
        raise InputError("alpha must be in (0, 0.5), power in (0, 1), fail_tests >= 1")
    s = share / pair
    alpha_fail = alpha / fail_tests
    prior = rate_prior(max_increase)
    can_fail, can_pass = _routes(pc, production_rate, fail_margin, max_increase)

    def scale(n: int | None) -> int | None:
        return None if n is None else math.ceil(n / pair)

    def fixed(verdict: str, margin: float, level: float) -> int | None:
        n0 = fixed_n_route(pc, production_rate, s, margin, level, power)
        if n0 is None or n0 > EXACT_PLAN_LIMIT or n0 * (s * pc + (1 - s) * production_rate) > EXACT_PLAN_BAD:
            return n0
        return exact_plan(n0, s, pc, production_rate, verdict=verdict, max_increase=max_increase,
                          fail_margin=fail_margin, alpha=alpha, fail_tests=fail_tests, power=power)

    return HealthPlan(
        share, production_rate, pc, max_increase, fail_margin, alpha, alpha_fail, power,
        fixed_fail=scale(fixed("FAIL", fail_margin, alpha_fail)) if can_fail else None,
        fixed_pass=scale(fixed("PASS", max_increase, alpha)) if can_pass else None,
        sequential_fail=scale(sequential_route(pc, production_rate, s, fail_margin, prior, alpha_fail))
        if can_fail else None,
        sequential_pass=scale(sequential_route(pc, production_rate, s, max_increase, prior, alpha))
        if can_pass else None)
