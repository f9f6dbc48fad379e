"""verifier.health: the fixed-n health judge, its reasons, exact error rates, and the gate's combined outcome."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats as sps

from splitproof.verifier.errors import InputError
from splitproof.verifier.health.combined import combine
from splitproof.verifier.health.difference import exact_p_value
from splitproof.verifier.health.fixed import judge_health
from splitproof.verifier.health.latency import given_threshold
from splitproof.verifier.health.model import (
    ERRORS,
    ERRORS_NOT_ATTRIBUTABLE,
    LATENCY,
    NOT_JUDGED,
    WORSE,
    MetricCount,
    NotJudged,
    baseline_of,
    error_criterion,
    latency_criterion,
)
from splitproof.verifier.health.plan import fixed_n_rates, plan_health
from splitproof.verifier.stats.fixed import judge
from splitproof.verifier.verdict import FAIL, INCONCLUSIVE, PASS, WITHIN

PROD, CANARY = "production", "canary"


def errors(prod: tuple[int, int], canary: tuple[int, int]) -> dict[str, dict[str, MetricCount]]:
    return {ERRORS: {PROD: MetricCount(*prod), CANARY: MetricCount(*canary)}}


def test_a_canary_failing_calls_fails_with_a_reason_naming_the_rates() -> None:
    v = judge_health(errors((1600, 0), (400, 17)), PROD)
    assert v.outcome == FAIL and v.exit_code == 1 and v.method == "fixed-n"
    row = v.metric(ERRORS).rows[0]
    assert row.status == WORSE and row.p_worse < v.alpha_fail == 0.01
    assert row.bad_share == 1.0 and row.traffic_share == pytest.approx(0.2)
    assert v.reason == "canary errors 4.2% vs production 0.0% (+4.25 pp, shown worse: lower bound +2.24 pp)"


def test_a_canary_as_clean_as_production_passes() -> None:
    v = judge_health(errors((8000, 0), (2000, 0)), PROD)
    assert v.outcome == PASS and v.samples_needed is None
    row = v.metric(ERRORS).rows[0]
    assert row.status == WITHIN and row.hi < 0.01
    assert v.reason.startswith("canary errors 0.0% vs production 0.0% (shown below +1 pp: upper bound +0.")


def test_one_sided_a_canary_with_fewer_errors_is_fine() -> None:
    v = judge_health(errors((1600, 40), (400, 0)), PROD)
    assert v.outcome == PASS
    assert v.metric(ERRORS).rows[0].p_worse == 1.0


def test_too_few_responses_is_inconclusive_with_the_samples_needed() -> None:
    v = judge_health(errors((800, 3), (200, 1)), PROD)
    assert v.outcome == INCONCLUSIVE and v.exit_code == 3
    assert v.samples_needed and v.samples_needed > 1000
    assert "not yet shown below +1 pp" in v.reason and f"about {v.samples_needed:,} more responses" in v.reason
    # ... and that many more at the same rates is enough
    scale = 1 + v.samples_needed / 1000
    bigger = judge_health(errors((round(800 * scale), round(3 * scale)), (round(200 * scale), round(scale))), PROD)
    assert bigger.outcome == PASS


def test_no_canary_responses_is_inconclusive() -> None:
    v = judge_health(errors((500, 0), (0, 0)), PROD)
    assert v.outcome == INCONCLUSIVE and "no responses from canary" in v.reason


def test_errors_not_attributable_judges_latency_alone() -> None:
    criteria = [error_criterion(), latency_criterion(given_threshold(10))]
    tallies = {ERRORS: ERRORS_NOT_ATTRIBUTABLE, LATENCY: {PROD: MetricCount(8000, 400), CANARY: MetricCount(2000, 100)}}
    v = judge_health(tallies, PROD, criteria=criteria)
    assert v.metric(ERRORS).outcome == NOT_JUDGED and v.metric(LATENCY).outcome == PASS
    assert v.outcome == PASS and v.alpha_fail == v.alpha  # one judged metric: no Bonferroni split
    assert "errors not judged: errors cannot be attributed to a version" in v.reason
    assert "canary slow (>10 ms) 5.0% vs production 5.0%" in v.reason
    slow = judge_health({**tallies, LATENCY: {PROD: MetricCount(8000, 400), CANARY: MetricCount(2000, 200)}}, PROD,
                        criteria=criteria)
    assert slow.outcome == FAIL and slow.reason.startswith("canary slow (>10 ms) 10.0% vs production 5.0% (+5 pp")


def test_nothing_judgeable_is_inconclusive() -> None:
    v = judge_health({ERRORS: NotJudged("no data")}, PROD)
    assert v.outcome == INCONCLUSIVE and v.reason == "errors not judged: no data"


def test_every_canary_is_compared_with_production_and_fail_tests_share_alpha() -> None:
    tallies = {ERRORS: {PROD: MetricCount(6000, 0), "a": MetricCount(2000, 0), "b": MetricCount(2000, 60)}}
    v = judge_health(tallies, PROD, criteria=[error_criterion(), latency_criterion(given_threshold(10))])
    assert v.alpha_fail == pytest.approx(0.01 / 2)  # 2 canaries x 1 judged metric
    rows = {r.version: r for r in v.metric(ERRORS).rows}
    assert set(rows) == {"a", "b"} and rows["a"].status == WITHIN and rows["b"].status == WORSE
    assert v.outcome == FAIL and v.reason.startswith("b errors 3.0% vs production 0.0%")
    only_a = judge_health(tallies, PROD, canaries=["a"])
    assert only_a.outcome == PASS and [r.version for r in only_a.metric(ERRORS).rows] == ["a"]


def test_fail_margin_makes_small_increases_acceptable() -> None:
    # +0.9 pp on 20,000 responses: shown worse at all, but not by more than 1 pp.
    base = errors((16000, 80), (4000, 56))
    assert judge_health(base, PROD, intervals=False).outcome == FAIL
    lenient = judge_health(base, PROD, criteria=[error_criterion(0.02, fail_margin=0.01)], intervals=False)
    assert lenient.outcome == PASS


@pytest.mark.parametrize("bad", [
    {"alpha": 0.7}, {"criteria": [error_criterion(0.0)]}, {"criteria": [error_criterion(0.01, 0.02)]},
    {"criteria": [error_criterion(), error_criterion()]}, {"power": 1.5}])
def test_bad_parameters_are_input_errors(bad: dict) -> None:
    with pytest.raises(InputError):
        judge_health(errors((10, 0), (10, 0)), PROD, **bad)


def test_bad_counts_are_input_errors() -> None:
    for args in ((-1, 0), (5, 6), (True, 0), (1.5, 0)):
        with pytest.raises(InputError):
            MetricCount(*args)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        judge_health({LATENCY: {PROD: MetricCount(1, 0)}}, PROD)  # no latency criterion given


def test_verdicts_are_frozen() -> None:
    v = judge_health(errors((100, 0), (100, 0)), PROD)
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.outcome = PASS  # type: ignore[misc]


# ------------------------------------------------------------------------------------- exact error rates

def _brute_rates(nc: int, np_: int, pc: float, pp: float, margin: float, fail_margin: float) -> tuple[float, float]:
    p_fail = p_pass = 0.0
    for j in range(np_ + 1):
        for i in range(nc + 1):
            prob = float(sps.binom.pmf(j, np_, pp) * sps.binom.pmf(i, nc, pc))
            if exact_p_value(i, nc, j, np_, fail_margin, "greater") < 0.005:
                p_fail += prob
            elif exact_p_value(i, nc, j, np_, margin, "less") < 0.01:
                p_pass += prob
    return p_fail, p_pass


def test_exact_rates_are_the_sum_over_the_judges_own_decisions() -> None:
    for nc, np_, pc, pp, margin, fm in ((12, 30, 0.2, 0.1, 0.15, 0.0), (16, 16, 0.05, 0.05, 0.2, 0.05)):
        ours = fixed_n_rates(nc, np_, pc, pp, max_increase=margin, fail_margin=fm)
        assert ours == pytest.approx(_brute_rates(nc, np_, pc, pp, margin, fm), abs=1e-12)


@pytest.mark.parametrize(("share", "base", "n"), [(0.05, 0.02, 1000), (0.2, 0.01, 1500), (0.5, 0.005, 1500)])
def test_fixed_n_false_fail_and_false_pass_stay_below_alpha(share: float, base: float, n: int) -> None:
    nc = round(share * n)
    p_fail, _ = fixed_n_rates(nc, n - nc, base, base)  # equally healthy: the FAIL null's least favourable point
    assert 1e-4 < p_fail <= 0.005  # exact, and not vacuous
    _, p_pass = fixed_n_rates(nc, n - nc, base + 0.01, base)  # worse by exactly the margin
    assert p_pass <= 0.01


def test_fixed_n_plan_reaches_its_power_exactly() -> None:
    plan = plan_health(0.2, 0.0, 0.05)  # the lab's bad canary: 5% of its calls fail, production none
    assert plan.fixed_fail and plan.fixed_pass is None
    nc = round(0.2 * plan.fixed_fail)
    p_fail, _ = fixed_n_rates(nc, plan.fixed_fail - nc, 0.05, 0.0)
    assert p_fail >= 0.9
    healthy = plan_health(0.2, 0.0, 0.0)
    nc = round(0.2 * healthy.fixed_pass)
    assert fixed_n_rates(nc, healthy.fixed_pass - nc, 0.0, 0.0)[1] >= 0.9
    assert healthy.sequential_pass and healthy.sequential_pass > healthy.fixed_pass  # the price of looking


def test_plan_rejects_bad_input() -> None:
    for kwargs in ({"share": 0.0}, {"share": 1.0}, {"share": 0.2, "production_rate": 2.0},
                   {"share": 0.2, "max_increase": 0.0}):
        with pytest.raises(InputError):
            plan_health(**kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- combined outcome

def _split(outcome: str):  # type: ignore[no-untyped-def]
    counts = {"pass": {"production": 800, "canary": 200}, "fail": {"production": 500, "canary": 500},
              "inconclusive": {"production": 8, "canary": 2}}[outcome]
    v = judge(counts, 0, {"production": 0.8, "canary": 0.2})
    assert v.outcome == outcome.upper()
    return v


def test_combine_fails_on_health_with_the_split_passing() -> None:
    health = judge_health(errors((1600, 0), (400, 17)), PROD)
    out = combine(_split("pass"), health)
    assert out.outcome == FAIL and out.exit_code == 1 and (out.split, out.health) == (PASS, FAIL)
    assert out.reason.startswith("health FAIL: canary errors 4.2% vs production 0.0%") and out.reason.endswith(
        "; split PASS")


def test_combine_passes_only_when_both_pass() -> None:
    healthy = judge_health(errors((8000, 0), (2000, 0)), PROD)
    assert combine(_split("pass"), healthy).outcome == PASS
    assert combine(_split("inconclusive"), healthy).outcome == INCONCLUSIVE
    failed = combine(_split("fail"), healthy)
    assert failed.outcome == FAIL and failed.reason.startswith("split FAIL: split differs from expected")
    assert combine(None, healthy).outcome == PASS and combine(_split("pass"), None).outcome == PASS
    with pytest.raises(InputError):
        combine(None, None)


def test_samples_needed_counts_every_version() -> None:
    tallies = {ERRORS: {PROD: MetricCount(400, 1), "a": MetricCount(100, 0), "b": MetricCount(100, 0)}}
    v = judge_health(tallies, PROD, intervals=False)
    assert v.outcome == INCONCLUSIVE
    rows = v.metric(ERRORS).rows
    assert v.samples_needed == max(int(np.ceil(r.samples_needed * 600 / 500)) for r in rows)
    assert "more responses in all" in v.reason


def test_production_is_named_or_the_largest_share() -> None:
    assert baseline_of({"production": 0.2, "canary": 0.8}) == "production"
    assert baseline_of({"v1": 0.7, "v2": 0.2, "v3": 0.1}) == "v1"
    with pytest.raises(InputError):
        baseline_of({})
