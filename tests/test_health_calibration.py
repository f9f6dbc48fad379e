"""Seeded simulations of the health judge with real assertions on its error rates, power, and the peers' flaws."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy import stats as sps
from scipy.optimize import brentq

from splitproof.verifier.health.difference import score
from splitproof.verifier.health.peers import kayenta_first_high, kayenta_high, step_series, threshold_first_failure
from splitproof.verifier.health.sequential import HealthMonitor
from splitproof.verifier.health.simulation import (
    Counts,
    crossings,
    cumulate,
    draw,
    draw_latencies,
    latency_counts,
    lognormal_latency,
    looks_at,
    simulate_health,
)

ALPHA, ALPHA_FAIL = 0.01, 0.005
FAIL, PASS, INCONCLUSIVE = "FAIL", "PASS", "INCONCLUSIVE"


def mc_bound(p: float, runs: int) -> float:
    """The promised rate plus three Monte Carlo standard errors."""
    return p + 3 * math.sqrt(p * (1 - p) / runs)


@pytest.mark.parametrize("share", [0.05, 0.2, 0.5])
def test_false_fail_stays_below_alpha_looking_after_every_response(share: float) -> None:
    runs, horizon = 400, 4000
    rng = np.random.default_rng(100 + int(100 * share))
    canary, bad = draw(share, 0.02, 0.02, runs, horizon, rng)  # equally healthy, 2% errors each
    counts = cumulate(canary, bad, looks_at(horizon, 1))
    first_fail, first_pass = crossings(counts, max_increase=0.01, fail_margin=0.0, alpha=ALPHA, alpha_fail=ALPHA_FAIL)
    false_fail = np.mean((first_fail > 0) & ((first_pass == 0) | (first_fail <= first_pass)))
    assert false_fail <= mc_bound(ALPHA_FAIL, runs)
    batched = cumulate(canary, bad, looks_at(horizon, 250))
    f_b, p_b = crossings(batched, max_increase=0.01, fail_margin=0.0, alpha=ALPHA, alpha_fail=ALPHA_FAIL)
    assert np.mean((f_b > 0) & ((p_b == 0) | (f_b <= p_b))) <= mc_bound(ALPHA_FAIL, runs)
    # The same data through the same score test at the same level, re-run at every look: the harness can tell.
    z = score(counts.yc, np.maximum(counts.nc, 1), counts.yp, np.maximum(counts.np_, 1), 0.0)
    naive = np.mean(((z > sps.norm.ppf(1 - ALPHA_FAIL)) & (counts.nc > 0) & (counts.np_ > 0)).any(axis=1))
    assert naive > mc_bound(ALPHA_FAIL, runs)


def test_a_canary_failing_five_percent_is_failed_within_a_few_hundred_responses() -> None:
    at_20 = simulate_health(0.2, 0.05, 0.0, runs=400, horizon=2000, seed=1)
    assert at_20.rate("FAIL") == 1.0
    assert np.median(at_20.stopped_at) < 700 and np.percentile(at_20.stopped_at, 90) < 1100
    at_5 = simulate_health(0.05, 0.05, 0.0, runs=400, horizon=4000, seed=2)
    assert at_5.rate("FAIL") >= 0.95 and at_5.rate("PASS") == 0.0


def test_a_healthy_canary_passes_and_a_margin_canary_does_not() -> None:
    healthy = simulate_health(0.2, 0.0, 0.0, runs=300, horizon=5000, seed=3)
    assert healthy.rate("PASS") == 1.0 and np.median(healthy.stopped_at) < 4000
    at_margin = simulate_health(0.2, 0.015, 0.005, runs=300, horizon=8000, seed=4)  # worse by exactly 1 pp
    assert at_margin.rate("PASS") <= mc_bound(ALPHA, 300)


@pytest.mark.slow
def test_latency_judge_with_a_warm_up_threshold() -> None:
    runs, horizon = 200, 6000
    rng = np.random.default_rng(5)
    production = lognormal_latency(4.0, 0.5)
    for canary_model, expect_fail in ((production, False), (lognormal_latency(4.0, 0.5, shift_ms=40.0), True)):
        canary, latency = draw_latencies(0.2, canary_model, production, runs, horizon, rng)
        counts, thresholds = latency_counts(canary, latency, looks_at(horizon, 1))
        assert np.all((thresholds > 5) & (thresholds < 15))  # production's p95 is 9.1 ms
        f, p = crossings(counts, max_increase=0.05, fail_margin=0.0, alpha=ALPHA, alpha_fail=ALPHA)
        failed = (f > 0) & ((p == 0) | (f <= p))
        if expect_fail:
            assert failed.all() and np.median(f) < 400  # right after production's 200-response warm-up
        else:
            assert failed.mean() <= mc_bound(ALPHA, runs) and (p > 0).mean() > 0.8


@pytest.mark.slow
def test_peers_raise_false_alarms_on_a_healthy_canary() -> None:
    runs, horizon = 300, 20_000
    rng = np.random.default_rng(6)
    canary, bad = draw(0.2, 0.005, 0.005, runs, horizon, rng)
    cs, bs = step_series(canary, bad, 500)
    kayenta = kayenta_first_high(cs, bs, every=2, step=500, rng=rng)
    assert np.mean(kayenta > 0) > 0.05  # Mann-Whitney re-run every interval: several times alpha
    interval, _ = step_series(canary, bad, 1000)
    flagger = threshold_first_failure(interval, 0.01, interval_steps=1, step=1000)
    assert np.mean(flagger > 0) > 0.5  # "error rate below 1%" on 200 canary responses per interval
    ours = simulate_health(0.2, 0.005, 0.005, runs=runs, horizon=horizon, look_every=1000, seed=7)
    assert ours.rate("FAIL") <= mc_bound(ALPHA_FAIL, runs)


def _stream(rng: random.Random, n: int, share: float, pc: float, pp: float) -> list[tuple[str, bool]]:
    out = []
    for _ in range(n):
        v = "canary" if rng.random() < share else "production"
        out.append((v, rng.random() < (pc if v == "canary" else pp)))
    return out


def test_monitor_and_vectorised_simulation_decide_alike() -> None:
    rng = random.Random(11)
    fails_and_passes = set()
    for run in range(24):
        pc = (0.0, 0.01, 0.03)[run % 3]
        events = _stream(rng, 3000, 0.3, pc, 0.01)
        m = HealthMonitor(["production", "canary"], "production", alpha=0.05)
        decided_at = 0
        for i, (v, bad) in enumerate(events):
            m.observe(v, error=bad)
            if m.decided:
                decided_at = i + 1
                break
        canary = np.array([[v == "canary" for v, _ in events]])
        bad = np.array([[b for _, b in events]])
        looks = np.arange(1, len(events) + 1)
        counts = Counts(looks, np.cumsum(canary, axis=1), np.cumsum(canary & bad, axis=1),
                        np.cumsum(~canary, axis=1), np.cumsum(~canary & bad, axis=1))
        f, p = crossings(counts, max_increase=0.01, fail_margin=0.0, alpha=0.05, alpha_fail=0.05)
        first = min(x for x in (int(f[0]), int(p[0]), 10**9) if x > 0)
        expected = FAIL if f[0] and (not p[0] or f[0] <= p[0]) else PASS if p[0] else INCONCLUSIVE
        assert m.verdict().outcome == expected
        assert decided_at == (first if expected != INCONCLUSIVE else 0)
        fails_and_passes.add(expected)
    assert {FAIL, PASS} <= fails_and_passes


def _reference_kayenta_high(x: np.ndarray, y: np.ndarray) -> bool:
    """Kayenta's MannWhitney.wilcoxonDiff and root finding, transcribed one comparison at a time."""
    if np.array_equal(np.sort(x), np.sort(y)) or len(np.unique(np.concatenate([x, y]))) == 1:
        return False

    def diff(mu: float, zq: float) -> float:
        both = np.concatenate([x - mu, y])
        ranks = sps.rankdata(both)
        _, ties = np.unique(both, return_counts=True)
        nx, ny = len(x), len(y)
        dz = ranks[:nx].sum() - nx * (nx + 1) / 2 - nx * ny / 2
        sigma = math.sqrt(nx * ny / 12 * ((nx + ny + 1) - (ties**3 - ties).sum() / ((nx + ny) * (nx + ny - 1))))
        return (dz - np.sign(dz) * 0.5) / sigma - zq

    lo_mu, hi_mu = x.min() - y.max(), x.max() - y.min()

    def root(zq: float) -> float:
        if diff(lo_mu, zq) <= 0:
            return lo_mu
        if diff(hi_mu, zq) >= 0:
            return hi_mu
        return brentq(lambda mu: diff(mu, zq), lo_mu, hi_mu, xtol=1e-12)

    lower, estimate = root(float(sps.norm.ppf(0.99))), root(0.0)
    ratio = np.nan if x.mean() == 0 or y.mean() == 0 else x.mean() / y.mean()
    return bool(lower > 0.25 * abs(estimate) + 1e-9 and (np.isnan(ratio) or ratio >= 1))


def test_vectorised_kayenta_matches_its_algorithm() -> None:
    rng = np.random.default_rng(8)
    agree = 0
    highs = 0
    for trial in range(150):
        k = int(rng.integers(3, 14))
        if trial % 2:
            x, y = rng.lognormal(1.4, 0.5, k) * rng.choice([1.0, 1.4]), rng.lognormal(1.4, 0.5, k)
        else:
            x, y = rng.binomial(20, rng.choice([0.02, 0.15]), k) / 20, rng.binomial(80, 0.02, k) / 80
        ref = _reference_kayenta_high(x, y)
        agree += ref == bool(kayenta_high(x[None, :], y[None, :])[0])
        highs += ref
    assert agree >= 148 and 10 < highs < 140  # exact ties at the tolerance may land either way
