"""The verifier and the Locust plugin keep their shape: layers point down, no cycles, small modules, a light import,
one public API (README "Architecture")."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import importgraph
import pytest

from splitproof import verifier

EDGES = importgraph.graph()
MODULES = importgraph.modules()
OURS = ("splitproof.verifier", "splitproof.loadtest")
MAX_LINES = 400
# Loading these is what a fast ``import splitproof.verifier`` must not do.
HEAVY = ("jinja2", "yaml", "scipy", "numpy", "rich", "matplotlib", "grpc", "kubernetes", "locust",
         "splitproof.setup", "splitproof.loadtest")


def _ours(name: str) -> bool:
    return name.startswith(OURS)


def test_no_import_cycles_in_the_verifier_or_the_load_test() -> None:
    cycles = [c for c in importgraph.cycles(EDGES) if any(_ours(m) for m in c)]
    assert cycles == []


def test_layers_point_down() -> None:
    """verifier imports nothing from setup or loadtest; loadtest nothing from setup; the foundation modules
    (shared with canary-setup) nothing from the verifier's layers above them."""
    foundation = {f"splitproof.verifier.{m}" for m in
                  ("errors", "exitcodes", "defaults", "fmt", "istio", "gatewayapi", "boutique", "safeyaml", "inputfile",
                   "redact", "cliexit")}
    for module, deps in EDGES.items():
        if module.startswith("splitproof.verifier"):
            assert not {d for d in deps if d.startswith(("splitproof.setup", "splitproof.loadtest"))}, module
        if module.startswith("splitproof.loadtest"):
            assert not {d for d in deps if d.startswith("splitproof.setup")}, module
        if module in foundation:
            assert deps <= foundation, (module, deps - foundation)
    layers = ["stats", "health", "inputs", "telemetry", "reports", "command"]
    below = {"stats": set(), "health": set(), "inputs": set(), "telemetry": set(),
             "reports": {"stats", "inputs", "health"},
             "command": {"stats", "inputs", "reports", "telemetry", "health"}}
    for module, deps in EDGES.items():
        layer = next((x for x in layers if module.startswith(f"splitproof.verifier.{x}")), None)
        if layer is None:
            continue
        for dep in deps:
            other = next((x for x in layers if dep.startswith(f"splitproof.verifier.{x}")), None)
            assert other in (None, layer) or other in below[layer], f"{module} imports {dep}"


