"""verifier.stats.dists returns bit for bit what scipy.stats returns, so the fixed-n verdict can skip importing
scipy.stats (0.7 s) without changing a statistic: each function against its scipy.stats call at many points, and
whole verdicts (two to four versions, PASS / FAIL / INCONCLUSIVE with its "more samples") against the verdicts
computed through scipy.stats itself."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from splitproof.verifier.reports.jsonout import verdict_json
from splitproof.verifier.stats import dists
from splitproof.verifier.stats.fixed import judge

RNG = np.random.default_rng(20261202)
QS = [1e-14, 1e-10, 1e-4, 0.01, 0.3, 0.5, 0.9, 0.99, 1 - 1e-12]
PS = [0.0, 1e-9, 0.001, 0.05, 0.1, 0.2, 1 / 3, 0.5, 0.8, 0.999, 1.0]


def test_this_scipy_takes_the_fast_path() -> None:
    """Else the comparisons below compare scipy.stats with itself (and the start-up test would fail too)."""
    assert None not in (dists._BINOM_PPF, dists._BINOM_ISF, dists._NCX2_SF)


@pytest.mark.parametrize("q", QS)
def test_binomial_quantiles_equal_scipy_stats(q: float) -> None:
    n = np.concatenate([np.arange(0, 60), RNG.integers(0, 10**7, 300)]).astype(np.int64)
    for p in [*PS, *RNG.random(5)]:
        assert np.array_equal(dists.binom_ppf(q, n, p), sps.binom.ppf(q, n, p), equal_nan=True), (q, p)
        assert np.array_equal(dists.binom_isf(q, n, p), sps.binom.isf(q, n, p), equal_nan=True), (q, p)


def test_normal_and_chi_square_quantiles_equal_scipy_stats() -> None:
    for q in [*QS, 1e-300, *RNG.random(300)]:
        assert dists.norm_ppf(q) == sps.norm.ppf(q), q
        for df in range(1, 12):
            assert dists.chi2_ppf(q, df) == sps.chi2.ppf(q, df), (q, df)


def test_noncentral_chi_square_tail_equals_scipy_stats() -> None:
    for _ in range(2000):
        x = float(RNG.random() * 10 ** RNG.uniform(-3, 4))
        df = int(RNG.integers(1, 12))
        nc = float(RNG.random() * 10 ** RNG.uniform(-6, 4))
        assert dists.ncx2_sf(x, df, nc) == sps.ncx2.sf(x, df, nc), (x, df, nc)


SPLITS = [{"production": 0.8, "canary": 0.2}, {"production": 0.95, "canary": 0.05},
          {"production": 0.8, "canary": 0.1, "shadow": 0.1}, {"production": 0.9, "canary": 0.05, "shadow": 0.05},
          {"production": 0.7, "canary": 0.1, "shadow": 0.1, "x": 0.1}]


@pytest.mark.parametrize("expected", SPLITS, ids=lambda e: "/".join(f"{v:g}" for v in e.values()))
def test_verdicts_equal_those_computed_through_scipy_stats(expected: dict[str, float],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Whole verdicts as JSON bytes: dists' ufuncs vs dists falling back to scipy.stats' own calls."""
    cases = []
    for n in (0, 7, 60, 400, 3000):
        for skew in (0.0, 0.03, 0.12):
            p = np.array(list(expected.values()))
            p = np.abs(p + skew * np.array([-1.0] + [1.0 / (len(p) - 1)] * (len(p) - 1)))
            counts = RNG.multinomial(n, p / p.sum())
            cases.append((dict(zip(expected, counts.tolist(), strict=True)), int(RNG.integers(0, max(1, n // 50)))))
    outcomes = set()
    fast = []
    for counts, unattributed in cases:
        verdict = judge(counts, unattributed, expected)
        outcomes.add(verdict.outcome)
        fast.append(verdict_json(verdict, {}))
    for name in ("_BINOM_PPF", "_BINOM_ISF", "_NCX2_SF"):
        monkeypatch.setattr(dists, name, None)
    slow = [verdict_json(judge(counts, unattributed, expected), {}) for counts, unattributed in cases]
    assert fast == slow
    assert len(outcomes) >= 2  # the cases reach more than one outcome (INCONCLUSIVE sizes its "more samples")
