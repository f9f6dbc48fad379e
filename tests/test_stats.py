"""Fixed-n verdict: error rates by seeded simulation through the real judge(), plus exact-test details.

For two versions the verdict depends only on the canary count, so the real ``judge`` is evaluated once per
possible count (a lookup table) and thousands of simulated runs are judged through it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from splitproof.verifier.errors import InputError
from splitproof.verifier.stats.exact import clopper_pearson, exact_multinomial_p_value, goodness_of_fit
from splitproof.verifier.stats.fixed import judge
from splitproof.verifier.stats.planning import plan
from splitproof.verifier.verdict import DIFFERS, FAIL, INCONCLUSIVE, PASS, UNEXPECTED, WITHIN, Outcome

SPLIT = {"production": 0.8, "canary": 0.2}
ALPHA = 0.01
RUNS = 20_000


def outcome_table(n: int, expected: dict[str, float] = SPLIT, **kw: float) -> np.ndarray:
    """Outcome of the real judge() for every canary count 0..n out of n."""
    return np.array([judge({"production": n - x, "canary": x}, 0, expected, **kw).outcome for x in range(n + 1)],
                    dtype=object)


def mc_bound(rate: float, runs: int) -> float:
    return rate + 3 * math.sqrt(rate * (1 - rate) / runs)


@pytest.fixture(scope="module")
def plan_8020():
    return plan(SPLIT, 0.05, ALPHA, 0.9)


@pytest.fixture(scope="module")
def table_at_plan(plan_8020) -> np.ndarray:
    return outcome_table(plan_8020.n)


def test_false_fail_rate_at_the_correct_split_is_at_most_alpha(plan_8020, table_at_plan):
    n = plan_8020.n
    rng = np.random.default_rng(11)
    canary = rng.binomial(n, 0.2, size=RUNS)
    simulated = float(np.mean(table_at_plan[canary] == FAIL))
    exact = float(sps.binom.pmf(np.arange(n + 1), n, 0.2)[table_at_plan == FAIL].sum())
    assert simulated <= mc_bound(ALPHA, RUNS)
    assert exact <= ALPHA  # the exact binomial test never exceeds its level
    assert simulated > 0.002  # the test is not vacuous: it does reject sometimes, near alpha


@pytest.mark.parametrize("canary, n", [(0.2, 45), (0.2, 60), (0.1, 80), (0.05, 118), (0.01, 515), (0.5, 200)])
def test_two_way_false_fail_rate_is_at_most_alpha_exactly(canary: float, n: int) -> None:
    """Exact over every outcome, at sizes where a chi-square approximation overshot alpha (1.4-1.6%)."""
    expected = {"production": 1 - canary, "canary": canary}
    table = outcome_table(n, expected)
    rate = float(sps.binom.pmf(np.arange(n + 1), n, canary)[table == FAIL].sum())
    assert rate <= ALPHA, rate


def test_power_to_fail_a_70_30_reality_at_the_planned_n(plan_8020, table_at_plan):
    n = plan_8020.n
    rng = np.random.default_rng(12)
    canary = rng.binomial(n, 0.3, size=RUNS)
    assert float(np.mean(table_at_plan[canary] == FAIL)) >= 0.9


def test_pass_rate_at_the_correct_split_reaches_the_planned_power(plan_8020, table_at_plan):
    n = plan_8020.n
    rng = np.random.default_rng(13)
    canary = rng.binomial(n, 0.2, size=RUNS)
    rate = float(np.mean(table_at_plan[canary] == PASS))
    assert rate >= 0.9 - 3 * math.sqrt(0.09 / RUNS)


BIG_N = 2500  # large: a PASS is possible at all, so the false-PASS test could fail if the TOST were wrong


@pytest.fixture(scope="module")
def table_big() -> np.ndarray:
    return outcome_table(BIG_N)


@pytest.mark.parametrize("truth", [0.25, 0.15, 0.26])
def test_false_pass_rate_outside_the_tolerance_is_at_most_alpha(truth, table_big):
    rng = np.random.default_rng(14)
    canary = rng.binomial(BIG_N, truth, size=RUNS)
    assert float(np.mean(table_big[canary] == PASS)) <= mc_bound(ALPHA, RUNS)
    exact = float(sps.binom.pmf(np.arange(BIG_N + 1), BIG_N, truth)[table_big == PASS].sum())
    assert exact <= ALPHA
    # not vacuous: inside the margin the equivalence part does succeed at this n (the goodness of fit
    # then FAILs the 3-point deviation, which is why PASS itself stays rare there)
    near = 0.23 if truth > 0.2 else 0.17
    within = np.array([judge({"production": BIG_N - x, "canary": x}, 0, SPLIT).row("canary").p_equivalence < ALPHA
                       for x in range(round(BIG_N * (near - 0.03)), round(BIG_N * (near + 0.03)))])
    xs = np.arange(round(BIG_N * (near - 0.03)), round(BIG_N * (near + 0.03)))
    assert float(sps.binom.pmf(xs, BIG_N, near)[within].sum()) > 0.3


def test_power_at_a_misroute_of_one_tolerance_matches_the_plan(plan_8020):
    n = plan_8020.n_fail
    table = outcome_table(n)
    for truth in (0.25, 0.15):
        power = float(sps.binom.pmf(np.arange(n + 1), n, truth)[table == FAIL].sum())
        assert power >= 0.85, (truth, power)  # normal-approximation plan; exact power close to 0.9


def test_multiway_60_30_10_error_rates():
    expected = {"a": 0.6, "b": 0.3, "c": 0.1}
    p = plan(expected)
    n = p.n
    rng = np.random.default_rng(15)
    runs = 600
    null = [judge(dict(zip("abc", x.tolist(), strict=True)), 0, expected).outcome
            for x in rng.multinomial(n, [0.6, 0.3, 0.1], size=runs)]
    assert null.count(FAIL) / runs <= mc_bound(ALPHA, runs)
    assert null.count(PASS) / runs >= 0.85
    off = [judge(dict(zip("abc", x.tolist(), strict=True)), 0, expected).outcome
           for x in rng.multinomial(n, [0.55, 0.3, 0.15], size=200)]
    assert off.count(FAIL) / 200 >= 0.9
    assert off.count(PASS) == 0


def test_pass_fail_inconclusive_verdicts_and_reasons():
    v = judge({"production": 8000, "canary": 2000}, 0, SPLIT)
    assert v.outcome == PASS and v.exit_code == 0 and v.samples_needed is None
    assert all(r.status == WITHIN for r in v.rows)
    assert "within" in v.reason and v.gof_method == "exact binomial"  # two versions: always exact

    v = judge({"production": 500, "canary": 500}, 0, SPLIT)
    assert v.outcome == FAIL and v.exit_code == 1
    assert v.row("canary").status == DIFFERS and "canary got 50.0%" in v.reason

    v = judge({"production": 40, "canary": 10}, 0, SPLIT)
    assert v.outcome == INCONCLUSIVE and v.exit_code == 3
    assert v.samples_needed is not None and 500 < v.samples_needed < 3000
    assert f"about {v.samples_needed} more samples" in v.reason
    assert "\n" not in v.reason


def test_samples_needed_is_enough_when_the_shares_hold():
    v = judge({"production": 160, "canary": 40}, 0, SPLIT)
    assert v.outcome == INCONCLUSIVE
    n = v.n + v.samples_needed
    canary = round(0.2 * n)
    assert judge({"production": n - canary, "canary": canary}, 0, SPLIT).outcome == PASS
    # and with the promised power: exact P(PASS) at that n when the truth is 80/20 (was 0.79 with z(power))
    p_pass = float(sps.binom.pmf(np.arange(n + 1), n, 0.2)[outcome_table(n) == PASS].sum())
    assert p_pass >= 0.88, (n, p_pass)


def test_every_response_from_one_version_hints_at_a_bypassed_split():
    v = judge({"production": 200, "canary": 0}, 0, SPLIT)
    assert v.outcome == FAIL and "port-forward" in v.reason


def test_unattributed_responses_are_judged_against_their_limit():
    ok = judge({"production": 8000, "canary": 2000}, 30, SPLIT)  # 0.3%: shown below 1%
    assert ok.outcome == PASS and ok.unattributed_row.status == WITHIN
    bad = judge({"production": 8000, "canary": 2000}, 400, SPLIT)  # 3.8%
    assert bad.outcome == FAIL and "unattributed" in bad.reason
    assert bad.unattributed_row.p_exceeds < ALPHA
    # 1.2% of 1,000: above the limit but not shown to be: no FAIL (no false alarm), no PASS either
    unsure = judge({"production": 790, "canary": 198}, 12, SPLIT)
    assert unsure.outcome == INCONCLUSIVE and "unattributed" in unsure.reason
    strict = judge({"production": 8000, "canary": 2000}, 1, SPLIT, max_unattributed=0.0)
    assert strict.outcome == FAIL
    assert judge({"production": 8000, "canary": 2000}, 0, SPLIT, max_unattributed=0.0).outcome == PASS


def test_a_version_outside_the_split_fails_at_once():
    v = judge({"production": 800, "canary": 200, "v3": 1}, 0, SPLIT)
    assert v.outcome == FAIL and v.row("v3").status == UNEXPECTED and "'v3'" in v.reason
    zero = judge({"production": 999, "canary": 1}, 0, {"production": 1.0, "canary": 0.0})
    assert zero.outcome == FAIL and zero.gof_p_value == 0.0
    clean = judge({"production": 1000, "canary": 0}, 0, {"production": 1.0, "canary": 0.0})
    assert clean.outcome == PASS


def test_exact_tests_when_expected_counts_are_small():
    _, p, method = goodness_of_fit(np.array([14, 6]), np.array([0.8, 0.2]))  # expected canary count 4 < 5
    assert method == "exact binomial"
    assert p == pytest.approx(sps.binomtest(6, 20, 0.2).pvalue)
    x, probs = np.array([5, 4, 1]), np.array([0.6, 0.3, 0.1])
    p3, method3 = exact_multinomial_p_value(x, probs)
    assert method3 == "exact multinomial"
    # brute force over all outcomes
    pmf = {(a, b, 10 - a - b): sps.multinomial.pmf([a, b, 10 - a - b], 10, probs)
           for a in range(11) for b in range(11 - a)}
    obs = pmf[(5, 4, 1)]
    assert p3 == pytest.approx(sum(v for v in pmf.values() if v <= obs * (1 + 1e-9)))
    # three or more versions: exact at every n, not only when an expected count is small
    _, p_big, method_big = goodness_of_fit(np.array([600, 300, 100]), probs)
    assert method_big == "exact multinomial" and p_big == pytest.approx(1.0)
    four, method4 = exact_multinomial_p_value(np.array([300, 150, 40, 10]), np.array([0.6, 0.3, 0.09, 0.01]))
    assert method4 == "exact multinomial" and 0 < four <= 1
    # only where the enumeration of the smaller versions would be too large: seeded Monte Carlo, and it says so
    mc, method_mc = exact_multinomial_p_value(np.array([20_000] * 5), np.full(5, 0.2))
    assert method_mc.startswith("Monte Carlo") and 0.5 < mc <= 1


def test_clopper_pearson_matches_the_exact_tost():
    lo, hi = clopper_pearson(200, 1000, ALPHA)
    assert sps.binom.sf(199, 1000, lo) == pytest.approx(ALPHA, rel=1e-6)
    assert sps.binom.cdf(200, 1000, hi) == pytest.approx(ALPHA, rel=1e-6)
    assert clopper_pearson(0, 10, ALPHA)[0] == 0.0 and clopper_pearson(10, 10, ALPHA)[1] == 1.0


def test_plan_sizes():
    p = plan(SPLIT, 0.05, 0.01, 0.9)
    assert 900 <= p.n_pass <= 1200 and 850 <= p.n_fail <= 1100 and p.n_unattributed == 459
    assert p.n == max(p.n_pass, p.n_fail, p.n_unattributed)
    assert 0.5 * p.n < p.sequential_pass < 1.5 * p.n
    assert p.seconds(100) == pytest.approx(p.n / 100)
    assert plan(SPLIT, 0.02).n > 4 * p.n  # ~1/tolerance^2
    assert plan({"a": 0.6, "b": 0.3, "c": 0.1}).n > p.n


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"alpha": 0.0}, "alpha"), ({"alpha": 0.7}, "alpha"), ({"tolerance": 0}, "tolerance"),
    ({"tolerance": 5}, "tolerance"), ({"max_unattributed": -0.1}, "max_unattributed"),
])
def test_bad_parameters_are_input_errors(kwargs, message):
    with pytest.raises(InputError, match=message):
        judge({"production": 1, "canary": 1}, 0, SPLIT, **kwargs)


def test_bad_counts_and_splits_are_input_errors():
    with pytest.raises(InputError, match="non-negative"):
        judge({"production": -1, "canary": 1}, 0, SPLIT)
    with pytest.raises(InputError, match="sum to 1"):
        judge({"production": 1, "canary": 1}, 0, {"production": 0.8, "canary": 0.3})
    with pytest.raises(InputError):
        judge({"production": 1}, -2, SPLIT)
    assert issubclass(InputError, ValueError)


def test_exit_codes():
    assert {o: o.exit_code for o in Outcome} == {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 3}


def test_no_data_is_inconclusive():
    v = judge({}, 0, SPLIT)
    assert v.outcome == INCONCLUSIVE and v.n == 0 and v.rows[0].share is None


# ---------------------------------------------------------------------------------------- statuses and reasons


def test_pass_follows_its_rule_with_three_versions():
    """Every version's interval inside its margin and the split test not rejecting is a PASS -- c's own
    binomial p-value (0.008) is one of three looks and does not block it."""
    v = judge({"a": 999, "b": 472, "c": 200}, 0, {"a": 0.6, "b": 0.3, "c": 0.1})
    c = v.row("c")
    assert c.p_value < ALPHA and v.gof_p_value >= ALPHA
    assert 0.05 < c.lo < c.hi < 0.15
    assert v.outcome == PASS and all(r.status == WITHIN for r in v.rows)
    assert "not yet shown" not in v.reason and "more samples" not in v.reason


def test_statuses_and_reasons_never_contradict_the_verdict():
    """Over seeded outcomes of three-version runs at many n: a version the reason lists as 'not yet shown
    within' has an interval that is not inside its margin; a PASS has every interval inside; a FAIL names a real
    version; DIFFERS rows appear only under a FAIL."""
    expected = {"a": 0.6, "b": 0.3, "c": 0.1}
    rng = np.random.default_rng(16)
    seen = {PASS: 0, FAIL: 0, INCONCLUSIVE: 0}
    for n in (30, 120, 500, 1700, 4000):
        for truth in ([0.6, 0.3, 0.1], [0.62, 0.28, 0.1], [0.56, 0.3, 0.14]):
            for x in rng.multinomial(n, truth, size=12):
                v = judge(dict(zip("abc", x.tolist(), strict=True)), 0, expected)
                seen[v.outcome] += 1
                inside = {r.version: r.expected - r.margin < r.lo and r.hi < r.expected + r.margin for r in v.rows}
                assert all((r.status == WITHIN) == inside[r.version] or r.status == DIFFERS for r in v.rows)
                if v.outcome == PASS:
                    assert all(inside.values())
                if v.outcome == INCONCLUSIVE and "not yet shown within" in v.reason:
                    listed = v.reason.split(": ", 1)[1].split(";")[0]
                    for r in v.rows:
                        assert (f"{r.version} " in listed) == (not inside[r.version]), (r, v.reason)
                if v.outcome != FAIL:
                    assert all(r.status != DIFFERS for r in v.rows)
    assert min(seen.values()) > 0, seen


def test_reason_texts_say_what_they_mean():
    # a 0% limit: "none allowed", not "below the 0% limit"
    ok = judge({"production": 8000, "canary": 2000}, 0, SPLIT, max_unattributed=0.0)
    assert ok.outcome == PASS and "0% limit" not in ok.reason and "no unattributed responses" in ok.reason
    bad = judge({"production": 8000, "canary": 2000}, 1, SPLIT, max_unattributed=0.0)
    assert bad.outcome == FAIL and "1 unattributed response of 10001, with none allowed" in bad.reason
    # limits and shares that are not whole percents are not rounded to other numbers
    half = judge({"production": 790, "canary": 198}, 12, SPLIT, max_unattributed=0.005)
    assert "0.5%" in half.reason and "0% limit" not in half.reason
    small = judge({"production": 30, "canary": 10}, 0, {"production": 0.975, "canary": 0.025})
    assert "expected 2.5%" in small.reason
    # at n = 1 the samples come from the unattributed requirement, and the reason says so
    one = judge({"production": 1, "canary": 0}, 0, SPLIT)
    assert one.outcome == INCONCLUSIVE
    assert f"about {one.samples_needed} more samples needed to show unattributed responses below the 1% limit" \
        in one.reason
    # a silent version outside the split is not "not yet shown within"; nor one the split gives 0%
    v3 = judge({"production": 40, "canary": 10, "v3": 0}, 0, SPLIT)
    assert v3.outcome == INCONCLUSIVE and "v3" not in v3.reason and v3.row("v3").status == WITHIN
    zero = judge({"production": 30, "canary": 0}, 0, {"production": 1.0, "canary": 0.0})
    assert "canary" not in zero.reason
    full = judge({"production": 800, "canary": 200, "v3": 0}, 0, SPLIT)
    assert full.outcome == PASS and "v3" not in full.reason
    # one more sample, not "1 more samples"
    last = judge({"production": 458, "canary": 0}, 0, {"production": 1.0, "canary": 0.0})
    assert last.samples_needed == 1 and "about 1 more sample needed" in last.reason
