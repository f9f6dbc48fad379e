"""The verifier and the Locust plugin keep their shape: layers point down, no cycles, small modules, a light import,
one public API (README "Architecture")."""

from __future__ import annotations

import re
import subprocess
import sys

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
                  ("errors", "exitcodes", "defaults", "fmt", "istio", "boutique", "safeyaml", "inputfile", "redact",
                   "cliexit")}
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
