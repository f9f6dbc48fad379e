"""verifier.health.difference: the constrained MLE, the exact unconditional test, the e-value and its confidence
sequence."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from scipy.optimize import minimize_scalar

from splitproof.verifier.health import difference as D


def _numeric_profile(yc: int, nc: int, yp: int, np_: int, m: float) -> float:
    lo, hi = max(0.0, -m), min(1.0, 1.0 - m)
    found = minimize_scalar(lambda p: -float(D.log_likelihood(yc, nc, p + m) + D.log_likelihood(yp, np_, p)),
                            bounds=(lo, hi), method="bounded", options={"xatol": 1e-12})
    return -float(found.fun)


def test_constrained_mle_is_the_maximum_on_the_margin() -> None:
    rng = np.random.default_rng(1)
    for _ in range(400):
        nc, np_ = (int(v) for v in rng.integers(1, 400, 2))
        yc, yp = int(rng.integers(0, nc + 1)), int(rng.integers(0, np_ + 1))
        m = float(rng.choice([0.0, 0.01, 0.05, -0.02, 0.3]))
        pc, pp = D.constrained_mle(yc, nc, yp, np_, m)
        assert pc - pp == pytest.approx(m, abs=1e-12)
        assert 0.0 <= pp <= 1.0 and 0.0 <= pc <= 1.0
        ours = float(D.log_likelihood(yc, nc, pc) + D.log_likelihood(yp, np_, pp))
        assert ours >= _numeric_profile(yc, nc, yp, np_, m) - 1e-7
        assert D.constrained_mle_scalar(yc, nc, yp, np_, m) == pytest.approx((float(pc), float(pp)), abs=1e-12)


def test_pooled_rate_is_the_mle_at_margin_zero() -> None:
    pc, pp = D.constrained_mle(7, 100, 3, 400, 0.0)
    assert float(pc) == pytest.approx(10 / 500) and float(pp) == pytest.approx(10 / 500)


@pytest.mark.parametrize("m", [0.0, 0.02, 0.1, -0.05])
def test_score_rises_with_canary_bad_and_falls_with_production_bad(m: float) -> None:
    # The exact test's rejection regions are monotone because of this (Barnard's convexity).
    for nc, np_ in ((12, 30), (25, 9), (40, 40)):
        i, j = np.meshgrid(np.arange(nc + 1), np.arange(np_ + 1), indexing="ij")
        z = D.score(i, nc, j, np_, m)
        assert np.all(np.diff(z, axis=0) >= -1e-12)
        assert np.all(np.diff(z, axis=1) <= 1e-12)


def _brute_force(yc: int, nc: int, yp: int, np_: int, m: float, alternative: str) -> float:
    """sup over a fine nuisance grid of the exact probability of a score at least as extreme (gamma = 0)."""
    z_obs = float(D.score(yc, nc, yp, np_, m))
    i, j = np.meshgrid(np.arange(nc + 1), np.arange(np_ + 1), indexing="ij")
    z = D.score(i, nc, j, np_, m)
    tol = 1e-9 * max(1.0, abs(z_obs))
    region = z >= z_obs - tol if alternative == "greater" else z <= z_obs + tol
    best = 0.0
    for pp in np.linspace(max(0.0, -m), min(1.0, 1.0 - m), 700):
        prob = np.outer(sps.binom.pmf(np.arange(nc + 1), nc, pp + m), sps.binom.pmf(np.arange(np_ + 1), np_, pp))
        best = max(best, float(prob[region].sum()))
    return best


def test_exact_p_value_is_the_sup_over_the_nuisance() -> None:
    rng = np.random.default_rng(7)
    checked = 0
    while checked < 14:
        nc, np_ = (int(v) for v in rng.integers(4, 26, 2))
        yc, yp = int(rng.integers(0, nc + 1)), int(rng.integers(0, np_ + 1))
        m = float(rng.choice([0.0, 0.05, 0.1]))
        alternative = "greater" if checked % 2 == 0 else "less"
        z = float(D.score(yc, nc, yp, np_, m))
        if (z <= 0) if alternative == "greater" else (z >= 0):
            assert D.exact_p_value(yc, nc, yp, np_, m, alternative) == 1.0  # no evidence at all
            continue
        ours = D.exact_p_value(yc, nc, yp, np_, m, alternative, gamma=0.0)
        assert ours == pytest.approx(_brute_force(yc, nc, yp, np_, m, alternative), abs=2e-5)
        checked += 1


def test_margin_zero_is_barnards_test() -> None:
    for table in ((7, 20, 1, 30), (10, 16, 10, 20), (3, 9, 0, 25)):
        yc, nc, yp, np_ = table
        ref = sps.barnard_exact([[yc, yp], [nc - yc, np_ - yp]], alternative="greater", pooled=True).pvalue
        assert D.exact_p_value(yc, nc, yp, np_, 0.0, "greater", gamma=0.0) == pytest.approx(ref, rel=1e-5)


def test_exact_test_keeps_its_level_on_the_whole_null_boundary() -> None:
    # Exact size: sum the probabilities of every table it rejects, at many production rates on d = m.
    nc, np_, m, alpha = 20, 36, 0.05, 0.05
    i, j = np.meshgrid(np.arange(nc + 1), np.arange(np_ + 1), indexing="ij")
    reject = np.vectorize(lambda a, b: D.exact_p_value(int(a), nc, int(b), np_, m, "greater") < alpha)(i, j)
    assert reject.any()
    for pp in np.linspace(0.0, 0.95, 40):
        prob = np.outer(sps.binom.pmf(np.arange(nc + 1), nc, pp + m), sps.binom.pmf(np.arange(np_ + 1), np_, pp))
        assert float(prob[reject].sum()) <= alpha


def test_exact_bounds_agree_with_the_tests() -> None:
    yc, nc, yp, np_ = 10, 400, 0, 1600
    lo = D.exact_bound(yc, nc, yp, np_, 0.005, "lower")
    hi = D.exact_bound(yc, nc, yp, np_, 0.01, "upper")
    assert 0 < lo < yc / nc < hi
    assert D.exact_p_value(yc, nc, yp, np_, lo - 1e-3, "greater") < 0.005
    assert D.exact_p_value(yc, nc, yp, np_, lo + 1e-3, "greater") >= 0.005
    assert D.exact_p_value(yc, nc, yp, np_, hi + 1e-3, "less") < 0.01
    assert D.exact_p_value(yc, nc, yp, np_, hi - 1e-3, "less") >= 0.01


def test_no_evidence_where_the_estimate_sits_on_the_margin() -> None:
    prior = D.rate_prior(0.01)
    # A mixture never beats the maximum likelihood: no evidence against d = m when the estimate is m.
    assert float(D.log_e_value(10, 1000, 40, 4000, 0.0, prior)) <= 0.0


def test_confidence_sequence_ends_sit_on_the_threshold() -> None:
    prior = D.rate_prior(0.01)
    yc, nc, yp, np_, alpha = 12, 400, 3, 1600, 0.01
    lo = D.sequence_bound(yc, nc, yp, np_, prior, alpha, "lower")
    hi = D.sequence_bound(yc, nc, yp, np_, prior, alpha, "upper")
    assert lo < yc / nc - yp / np_ < hi
    for end in (lo, hi):
        assert float(D.log_e_value(yc, nc, yp, np_, end, prior)) == pytest.approx(math.log(1 / alpha), abs=1e-6)


def test_prior_mean_is_the_margin() -> None:
    a, b = D.rate_prior(0.01)
    assert a == 0.25 and a / (a + b) == pytest.approx(0.01)
    assert D.rate_prior(1e-6)[0] / sum(D.rate_prior(1e-6)) == pytest.approx(1e-3)


def test_bad_alternative_is_an_error() -> None:
    with pytest.raises(ValueError):
        D.exact_p_value(1, 10, 1, 10, 0.0, "two-sided")
