"""The suite's flake budget (tests/flakebudget.py): the real-traffic verdicts' summed false-verdict bound stays under
1% per CI run, and every module that starts real processes either passes ``ALPHA_ARGS`` to each verdict it asks
for (``--expected`` with a split Envoy picks at random, a real ``rollout``, the ``demo``) or is listed, with its
reason, as judging deterministic counts. Pure: it reads the test modules' syntax trees, runs nothing."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REAL_PROCESS_MODULES
from flakebudget import (
    ALPHA_ARGS,
    BAND_CONFIDENCE,
    FIXED_50_50_AT_6000,
    FIXED_80_20_AT_4000,
    FIXED_80_20_DEMO,
    REAL_TRAFFIC,
    SUITE_BUDGET,
    TEST_ALPHA,
    suite_bound,
)

TESTS = Path(__file__).resolve().parent

# Modules that start real processes but whose verdicts are not drawn at random: fixed synthetic counts (a recorded
# exporter, a written access log), all-or-nothing splits (0% / 100%: Envoy's pick is not random), usage errors.
DETERMINISTIC = {
    "test_bad_inputs": "usage errors and unreadable inputs: no verdict drawn from traffic",
    "test_verifier_cli": "verdicts over records files the tests write",
    "test_verify_split_exit_codes": "exit codes over written records files",
    "test_verify_split_telemetry": "a recorded exporter serving fixed counts; written access logs",
    "test_setup_architecture": "imports and packaging",
    "test_verifier_architecture": "imports and packaging",
    "test_htmlreport": "reports rendered from fixed verdicts",
    "test_cluster_steps": "the recorded fakes on PATH",
    "test_cluster_up": "the recorded fakes on PATH",
    "test_setup_exit_codes": "the recorded fakes on PATH",
    "test_rollout_cluster": "scripted evidence sources",
    "test_loadtest_units": "a stub frontend with fixed answers",
    "test_boutique": "single services, no split",
    "test_boutique_faults": "seeded fault draws",
    "test_stopsignals": "signals to one process, no traffic",
    "test_bench_cli": "help texts, no traffic",
    "test_child_processes": "process hygiene, no verdict",
    "test_cluster_manifests": "rendered manifests and the recorded fakes",
    "test_proc": "process supervision",
    "test_protos": "generated code is current",
    "test_upstream_compat": "wire compatibility, no split",
    "test_telemetry_envoy": "Envoy's counters must equal what was sent (exact, whatever Envoy picked)",
    "test_telemetry_envoy_prometheus": "exact counts equal to what was sent",
    "test_telemetry_prometheus": "Prometheus client against fixed series",
    "test_verify_split_gateway_api": "backfilled Prometheus series and written access logs: fixed counts",
    "test_cluster_gateway_api": "the recorded fakes on PATH",
}


# options that make a --weights command line a verdict on traffic (not `local up --weights`)
OBSERVING = {"--target", "--url", "--results", "--prometheus", "--envoy-admin", "--access-log", "--grpc-target",
             "--host"}


def _strings(node: ast.AST) -> list[str | None]:
    """The elements of an argument list / tuple / list: a constant string, the name of ``*ALPHA_ARGS``, or None."""
    elts = node.args if isinstance(node, ast.Call) else node.elts  # type: ignore[attr-defined]
    out: list[str | None] = []
    for e in elts:
        if isinstance(e, ast.Constant) and isinstance(e.value, str):
            out.append(e.value)
        elif isinstance(e, ast.Starred) and isinstance(e.value, ast.Name):
            out.append(f"*{e.value.id}")
        else:
            out.append(None)
    return out


def needs_alpha(items: list[str | None]) -> bool:
    """A command line that asks for a verdict on traffic Envoy splits at random: ``--expected`` 1..99 (or
    ``--weights`` without a 0/100 version), a real rollout (``-m splitproof.setup.cli rollout``), or the demo."""
    for i, s in enumerate(items[:-1]):
        if s == "--expected" and items[i + 1] is not None and items[i + 1].isdigit() and 0 < int(items[i + 1]) < 100:
            return True
        if s == "--weights" and items[i + 1] is not None and OBSERVING & set(items) and not any(
                w.endswith(("=0", "=100")) for w in items[i + 1].split(",")):
            return True
    if "rollout" in items and "splitproof.setup.cli" in items:
        return True
    return "demo" in items and "--out" in items


def has_alpha(items: list[str | None]) -> bool:
    return "*ALPHA_ARGS" in items or "--alpha" in items


def missing_alpha(source: str) -> list[int]:
    """Lines of the command lines in ``source`` that ask for a random-traffic verdict without an alpha."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call | ast.Tuple | ast.List):
            items = _strings(node)
            if needs_alpha(items) and not has_alpha(items):
                lines.append(node.lineno)
    return sorted(set(lines))


