"""Mixture likelihood ratios behind the sequential (anytime-valid) gate -- pure math, no state.

Every statistic here is a nonnegative martingale with mean 1 under its null, so by Ville's inequality
``P(sup_t E_t >= 1/alpha) <= alpha`` however often one looks -- and each is a function of the *counts* only, so
feeding a batch of responses at once (in any order) gives exactly the value after the same responses one by one.

* The split test's evidence ``E_t = (BF_t(tight) + BF_t(KT)) / 2``, the average of two Dirichlet-multinomial
  mixtures against the expected multinomial (an average of e-processes is an e-process)::

      BF_t(a) = [B(a + x) / B(a)] / prod_i p_i^x_i

  - *tight*, ``a = c p`` with c = 1/(4 tol^2) (100 at ±5 pp): the prior centred on the expected split, about a
    tolerance wide -- the most power against misroutes the size of the tolerance;
  - *KT*, ``a_i = 1/2`` (Krichevsky-Trofimov / Jeffreys): ``BF_t(KT)`` is exactly the wealth of the plug-in
    Kelly bettor that stakes, on every response, its running add-1/2 estimate of the shares against the expected
    split (``prod_t q_t(x_t) / p(x_t)``, ``q_t = (x + 1/2) / (n + k/2)``) -- a betting test, fast on gross
    misroutes (a 50/50 split where 80/20 was configured FAILs at a median ~30 responses instead of ~55).

  The average costs the tight mixture a factor 2 (log 2 nats) on small misroutes; bench/RESULTS.md measures both.

* Beta-binomial mixture vs Bernoulli(p) for one version's share (or the unattributed rate)::

      BF_t(p) = [B(a + x, b + n - x) / B(a, b)] / (p^x (1 - p)^(n - x))

  ``{p : BF_t(p) < 1/alpha}`` is a (1 - alpha) confidence sequence. ``log BF_t(p)`` is convex in p with its
  minimum (<= 0) at x/n, so the sequence is an interval containing x/n, and "the interval lies inside
  [lo, hi]" is checked in O(1) by evaluating BF at the two ends.

Priors: any proper prior keeps the guarantees; it only decides which deviations are detected fastest. They are
scaled to the tolerance (see the functions below) and the choice was calibrated in bench/calibration.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy.special import betaln, gammaln

_EPS = 1e-12


def log_threshold(alpha: float) -> float:
    """Reject when log BF >= log(1/alpha)."""
    return math.log(1.0 / alpha)


KT_PRIOR = 0.5  # Dirichlet(1/2, ..., 1/2): the Krichevsky-Trofimov plug-in bettor
LOG_HALF = math.log(0.5)


def log_split_evidence(log_bf_tight: float, log_bf_kt: float) -> float:
    """log of the split test's e-value ``(BF_tight + BF_KT) / 2``; FAIL when it exceeds ``log_threshold``."""
    hi, lo = (log_bf_tight, log_bf_kt) if log_bf_tight >= log_bf_kt else (log_bf_kt, log_bf_tight)
    if hi == math.inf:
        return math.inf
    return hi + math.log1p(math.exp(lo - hi)) + LOG_HALF


def dm_concentration(tolerance: float) -> float:
    """Total Dirichlet concentration: the prior's spread for a share near 1/2 is about one tolerance.

    A cell's prior is Beta(c p, c (1 - p)) with variance p (1 - p) / (c + 1); with c = 1/(4 tol^2) a 50% cell has a
    standard deviation of ~tol, so misroutes the size of the tolerance and larger are detected quickly
    (c = 100 for the default 5 pp).
    """
    return max(1.0, 0.25 / tolerance**2)


def share_prior(expected: float, tolerance: float) -> tuple[float, float]:
    """Beta prior for one version's share: mean ``expected``, standard deviation about tolerance/2.

    Centred where the share should be and about as wide as the margin, so the confidence sequence narrows fastest
    when the split is right -- the case a PASS has to prove. Both parameters are floored at 0.5 so versions with
    0% or 100% expected still get a proper prior.
    """
    var = max(expected * (1.0 - expected), tolerance / 4.0)
    c = var / (tolerance / 2.0) ** 2
    return max(c * expected, 0.5), max(c * (1.0 - expected), 0.5)


