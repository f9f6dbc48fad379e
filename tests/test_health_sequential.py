"""verifier.health.sequential: per-response and batch looks, order invariance, warm-up, frozen verdicts."""

from __future__ import annotations

import random

import pytest

from splitproof.verifier.errors import InputError
from splitproof.verifier.health.difference import log_e_value, rate_prior
from splitproof.verifier.health.latency import WarmupThreshold, given_threshold
from splitproof.verifier.health.model import (
    ERRORS,
    LATENCY,
    NOT_JUDGED,
    WORSE,
    MetricCount,
    error_criterion,
    latency_criterion,
)
from splitproof.verifier.health.sequential import HealthMonitor, log_e
from splitproof.verifier.verdict import FAIL, INCONCLUSIVE, PASS, UNDECIDED, WITHIN

VERSIONS = ["production", "canary"]


def stream(rng: random.Random, n: int, share: float, pc: float, pp: float) -> list[tuple[str, bool]]:
    out = []
    for _ in range(n):
        v = "canary" if rng.random() < share else "production"
        out.append((v, rng.random() < (pc if v == "canary" else pp)))
    return out


def test_the_hot_path_e_value_is_the_vectorised_one() -> None:
    prior = rate_prior(0.01)
    for args in ((3, 100, 1, 400, 0.0), (0, 2000, 0, 8000, 0.01), (40, 500, 5, 2000, 0.02)):
        assert log_e(*args, prior) == pytest.approx(float(log_e_value(*args, prior)), abs=1e-9)


def test_a_failing_canary_fails_fast_and_the_verdict_freezes() -> None:
    m = HealthMonitor(VERSIONS, "production")
    events = stream(random.Random(3), 5000, 0.2, 0.05, 0.0)
    used = 0
    while not m.decided:
        v, bad = events[used]
        m.observe(v, error=bad)
        used += 1
    assert used < 2000
    verdict = m.verdict()
    assert verdict.outcome == FAIL and verdict.method == "sequential"
    assert verdict.reason.startswith("canary errors ") and f"(decided after {used:,} responses)" in verdict.reason
    for v, bad in events[used:used + 100]:
        m.observe(v, error=bad)
    assert m.verdict() is verdict and m.observed_after_decision == 100


def test_a_healthy_canary_passes() -> None:
    m = HealthMonitor(VERSIONS, "production")
    for v, bad in stream(random.Random(4), 8000, 0.2, 0.0, 0.0):
        m.observe(v, error=bad)
        if m.decided:
            break
    v = m.verdict()
    assert v.outcome == PASS and 2500 < m.responses < 5000
    assert v.metric(ERRORS).rows[0].hi < 0.01


def batches_of(events: list[tuple[str, bool]], size: int) -> list[list[tuple[str, bool]]]:
    return [events[i:i + size] for i in range(0, len(events), size)]


def tally_batch(batch: list[tuple[str, bool]]) -> dict[str, dict[str, MetricCount]]:
    out = {}
    for version in VERSIONS:
        bads = [b for v, b in batch if v == version]
        out[version] = MetricCount(len(bads), sum(bads))
    return {ERRORS: out}


def test_batches_decide_at_their_boundaries_whatever_the_order_inside() -> None:
    events = stream(random.Random(5), 6000, 0.2, 0.02, 0.0)
    outcomes = set()
    for shuffle_seed in range(4):
        m = HealthMonitor(VERSIONS, "production")
        fed = 0
        for batch in batches_of(events, 500):
            shuffled = batch[:]
            random.Random(shuffle_seed).shuffle(shuffled)
            m.observe_batch(tally_batch(shuffled))
            fed += 1
            if m.decided:
                break
        v = m.verdict()
        outcomes.add((v.outcome, fed, v.reason))
        assert m.responses == 500 * fed
    assert len(outcomes) == 1 and next(iter(outcomes))[0] == FAIL  # same verdict, same batch, same text
    # The same responses one by one give the same statistic where the batches end.
    quiet = stream(random.Random(6), 1000, 0.2, 0.005, 0.005)
    m_events = HealthMonitor(VERSIONS, "production")
    m_batch = HealthMonitor(VERSIONS, "production")
    for batch in batches_of(quiet, 500):
        m_batch.observe_batch(tally_batch(batch))
        for v, bad in batch:
            m_events.observe(v, error=bad)
        assert not (m_events.decided or m_batch.decided)
        a, b = m_events.verdict().metric(ERRORS).rows[0], m_batch.verdict().metric(ERRORS).rows[0]
        assert (a.n, a.bad, a.baseline_n, a.baseline_bad) == (b.n, b.bad, b.baseline_n, b.baseline_bad)
        assert (a.lo, a.hi) == pytest.approx((b.lo, b.hi))


