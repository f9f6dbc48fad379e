"""Small canaries: a version the split gives a positive share can never PASS while it receives nothing.

The margin of each version is expected ± min(tolerance, share / 2) (verifier/stats/margins.py), identically in the
fixed-n judge, the sequential gate, their simulation, ``--plan`` and the Locust live gate. Before these margins,
with a flat ±5 pp, a dead 1% canary PASSed (fixed-n at the planned n; sequentially after 537 responses) and with
``max_unattributed=0`` a dead 3% canary PASSed after 72.
"""

from __future__ import annotations

from argparse import Namespace

import numpy as np
import pytest
from scipy import stats as sps

from splitproof.loadtest.ending import RUN_TIME_LIMIT, STOPPED
from splitproof.loadtest.live import LiveSplit
from splitproof.loadtest.options import config_from_options
from splitproof.verifier.expected import from_canary_percent
from splitproof.verifier.stats.fixed import judge
from splitproof.verifier.stats.margins import version_margins, version_tolerance
from splitproof.verifier.stats.planning import plan
from splitproof.verifier.stats.sequential import SequentialGate
from splitproof.verifier.stats.simulation import simulate_sequential
from splitproof.verifier.verdict import FAIL, PASS

ALPHA = 0.01


def split(share: float) -> dict[str, float]:
    return {"production": 1 - share, "canary": share}


def test_the_margin_rule() -> None:
    assert version_tolerance(0.2, 0.05) == 0.05 and version_tolerance(0.1, 0.05) == 0.05
    assert version_tolerance(0.03, 0.05) == 0.015 and version_tolerance(0.01, 0.05) == 0.005
    assert version_tolerance(0.01, 0.002) == 0.002  # a tighter tolerance still wins
    assert version_margins(0.01, 0.05) == (0.005, 0.015) and version_tolerance(0.0, 0.05) == 0.0


@pytest.mark.parametrize("share", [0.01, 0.03])
@pytest.mark.parametrize("settings", [{}, {"max_unattributed": 0.0}, {"tolerance": 0.2}, {"alpha": 0.2}])
def test_fixed_n_never_passes_a_dead_canary(share: float, settings: dict[str, float]) -> None:
    sizes = [*range(1, 60), 100, 459, 537, 1000, plan(split(share)).n, 5 * plan(split(share)).n, 100_000]
    outcomes = {judge({"production": n, "canary": 0}, 0, split(share), **settings).outcome for n in sizes}
    assert PASS not in outcomes
    assert judge({"production": plan(split(share)).n, "canary": 0}, 0, split(share)).outcome == FAIL


@pytest.mark.parametrize("share", [0.01, 0.03])
@pytest.mark.parametrize("settings", [{}, {"max_unattributed": 0.0}, {"tolerance": 0.2}])
def test_the_sequential_gate_never_passes_a_dead_canary(share: float, settings: dict[str, float]) -> None:
    gate = SequentialGate(split(share), **settings)
    for _ in range(20_000):
        gate.observe("production")
        if gate.decided:
            break
    assert gate.verdict().outcome == FAIL, gate.verdict().reason  # it FAILs instead, within a few hundred
    assert gate.total < (800 if share == 0.01 else 300)
    batched = SequentialGate(split(share), **settings)
    for _ in range(200):
        batched.observe_counts({"production": 100, "canary": 0})
    assert batched.verdict().outcome == FAIL


@pytest.mark.parametrize("share", [0.01, 0.03])
def test_simulation_dead_never_passes_alive_passes(share: float) -> None:
    """Seeded, through the vectorised gate (checked against SequentialGate in test_sequential.py)."""
    dead = simulate_sequential(split(share), split(0.0), runs=400, horizon=2000, seed=60)
    assert dead.rate(PASS) == 0.0 and dead.rate(FAIL) == 1.0
    alive = simulate_sequential(split(share), split(share), runs=400, horizon=20_000, seed=61, chunk=50)
    assert alive.rate(PASS) >= 0.97 and alive.rate(FAIL) <= 3 * ALPHA
    # samples to PASS: about the fixed-n plan's size (1%: median ~5,500; 3%: ~1,700)
    assert float(np.median(alive.stopped_at)) <= 1.1 * plan(split(share)).n


@pytest.mark.parametrize("share", [0.01, 0.03])
def test_fixed_n_passes_an_alive_canary_at_the_planned_n(share: float) -> None:
    """Exact P(PASS) at the plan's n when the canary gets its share: at least the promised power."""
    n = plan(split(share)).n
    assert n == plan(split(share)).n_pass and n < (7_000 if share == 0.01 else 2_300)
    xs = np.arange(int(n * share * 2.5))
    passed = np.array([judge({"production": n - x, "canary": int(x)}, 0, split(share)).outcome == PASS
                       for x in xs])
    assert float(sps.binom.pmf(xs[passed], n, share).sum()) >= 0.9
    # and the interval that PASSes lies inside the narrowed margin
    v = judge({"production": n - round(n * share), "canary": round(n * share)}, 0, split(share))
    assert v.outcome == PASS and share / 2 < v.row("canary").lo and v.row("canary").hi < 1.5 * share
    assert f"canary ±{100 * share / 2:g} pp: half its share" in v.reason


def test_three_versions_with_small_shares() -> None:
    expected = {"a": 0.98, "b": 0.01, "c": 0.01}
    assert PASS not in {judge({"a": n, "b": n // 100, "c": 0}, 0, expected).outcome for n in (600, 6000, 60_000)}
    gate = SequentialGate(expected)
    rng = np.random.default_rng(62)
    for i in rng.choice(2, size=20_000, p=[0.99, 0.01]):
        gate.observe("ab"[i])  # c is dead
        if gate.decided:
            break
    assert gate.verdict().outcome == FAIL


def test_the_locust_live_gate_never_passes_a_dead_canary() -> None:
    live = LiveSplit(config_from_options(_opts(expected="1")))
    for _ in range(100):
        live.observe(["production"] * 97)
    assert live.sequential_outcome() == FAIL
    assert live.final_verdict(RUN_TIME_LIMIT).outcome != PASS  # ended by its -t: the fixed-n judge
    assert live.final_verdict(STOPPED).outcome == FAIL  # stopped by a person: the sequential gate
    low = LiveSplit(config_from_options(_opts(expected="3", max_unattributed="0")))
    low.observe(["production"] * 72)
    assert not low.decided  # with a flat ±5 pp margin this PASSed after 72 responses


def test_plan_uses_the_narrowed_margins() -> None:
    one = plan(from_canary_percent("1"))
    assert 6_000 < one.n_pass < 7_500 and 4_500 < one.sequential_pass < 7_000
    three = plan(from_canary_percent("3"))
    assert 1_900 < three.n_pass < 2_500 and 1_400 < three.sequential_pass < 2_400
    assert plan(from_canary_percent("20")).n_pass == plan({"production": 0.8, "canary": 0.2}).n_pass == 1032
    # about (z(0.99) + z(0.95))^2 e (1 - e) / m^2 with the narrowed margin m = 0.5 pp
    assert one.n_pass == pytest.approx((2.326 + 1.645) ** 2 * 0.0099 / 0.005**2, rel=0.15)


def _opts(**kw: object) -> Namespace:
    return Namespace(**kw)
