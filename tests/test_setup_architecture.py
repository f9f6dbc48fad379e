"""The shape of splitproof.setup, checked on its source (AST, nothing imported): no import cycles -- counting lazy
imports inside functions and ``TYPE_CHECKING`` blocks --, imports that only point down its layers, no module over
~400 lines, and one process toolkit (setup/proc.py) that every child process goes through."""

from __future__ import annotations

import re
from pathlib import Path

import importgraph
import pytest

REPO = Path(__file__).resolve().parent.parent
SETUP = REPO / "setup"
MAX_LINES = 400

# Layers inside setup, bottom up: a module may import its own layer or lower ones, never a higher one.
# (splitproof.verifier and splitproof.protos sit below all of them.)
LAYERS: tuple[tuple[str, ...], ...] = (
    ("", "errors", "privatefs", "net"),   # "": the package itself (a docstring)
    ("proc", "stopsignals"),
    ("manifests", "router", "envoyroutes"),
    ("boutique",),
    ("mesh", "cluster"),   # two providers side by side: neither imports the other
    ("rollout",),          # the progressive rollout: drives either provider through the Router
    ("demo",),
    ("cli",),              # finds its subcommand modules by name (importlib): every layer below
    ("__main__",),
)


def modules() -> dict[str, Path]:
    """splitproof.setup module name -> file."""
    return {name: path for name, path in importgraph.modules().items() if name.startswith("splitproof.setup")}


def graph() -> dict[str, set[str]]:
    """The setup part of the project's import graph (tests/importgraph.py), TYPE_CHECKING imports included."""
    return {name: {d for d in deps if d.startswith("splitproof.setup")}
            for name, deps in importgraph.graph(type_checking=True).items() if name.startswith("splitproof.setup")}


def layer_of(name: str) -> tuple[int, str]:
    top = name.split(".")[2] if name.count(".") >= 2 else ""
    for level, members in enumerate(LAYERS):
        if top in members:
            return level, top
    raise AssertionError(f"{name}: not in any layer of this test (add it to LAYERS)")


def test_the_checker_finds_a_cycle() -> None:
    assert importgraph.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert importgraph.cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_setup_not_even_lazy_ones() -> None:
    """Lazy imports inside functions and imports under ``TYPE_CHECKING`` count: a cycle they hide is still one."""
    assert importgraph.cycles(graph()) == []


def test_imports_only_point_down_the_layers() -> None:
    bad = []
    for name, targets in graph().items():
        level, top = layer_of(name)
        for target in targets:
            t_level, t_top = layer_of(target)
            if t_level > level or (t_level == level and t_top != top):
                bad.append(f"{name} imports {target}")
    assert bad == []


def test_every_setup_package_says_what_its_modules_are() -> None:
    """Each setup package's docstring names every one of its modules and subpackages (the map a newcomer reads
    first, as the verifier's do)."""
    for name, path in modules().items():
        if path.name != "__init__.py":
            continue
        named = set(re.findall(r"``(\w+)``", path.read_text(encoding="utf-8")))
        actual = {p.stem for p in path.parent.glob("*.py") if not p.stem.startswith("__")}
        actual |= {p.name for p in path.parent.iterdir() if (p / "__init__.py").is_file()}
        assert actual <= named, (name, sorted(actual - named))


def test_no_setup_module_is_over_400_lines() -> None:
    sizes = {str(p.relative_to(REPO)): len(p.read_text(encoding="utf-8").splitlines()) for p in modules().values()}
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}


@pytest.mark.parametrize("needle", ["subprocess.Popen(", "_PDEATHSIG_EXEC", "time.sleep(", "READY_RE"])
def test_one_process_toolkit(needle: str) -> None:
    """Children are started, waited for and stopped only through setup/proc.py (the boutique's injected latency
    is the one sleep that is not a wait)."""
    allowed = {"setup/proc.py"} | ({"setup/boutique/recommendation.py"} if needle == "time.sleep(" else set())
    users = {str(p.relative_to(REPO)) for p in modules().values() if needle in p.read_text(encoding="utf-8")}
    assert users - allowed == set()


def test_comments_cite_public_sources_not_the_labs_notes() -> None:
    """Users of the project do not have the lab's private notes: setup, tests and bench cite public sources."""
    files = [p for folder in ("setup", "tests", "bench") for p in sorted((REPO / folder).rglob("*"))
             if p.is_file() and p.suffix in (".py", ".md", ".j2", ".yaml", ".json", ".txt")]
    cited = [str(p.relative_to(REPO)) for p in files if "FACTS" + ".md" in p.read_text(encoding="utf-8")]
    assert cited == []


# What a test module that starts real processes contains (a test may ask for the session's ``mesh`` fixture).
PROCESS_SIGNS = re.compile(r"subprocess|run_installed|start_service|LocalMesh|FakeCluster|proc\.spawn|ServiceGroup|"
                           r"promharness|envoyharness|: Spawned|def test_\w+\([^)]*\bmesh\b")


def test_every_test_module_starting_processes_is_marked_slow() -> None:
    """``make test-fast`` (``-m "not slow"``) must not start processes: conftest marks these modules slow."""
    from conftest import REAL_PROCESS_MODULES

    starting = {p.stem for p in sorted((REPO / "tests").glob("test_*.py"))
                if p.stem != Path(__file__).stem and PROCESS_SIGNS.search(p.read_text(encoding="utf-8"))}
    assert starting - REAL_PROCESS_MODULES == set()
    assert REAL_PROCESS_MODULES - {p.stem for p in (REPO / "tests").glob("test_*.py")} == set()  # no stale names