def unattributed_prior(limit: float) -> tuple[float, float]:
    """Beta prior for the unattributed rate: mean ``limit`` with little mass (a = 0.25) so that a clean run
    shows "below the limit" after few samples (about 500 at 1% and alpha 0.01)."""
    a = 0.25
    m = min(max(limit, 1e-6), 0.5)
    return a, a * (1.0 - m) / m


def _xlogy(x: float, p: float) -> float:
    """x * log(p) with 0 * log(0) = 0 and x * log(0) = -inf for x > 0."""
    if x == 0:
        return 0.0
    if p <= 0.0:
        return -math.inf
    return x * math.log(p)


def log_bf_binomial(x: float, n: float, p: float, a: float, b: float) -> float:
    """log BF_t(p) of the beta-binomial mixture after x successes in n trials (x, n may be real: plan paths)."""
    log_lik = _xlogy(x, p) + _xlogy(n - x, 1.0 - p)
    if log_lik == -math.inf:
        return math.inf
    return float(betaln(a + x, b + n - x) - betaln(a, b)) - log_lik


def log_bf_multinomial(counts: Sequence[float], probs: Sequence[float], concentration: float) -> float:
    """log BF of the Dirichlet-multinomial mixture (prior a = concentration * probs) vs the multinomial(probs)."""
    return log_bf_dirichlet(counts, probs, [concentration * p for p in probs])


def log_bf_split(counts: Sequence[float], probs: Sequence[float], concentration: float) -> float:
    """The split test's log e-value from the counts (closed form of the gate's running statistic)."""
    return log_split_evidence(log_bf_multinomial(counts, probs, concentration),
                              log_bf_dirichlet(counts, probs, [KT_PRIOR] * len(probs)))


def log_bf_dirichlet(counts: Sequence[float], probs: Sequence[float], a: Sequence[float]) -> float:
    """log BF of the Dirichlet(a)-multinomial mixture vs the multinomial(probs) (counts may be real: plan paths)."""
    n = float(sum(counts))
    total_a = sum(a)
    log_marginal = (float(gammaln(total_a)) - float(gammaln(total_a + n))
                    + sum(float(gammaln(ai + xi) - gammaln(ai)) for ai, xi in zip(a, counts, strict=True)))
    log_null = sum(_xlogy(xi, pi) for xi, pi in zip(counts, probs, strict=True))
    if log_null == -math.inf:
        return math.inf
    return log_marginal - log_null


def confidence_sequence(x: int, n: int, a: float, b: float, alpha: float) -> tuple[float, float]:
    """The (1 - alpha) beta-binomial confidence sequence for a share at time n: {p : BF_n(p) < 1/alpha}."""
    if n == 0:
        return 0.0, 1.0
    from scipy.optimize import brentq  # 0.1 s: only the intervals need a root finder, the gate's tests do not

    limit = log_threshold(alpha)
    center = x / n

    def excess(p: float) -> float:
        return log_bf_binomial(x, n, p, a, b) - limit

    lo = 0.0
    if center > _EPS and excess(_EPS) > 0:
        lo = brentq(excess, _EPS, center, xtol=1e-10) if excess(center) < 0 else center
    hi = 1.0
    if center < 1 - _EPS and excess(1 - _EPS) > 0:
        hi = brentq(excess, center, 1 - _EPS, xtol=1e-10) if excess(center) < 0 else center
    return float(lo), float(hi)


def inside(x: float, n: float, a: float, b: float, lo: float, hi: float, limit: float) -> bool:
    """True when the confidence sequence lies strictly inside (lo, hi): both ends reach the threshold.

    A bound outside [0, 1] is vacuous; a bound at exactly 0 (or 1) needs one success (failure) to be excluded.
    """
    if n <= 0:
        return False
    center = x / n
    if lo >= 0.0:
        if center <= lo or log_bf_binomial(x, n, lo, a, b) <= limit:
            return False
    if hi <= 1.0:
        if center >= hi or log_bf_binomial(x, n, hi, a, b) <= limit:
            return False
    return True