def test_a_row_shown_within_keeps_its_fail_test_running() -> None:
    criteria = [error_criterion(), latency_criterion(given_threshold(10))]
    m = HealthMonitor(VERSIONS, "production", criteria=criteria)
    m.observe_batch({ERRORS: {"production": MetricCount(8000, 0), "canary": MetricCount(2000, 0)},
                     LATENCY: {"production": MetricCount(80, 4), "canary": MetricCount(20, 1)}})
    assert not m.decided
    assert m.verdict().metric(ERRORS).rows[0].status == WITHIN
    assert m.verdict().metric(LATENCY).rows[0].status == UNDECIDED
    m.observe_batch({ERRORS: {"production": MetricCount(800, 0), "canary": MetricCount(200, 60)},
                     LATENCY: {"production": MetricCount(80, 4), "canary": MetricCount(20, 1)}})
    v = m.verdict()
    assert v.outcome == FAIL and v.metric(ERRORS).rows[0].status == WORSE


def test_latency_threshold_from_a_production_warm_up_not_reused() -> None:
    rng = random.Random(9)
    m = HealthMonitor(VERSIONS, "production", criteria=[latency_criterion()], warmup=WarmupThreshold(100))
    seen = {"production": 0, "canary": 0}
    while not m.decided and sum(seen.values()) < 20000:
        v = "canary" if rng.random() < 0.2 else "production"
        seen[v] += 1
        m.observe(v, error=False, latency_ms=rng.lognormvariate(1.4, 0.5) + (40 if v == "canary" else 0))
        if sum(seen.values()) == 50:
            assert m.verdict().metric(LATENCY).outcome == INCONCLUSIVE
            assert "warm-up" in m.verdict().reason
    v = m.verdict()
    assert v.outcome == FAIL and m.latency_threshold is not None
    assert "production's p95 over 100 warm-up responses" in m.latency_threshold.describe()
    row = v.metric(LATENCY).rows[0]
    assert row.baseline_n == seen["production"] - 100 and row.n == seen["canary"]  # held canary ones counted
    assert row.rate == 1.0 and v.reason.startswith(f"canary slow (>{m.latency_threshold.ms:.3g} ms) 100.0%")


def test_errors_not_attributable_leaves_latency_to_decide() -> None:
    m = HealthMonitor(VERSIONS, "production", criteria=[error_criterion(), latency_criterion(given_threshold(10))],
                      errors_attributable=False)
    assert m.alpha_fail == m.alpha
    m.observe_batch({LATENCY: {"production": MetricCount(8000, 400), "canary": MetricCount(2000, 300)},
                     ERRORS: {"production": MetricCount(8000, 0), "canary": MetricCount(2000, 0)}})
    v = m.verdict()
    assert v.metric(ERRORS).outcome == NOT_JUDGED and v.outcome == FAIL
    assert v.metric(LATENCY).rows[0].n == 2000


def test_bad_use_is_an_input_error() -> None:
    with pytest.raises(InputError):
        HealthMonitor(VERSIONS, "nope")
    with pytest.raises(InputError):
        HealthMonitor(["production"], "production")
    m = HealthMonitor(VERSIONS, "production", criteria=[latency_criterion()])
    with pytest.raises(InputError):
        m.observe_batch({LATENCY: {"production": MetricCount(10, 1)}})  # no threshold yet for counted batches
    with pytest.raises(InputError):
        WarmupThreshold(5)


def test_unknown_versions_are_ignored() -> None:
    m = HealthMonitor(VERSIONS, "production")
    m.observe("other", error=True)
    assert m.ignored == 1 and m.responses == 0


def test_several_canaries_split_the_fail_level() -> None:
    m = HealthMonitor(["production", "a", "b"], "production", criteria=[error_criterion(),
                                                                         latency_criterion(given_threshold(5))])
    assert m.alpha_fail == pytest.approx(0.01 / 4)
    m.observe_batch({ERRORS: {"production": MetricCount(3000, 0), "a": MetricCount(1000, 0),
                              "b": MetricCount(1000, 40)}})
    v = m.verdict()
    assert v.outcome == FAIL and v.reason.startswith("b errors 4.0% vs production 0.0%")
