"""Fixed-n split test with three or more versions: exact sizes across n, and the cost of the exact test.

Sizes are exact sums over every possible outcome (brute-force enumeration and sorting, independent of the
project's fast sum; tests/test_exact.py checks ``judge()`` takes exactly the exact test's decisions). Baseline for
the cost: ``scipy.stats.chisquare`` on the same counts -- what ``judge()`` used before.
"""

from __future__ import annotations

import time

import numpy as np
from scipy import stats as sps

from splitproof.verifier.stats.exact import compositions, goodness_of_fit, log_pmf
from splitproof.verifier.stats.fixed import judge

CONFIGS: tuple[tuple[float, ...], ...] = ((0.9, 0.05, 0.05), (0.8, 0.1, 0.1), (0.98, 0.01, 0.01), (0.6, 0.3, 0.1),
                                          (0.4, 0.3, 0.2, 0.1))
SIZES = (20, 30, 45, 65, 80, 105, 150, 220, 300, 420, 575)


def sizes(p: np.ndarray, n: int, alpha: float) -> tuple[float, float]:
    """(size of the earlier chi-square rule, exact multinomial size) at alpha: P(reject) under the expected split,
    summed exactly. Before: Pearson chi-square when every expected count is at least 5, else the exact test."""
    outcomes = compositions(n, len(p))
    lp = log_pmf(outcomes, p)
    pmf = np.exp(lp)
    stat = ((outcomes - n * p) ** 2 / (n * p)).sum(axis=1)
    order = np.argsort(lp)
    cumulative = np.cumsum(pmf[order])
    p_value = cumulative[np.searchsorted(lp[order], lp + 1e-7, side="right") - 1]
    exact = float(pmf[p_value < alpha].sum())
    if float((n * p).min()) < 5:
        return exact, exact
    return float(pmf[sps.chi2.sf(stat, len(p) - 1) < alpha].sum()), exact


def size_table(alpha: float) -> list[tuple[tuple[float, ...], list[int], list[float], list[float]]]:
    rows = []
    for split in CONFIGS:
        p = np.array(split)
        ns = [n for n in SIZES if len(p) == 3 or n <= 105]  # four versions: C(n + 3, 3) outcomes
        chi, exact = zip(*(sizes(p, n, alpha) for n in ns), strict=True)
        rows.append((split, ns, list(chi), list(exact)))
    return rows


def judge_cost(split: tuple[float, ...], n: int, repeats: int = 5) -> tuple[float, float, float, str]:
    """(ms per judge() call, ms per goodness_of_fit -- the exact test --, ms per scipy chisquare on the same
    counts, the method) at n responses."""
    rng = np.random.default_rng(n)
    names = "abcdefgh"[: len(split)]
    x = rng.multinomial(n, split)
    p = np.array(split)
    counts = dict(zip(names, x.tolist(), strict=True))
    expected = dict(zip(names, split, strict=True))

    def per_call(fn, times: int) -> float:
        fn()  # warm
        start = time.perf_counter()
        for _ in range(times):
            fn()
        return (time.perf_counter() - start) / times * 1e3

    whole = per_call(lambda: judge(counts, 0, expected), repeats)
    gof = per_call(lambda: goodness_of_fit(x, p), repeats)
    base = per_call(lambda: sps.chisquare(x, n * p), repeats * 20)
    return whole, gof, base, goodness_of_fit(x, p)[2]