def test_the_summed_bound_is_under_the_suite_budget() -> None:
    assert TEST_ALPHA <= 1e-4 and BAND_CONFIDENCE >= 1 - 1e-4 and ALPHA_ARGS == ("--alpha", "0.0001")
    assert suite_bound() < SUITE_BUDGET, suite_bound()
    # the product's default (0.01) over the same table would be far over it: the budget is what makes CI mean much
    assert sum(n * 0.02 for n, _ in REAL_TRAFFIC.values()) > 10 * SUITE_BUDGET


def test_every_real_process_module_is_budgeted_or_deterministic() -> None:
    unknown = sorted(REAL_PROCESS_MODULES - set(REAL_TRAFFIC) - set(DETERMINISTIC))
    assert unknown == [], f"add these to tests/flakebudget.py REAL_TRAFFIC (or DETERMINISTIC here): {unknown}"
    assert set(REAL_TRAFFIC) <= {p.stem for p in TESTS.glob("test_*.py")}


@pytest.mark.parametrize("module", sorted(REAL_TRAFFIC))
def test_real_traffic_verdicts_run_at_the_test_alpha(module: str) -> None:
    source = (TESTS / f"{module}.py").read_text()
    assert missing_alpha(source) == [], f"{module}: verdict command lines without *ALPHA_ARGS (tests/flakebudget.py)"


@pytest.mark.parametrize("module", sorted(REAL_TRAFFIC))
def test_bands_on_real_counts_use_the_shared_confidence(module: str) -> None:
    source = (TESTS / f"{module}.py").read_text()
    assert "binom.interval(0." not in source, "use flakebudget.BAND_CONFIDENCE"


def _not_pass(canary: float, n: int) -> float:
    """P(the fixed-n judge does not PASS a correct split) over n responses: the exact binomial tails outside the
    canary counts it PASSes (one interval around n * canary, found by bisection)."""
    from scipy.stats import binom

    from splitproof.verifier.stats.fixed import judge

    expected = {"production": 1 - canary, "canary": canary}

    def passes(k: int) -> bool:
        return judge({"production": n - k, "canary": k}, 0, expected, alpha=TEST_ALPHA).outcome == "PASS"

    def edge(inside: int, outside: int) -> int:  # the last PASS count from ``inside`` towards ``outside``
        while abs(outside - inside) > 1:
            mid = (inside + outside) // 2
            inside, outside = (mid, outside) if passes(mid) else (inside, mid)
        return inside

    centre = round(n * canary)
    if not passes(centre):
        return 1.0
    lo, hi = edge(centre, -1), edge(centre, n + 1)
    return float(binom.cdf(lo - 1, n, canary) + binom.sf(hi, n, canary))


@pytest.mark.parametrize(("canary", "n", "bound"), [(0.2, 4000, FIXED_80_20_AT_4000), (0.5, 6000, FIXED_50_50_AT_6000),
                                                     (0.2, 4500, FIXED_80_20_DEMO)])
def test_the_fixed_n_windows_pass_a_correct_split_within_their_bound(canary: float, n: int, bound: float) -> None:
    assert _not_pass(canary, n) <= bound
    assert _not_pass(canary, n // 2) > 10 * bound  # half the window would not do: the window size matters


def test_the_guard_catches_a_forgotten_alpha() -> None:
    forgot = 'verify("--expected", "20", "--target", t)\nrun(["-m", "splitproof.setup.cli", "rollout", "--local"])\n'
    assert missing_alpha(forgot) == [1, 2]
    assert missing_alpha('run("--weights", "production=80,canary=20", "--target", t)') == [1]
    kept = 'verify("--expected", "20", *ALPHA_ARGS)\nverify("--expected", "0")\nverify("--expected", "150")\n'
    kept += 'run("--weights", "production=100,canary=0")\n'
    assert missing_alpha(kept) == []