def test_no_module_is_over_400_lines() -> None:
    long = {name: n for name, path in MODULES.items() if _ours(name)
            and (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_importing_the_verifier_is_light() -> None:
    """``python -X importtime -c "import splitproof.verifier"`` loads none of the heavy packages or setup."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", "import splitproof.verifier"],
                            capture_output=True, text=True, timeout=60, check=True)
    loaded = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")]
    assert "splitproof.verifier" in loaded
    assert [m for m in loaded if m.split(".")[0] in HEAVY or m.startswith(HEAVY)] == []


def test_usage_errors_do_not_load_the_statistics() -> None:
    """verify-split parses its command line before importing its body: a usage error loads no scipy or yaml."""
    code = ("import sys; from splitproof.verifier.cli import main; code = main(['--expected', '20']); "
            "print(code, sorted(m for m in sys.modules if m.split('.')[0] in ('scipy', 'numpy', 'yaml', 'rich')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "2 []"


# What a results file's fixed-n verdict must not load (issue 16: its start-up is most of a small run's time):
# scipy.stats (0.7 s) and scipy.optimize, the health judge, the sequential gate's machinery, live sampling,
# telemetry, the --plan table; matplotlib and the HTML report without --html.
NOT_FOR_A_FIXED_N_VERDICT = ("scipy.stats", "scipy.optimize", "splitproof.verifier.health",
                             "splitproof.verifier.reports.health", "splitproof.verifier.stats.sequential",
                             "splitproof.verifier.stats.mixture", "splitproof.verifier.stats.path",
                             "splitproof.verifier.inputs.reorder", "splitproof.verifier.inputs.probes",
                             "splitproof.verifier.inputs.sampling", "splitproof.verifier.command.live",
                             "splitproof.verifier.command.telemetry", "splitproof.verifier.command.plan",
                             "splitproof.verifier.telemetry")
WITHOUT_HTML = ("matplotlib", "splitproof.verifier.reports.html", "splitproof.verifier.reports.charts")


def _loaded_by(tmp_path: Path, *argv: str, split: tuple[str, str] = ("--expected", "20")) -> tuple[int, set[str]]:
    """(exit code, sys.modules) of a fresh interpreter that ran ``verify-split ARGV`` on a small results file
    end to end (verdict, table, --json): what that path imports, everything it imports included."""
    results = tmp_path / "r.jsonl"
    if not results.exists():
        from splitproof.verifier.inputs.records import Record

        lines = [Record(1000 + i, "grpc", 2 if i % 5 == 0 else 5, "canary" if i % 5 == 0 else "production", "ok",
                        4.0, "RecommendationUser").to_json() for i in range(3000)]
        results.write_text("\n".join(lines) + "\n")
    code = ("import json, sys; from splitproof.verifier.cli import main; code = main(sys.argv[1:]); "
            "print(json.dumps([code, sorted(sys.modules)]))")
    result = subprocess.run([sys.executable, "-c", code, *split, "--results", str(results), "--json",
                             str(tmp_path / "v.json"), *argv], capture_output=True, text=True, timeout=120, check=True)
    exit_code, modules = json.loads(result.stdout.splitlines()[-1])
    assert json.loads((tmp_path / "v.json").read_text())["schema"] == "splitproof.verdict/v1"
    return exit_code, set(modules)


def _among(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m.startswith(prefixes))


def test_a_results_files_fixed_n_verdict_imports_only_what_it_uses(tmp_path: Path) -> None:
    """verify-split --results FILE (fixed-n, two versions or more): scipy.special and numpy for the exact tests,
    rich for the table, the writers asked for -- no scipy.stats, no health, sequential, live or telemetry module.
    The same child does load them on the paths that use them, so the check can fail."""
    code, plain = _loaded_by(tmp_path)
    assert code == 0 and "scipy.special" in plain and "splitproof.verifier.stats.exact" in plain
    assert _among(plain, NOT_FOR_A_FIXED_N_VERDICT + WITHOUT_HTML) == []
    code, three = _loaded_by(tmp_path, split=("--weights", "production=80,canary=10,shadow=10"))  # multinomial
    assert code == 1 and _among(three, NOT_FOR_A_FIXED_N_VERDICT + WITHOUT_HTML) == []
    _, health = _loaded_by(tmp_path, "--health")
    assert {"scipy.stats", "splitproof.verifier.health.fixed", "splitproof.verifier.reports.healthout"} <= health
    _, sequential = _loaded_by(tmp_path, "--sequential")
    assert {"scipy.optimize", "splitproof.verifier.stats.sequential", "splitproof.verifier.inputs.reorder"} <= \
        sequential


def test_an_html_report_adds_only_matplotlib_and_what_it_draws(tmp_path: Path) -> None:
    code, html = _loaded_by(tmp_path, "--html", str(tmp_path / "r.html"))
    assert code == 0 and (tmp_path / "r.html").stat().st_size > 0
    assert {"matplotlib", "splitproof.verifier.reports.charts"} <= html
    assert _among(html, NOT_FOR_A_FIXED_N_VERDICT) == []


def test_bad_health_options_are_refused_before_the_statistics_load() -> None:
    """--health's option checks are part of the preflight: an input error loads no scipy, numpy or rich."""
    code = ("import sys; from splitproof.verifier.cli import main; code = main(sys.argv[1:]); "
            "print(code, sorted(m for m in sys.modules if m.split('.')[0] in ('scipy', 'numpy', 'yaml', 'rich')))")
    for argv in (["--expected", "20", "--health", "--error-fail-margin", "200"],
                 ["--expected", "20", "--health", "--latency-threshold-ms", "-1"],
                 ["--expected", "20", "--error-fail-margin", "1"],
                 ["--expected", "20", "--health", "--max-error-increase", "0.5", "--error-fail-margin", "0.6"],
                 ["--expected", "20", "--health", "--latency-warmup", "3"],
                 ["--weights", "production=100", "--health"]):
        result = subprocess.run([sys.executable, "-c", code, "--results", __file__, *argv],
                                capture_output=True, text=True, timeout=60)
        assert result.stdout.strip() == "2 []", (argv, result.stderr)
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr


def test_the_public_api_is_lazy_complete_and_listed() -> None:
    assert sorted(verifier.__all__) == sorted(verifier._EXPORTS)
    for name in verifier.__all__:
        assert getattr(verifier, name) is not None, name
    assert set(verifier.__all__) <= set(dir(verifier))
    with pytest.raises(AttributeError):
        verifier.no_such_name  # noqa: B018


def test_every_package_folder_says_what_its_modules_are() -> None:
    """Each verifier package's docstring names every one of its modules (the map a newcomer reads first)."""
    for name, path in MODULES.items():
        if path.name != "__init__.py" or not name.startswith("splitproof.verifier."):
            continue
        named = set(re.findall(r"``(\w+)``", path.read_text(encoding="utf-8")))
        actual = {p.stem for p in path.parent.glob("*.py") if p.stem != "__init__"}
        assert actual <= named, (name, actual - named)


def test_the_api_docstring_example_runs() -> None:
    import doctest

    result = doctest.testmod(verifier)
    assert result.attempted >= 2 and result.failed == 0
