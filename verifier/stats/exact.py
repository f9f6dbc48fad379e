"""Exact tests behind the fixed-n verdict: binomial tails, Clopper-Pearson intervals, the exact multinomial test.

The split test is the exact "minimum likelihood" test for every number of versions: the p-value is the
probability, under the expected multinomial, of all outcomes no more likely than the observed one (for two versions
it is the two-sided exact binomial test, as ``scipy.stats.binomtest``). Its size never exceeds alpha, at any n;
Pearson's chi-square approximation does (1.2-1.5% at alpha 1% for 80/10/10, 90/5/5 or 98/1/1 at moderate n,
bench/RESULTS.md).

The multinomial sum is cheap at any n: given the counts of all versions but the two largest, the remaining pair is
binomial and the joint pmf unimodal in it, so the outcomes no more likely than the observed one are two tails
found by bisection and summed with the binomial CDF. Only the counts of the k - 2 smaller versions are enumerated,
over their range of non-negligible probability, skipping every subtree in which no outcome is more likely than the
observed one; the dropped mass (at most 2e-14 per version) is added to the p-value, which is therefore exact or
larger by at most that bound -- never smaller. Three versions cost O(sqrt(n) log n) (a few milliseconds at
n = 100,000); four about O(n log n) (0.3 s at n = 50,000). Only when the enumeration would exceed
``PREFIX_BUDGET`` (four versions beyond about 100,000 responses, five beyond about 750) does the p-value come
from seeded Monte Carlo draws (200,000: within about ±0.03 points of alpha), and the method says so.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special
from scipy.special import gammaln

from splitproof.verifier.stats.dists import binom_isf, binom_ppf, norm_ppf
from splitproof.verifier.stats.margins import margins

PRUNE = 1e-14               # conditional tail mass dropped per side and enumerated version (added to the p-value)
PREFIX_BUDGET = 5_000_000    # enumerated count combinations of the smaller versions before Monte Carlo
MONTE_CARLO_DRAWS = 200_000
TIE = 1e-7                  # relative tolerance on "no more likely than" (scipy.stats.binomtest uses 1 + 1e-7)


def clopper_pearson(x: int, n: int, alpha: float) -> tuple[float, float]:
    """Equal-tailed interval at level 1 - 2 alpha (each tail alpha): the TOST-consistent interval."""
    if n == 0:
        return 0.0, 1.0
    lo = 0.0 if x == 0 else float(special.betaincinv(x, n - x + 1, alpha))
    hi = 1.0 if x == n else float(special.betaincinv(x + 1, n - x, 1 - alpha))
    return lo, hi


def _log_binom_pmf(y: int, n: int, p: float) -> float:
    log_choose = gammaln(n + 1) - gammaln(y + 1) - gammaln(n - y + 1)
    return float(log_choose + special.xlogy(y, p) + special.xlog1py(n - y, -p))


def binomial_p_value(x: int, n: int, p: float) -> float:
    """Two-sided exact binomial test of share == p (the "minimum likelihood" method, as scipy's binomtest):
    the probability of all outcomes no more likely than the observed one."""
    if n == 0:
        return 1.0
    if p <= 0.0:
        return 1.0 if x == 0 else 0.0
    if p >= 1.0:
        return 1.0 if x == n else 0.0
    observed = _log_binom_pmf(x, n, p) + TIE
    mode = math.floor((n + 1) * p)
    if x == mode or (x < mode and x + 1 == mode and _log_binom_pmf(mode, n, p) <= observed):
        return 1.0
    if x < n * p:  # other tail: the first y above the mode whose pmf is <= the observed one
        lo_y, hi_y = max(mode, x + 1), n + 1
        while lo_y < hi_y:
            mid = (lo_y + hi_y) // 2
            lo_y, hi_y = (lo_y, mid) if _log_binom_pmf(mid, n, p) <= observed else (mid + 1, hi_y)
        total = p_at_most(x, n, p) + (p_at_least(lo_y, n, p) if lo_y <= n else 0.0)
    else:
        lo_y, hi_y = -1, min(mode, x - 1)  # the last y below the mode whose pmf is <= the observed one
        while lo_y < hi_y:
            mid = (lo_y + hi_y + 1) // 2
            lo_y, hi_y = (mid, hi_y) if _log_binom_pmf(mid, n, p) <= observed else (lo_y, mid - 1)
        total = p_at_least(x, n, p) + (p_at_most(lo_y, n, p) if lo_y >= 0 else 0.0)
    return float(min(1.0, total))


def p_at_least(x: int, n: int, p: float) -> float:
    """P(X >= x) for X ~ Binomial(n, p): one-sided p-value against H0 "share <= p" (p < 0: empty null -> 0)."""
    if p < 0.0:
        return 0.0
    if x <= 0:
        return 1.0
    if x > n:
        return 0.0
    return float(special.bdtrc(x - 1, n, min(p, 1.0)))


def p_at_most(x: int, n: int, p: float) -> float:
    """P(X <= x) for X ~ Binomial(n, p): one-sided p-value against H0 "share >= p" (p > 1: empty null -> 0)."""
    if p > 1.0:
        return 0.0
    if x >= n:
        return 1.0
    if x < 0:
        return 0.0
    return float(special.bdtr(x, n, max(p, 0.0)))


def equivalence_p_value(x: int, n: int, lo: float, hi: float) -> float:
    """Exact TOST for lo < share < hi: the larger of the two one-sided p-values (a bound outside [0, 1] is
    vacuous; one at exactly 0 or 1 needs a single success or failure to be excluded)."""
    if n == 0:
        return 1.0
    return max(p_at_least(x, n, lo), p_at_most(x, n, hi))


def tost_p_value(x: int, n: int, expected: float, tolerance: float) -> float:
    """Exact TOST for |share - expected| < tolerance (a plain margin; the verdicts use
    ``equivalence_p_value`` on :func:`verifier.stats.margins.version_margins`)."""
    return equivalence_p_value(x, n, *margins(expected, tolerance))


# --------------------------------------------------------------------------------------- the multinomial test


def compositions(n: int, k: int) -> np.ndarray:
    """All k-tuples of non-negative integers summing to n, as an (M, k) array (M = C(n + k - 1, k - 1))."""
    if k == 1:
        return np.array([[n]], dtype=np.int64)
    parts = []
    for first in range(n + 1):
        rest = compositions(n - first, k - 1)
        parts.append(np.column_stack([np.full(len(rest), first, dtype=np.int64), rest]))
    return np.concatenate(parts)


def log_pmf(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    """log Multinomial(x; n = sum x, p), vectorised over the leading axes of x."""
    n = x.sum(axis=-1)
    return gammaln(n + 1) - gammaln(x + 1).sum(axis=-1) + special.xlogy(x, p).sum(axis=-1)


def _log_binom(z: np.ndarray, m: np.ndarray, q: float) -> np.ndarray:
    return (gammaln(m + 1) - gammaln(z + 1) - gammaln(m - z + 1) + special.xlogy(z, q)
            + special.xlog1py(m - z, -q))


def _bisect(lo: np.ndarray, hi: np.ndarray, true_at_lo: bool, pred) -> np.ndarray:
    """Per element, the boundary of a monotone integer predicate between lo and hi (exclusive ends: ``pred`` is
    taken as ``true_at_lo`` at lo and the opposite at hi). Returns the last lo-side integer."""
    lo, hi = lo.copy(), hi.copy()
    while True:
        active = hi - lo > 1
        if not active.any():
            return lo
        mid = (lo + hi) // 2
        ok = pred(mid) == true_at_lo
        lo = np.where(active & ok, mid, lo)
        hi = np.where(active & ~ok, mid, hi)


def _pair_tails(m: np.ndarray, q: float, threshold: np.ndarray) -> np.ndarray:
    """For Z ~ Binomial(m, q) (vectorised over m): P(log pmf(Z) <= threshold)."""
    out = np.ones(len(m))
    mode = np.clip(np.floor((m + 1) * q).astype(np.int64), 0, m)
    need = _log_binom(mode, m, q) > threshold  # elsewhere even the most likely split of the pair counts
    m, mode, threshold = m[need], mode[need], threshold[need]
    # below the mode the pmf is non-decreasing: the tail is [0, L], L the last z with pmf <= threshold
    last_low = _bisect(np.full_like(m, -1), mode, True, lambda z: _log_binom(z, m, q) <= threshold)
    # above the mode it is non-increasing: the tail is [U, m], U the first z with pmf <= threshold
    first_high = _bisect(mode, m + 1, False, lambda z: _log_binom(np.minimum(z, m), m, q) <= threshold) + 1
    low = np.where(last_low >= 0, special.bdtr(np.maximum(last_low, 0), m, q), 0.0)
    high = np.where(first_high <= m, special.bdtrc(np.minimum(first_high - 1, m), m, q), 0.0)
    out[need] = low + high
    return out


def _prefix_count(n: int, p: np.ndarray) -> float:
    """About how many count combinations of the k - 2 smaller versions the exact sum enumerates."""
    z = -norm_ppf(PRUNE)
    width = [2 * z * math.sqrt(n * pi * (1 - pi)) + 2 for pi in p[:-2]]
    return float(np.prod(width)) if width else 1.0


def exact_multinomial_p_value(x: np.ndarray, p: np.ndarray, *, seed: int = 20240521) -> tuple[float, str]:
    """P(an outcome at most as likely as the observed one) under Multinomial(n, p); ``p`` all positive.

    Exact (up to an added bound of about 1e-14 per version, see the module docstring) unless the enumeration
    would exceed ``PREFIX_BUDGET``; then seeded Monte Carlo with the conservative (1 + hits) / (1 + draws).
    """
    x = np.asarray(x, dtype=np.int64)
    p = np.asarray(p, dtype=float)
    order = np.argsort(p, kind="stable")  # the two largest versions form the summed pair, the rest is enumerated
    x, p = x[order], p[order]
    n, k = int(x.sum()), len(x)
    threshold = float(log_pmf(x, p)) + TIE
    if _prefix_count(n, p) > PREFIX_BUDGET:
        rng = np.random.default_rng(seed)
        draws = rng.multinomial(n, p, size=MONTE_CARLO_DRAWS)
        hits = int((log_pmf(draws, p) <= threshold).sum())
        return (1 + hits) / (1 + MONTE_CARLO_DRAWS), f"Monte Carlo multinomial ({MONTE_CARLO_DRAWS:,} draws)"
    log_prefix = np.zeros(1)
    remaining = np.full(1, n, dtype=np.int64)
    dropped = tail = 0.0
    rest = float(p.sum())
    for j in range(k - 2):  # enumerate version j's count given the counts before it
        q = min(1.0, float(p[j]) / rest)
        lo = np.nan_to_num(binom_ppf(PRUNE, remaining, q), nan=0.0)
        hi = np.nan_to_num(binom_isf(PRUNE, remaining, q), nan=0.0)
        lo = np.clip(lo.astype(np.int64), 0, remaining)
        hi = np.clip(hi.astype(np.int64), lo, remaining)
        weight = np.exp(log_prefix)
        tails = np.where(lo > 0, special.bdtr(np.maximum(lo - 1, 0), remaining, q), 0.0) + \
            np.where(hi < remaining, special.bdtrc(hi, remaining, q), 0.0)
        dropped += float((weight * tails).sum())
        width = hi - lo + 1
        parent = np.repeat(np.arange(len(width)), width)
        offset = np.arange(int(width.sum())) - np.repeat(np.cumsum(width) - width, width)
        y = lo[parent] + offset
        log_prefix = log_prefix[parent] + _log_binom(y, remaining[parent], q)
        remaining = remaining[parent] - y
        rest -= float(p[j])
        if j < k - 3:  # a subtree no outcome of which is more likely than the observed one is all in the tail
            bound = np.full(len(remaining), np.inf)
            for r in range(j + 1, k):  # the joint pmf is at most any one version's largest marginal pmf
                qr = min(1.0, float(p[r]) / rest)
                mode = np.clip(np.floor((remaining + 1) * qr).astype(np.int64), 0, remaining)
                bound = np.minimum(bound, _log_binom(mode, remaining, qr))
            done = log_prefix + bound <= threshold
            tail += float(np.exp(log_prefix[done]).sum())
            log_prefix, remaining = log_prefix[~done], remaining[~done]
    q = float(p[-2]) / rest if k >= 2 else 0.0
    inner = _pair_tails(remaining, q, threshold - log_prefix)
    total = float((np.exp(log_prefix) * inner).sum()) + tail + dropped
    return min(1.0, total), "exact multinomial"


def goodness_of_fit(x: np.ndarray, p: np.ndarray) -> tuple[float | None, float, str]:
    """(statistic, p-value, method) of observed counts ``x`` against expected fractions ``p``: exact at every n."""
    if np.any((p <= 0) & (x > 0)):
        return math.inf, 0.0, "impossible under the expected split"
    keep = p > 0
    x, p = x[keep], p[keep] / p[keep].sum()
    n = int(x.sum())
    if n == 0:
        return None, 1.0, "no attributed responses"
    if len(x) == 1:
        return 0.0, 1.0, "single version"
    if len(x) == 2:
        return None, binomial_p_value(int(x[1]), n, float(p[1])), "exact binomial"
    pval, method = exact_multinomial_p_value(x, p)
    return None, pval, method
