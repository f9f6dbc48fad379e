"""The fixed-n split test with three or more versions: exact sizes, summed over every possible outcome.

Pearson's chi-square overshot alpha at these configurations (an earlier version used it: 1.38% at 90/5/5 with
n = 105, 1.21% at 80/10/10 with n = 65, 1.49% at 98/1/1 with n = 575, alpha 1%); the exact multinomial test must
not, and its fast sum must agree with brute-force enumeration.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from splitproof.verifier.stats.exact import compositions, exact_multinomial_p_value, goodness_of_fit, log_pmf
from splitproof.verifier.stats.fixed import judge
from splitproof.verifier.verdict import FAIL

ALPHA = 0.01


def brute_force(p: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(outcomes, pmf, exact p-value of each): P(an outcome no more likely than it), by sorting all of them."""
    outcomes = compositions(n, len(p))
    lp = log_pmf(outcomes, p)
    order = np.argsort(lp)
    cumulative = np.cumsum(np.exp(lp[order]))
    at = np.searchsorted(lp[order], lp + 1e-7, side="right") - 1  # ties within the test's relative 1e-7
    return outcomes, np.exp(lp), cumulative[at]


def chi_square_size(outcomes: np.ndarray, pmf: np.ndarray, p: np.ndarray, n: int) -> float:
    stat = ((outcomes - n * p) ** 2 / (n * p)).sum(axis=1)
    return float(pmf[sps.chi2.sf(stat, len(p) - 1) < ALPHA].sum())


@pytest.mark.parametrize(("split", "n"), [((0.9, 0.05, 0.05), 105), ((0.8, 0.1, 0.1), 65),
                                          ((0.98, 0.01, 0.01), 575)])
def test_judge_false_fail_rate_is_at_most_alpha_exactly(split: tuple[float, ...], n: int) -> None:
    p = np.array(split)
    expected = dict(zip("abc", split, strict=True))
    outcomes, pmf, brute = brute_force(p, n)
    assert chi_square_size(outcomes, pmf, p, n) > ALPHA  # where the approximation overshoots
    # the real judge() on every outcome that carries probability; the rest can add at most its total mass
    keep = pmf > 1e-12
    fails = np.array([judge(dict(zip("abc", x.tolist(), strict=True)), 0, expected).outcome == FAIL
                      for x in outcomes[keep]])
    size = float(pmf[keep][fails].sum())
    assert size + float(pmf[~keep].sum()) <= ALPHA, size
    assert size > 0.5 * ALPHA  # not vacuous: the test does reject near its level
    # and its decisions are exactly the exact test's
    assert np.array_equal(fails, brute[keep] < ALPHA)


@pytest.mark.parametrize(("split", "n"), [
    ((0.6, 0.3, 0.1), 40), ((0.98, 0.01, 0.01), 120), ((0.4, 0.3, 0.2, 0.1), 30), ((0.25, 0.25, 0.25, 0.25), 24),
    ((0.7, 0.1, 0.1, 0.05, 0.05), 14), ((0.5, 0.5), 60),
])
def test_fast_exact_sum_matches_brute_force_enumeration(split: tuple[float, ...], n: int) -> None:
    p = np.array(split)
    outcomes, _, brute = brute_force(p, n)
    rng = np.random.default_rng(len(split) * 1000 + n)
    for i in rng.choice(len(outcomes), size=min(150, len(outcomes)), replace=False):
        fast, method = exact_multinomial_p_value(outcomes[i], p)
        assert method == "exact multinomial"
        assert brute[i] - 1e-12 <= fast <= brute[i] + 1e-9, (outcomes[i], fast, brute[i])  # never below exact


def test_exact_sum_is_cheap_and_exact_at_large_n() -> None:
    """At n = 50,000 only the smallest version's count is enumerated (its non-negligible range); the p-value
    matches the chi-square approximation there, which is accurate at that size."""
    p = np.array([0.6, 0.3, 0.1])
    x = np.array([30_180, 14_900, 4_920])
    fast, method = exact_multinomial_p_value(x, p)
    chi = sps.chisquare(x, 50_000 * p).pvalue
    assert method == "exact multinomial" and fast == pytest.approx(chi, rel=0.05)
    _, p_gof, gof_method = goodness_of_fit(x, p)
    assert gof_method == "exact multinomial" and p_gof == pytest.approx(fast, rel=1e-9)
