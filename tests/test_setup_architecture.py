"""The shape of splitproof.setup, checked on its source (AST, nothing imported): no import cycles -- counting lazy
imports inside functions and ``TYPE_CHECKING`` blocks --, imports that only point down its layers, no module over
~400 lines, and one process toolkit (setup/proc.py) that every child process goes through."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SETUP = REPO / "setup"
MAX_LINES = 400

# Layers inside setup, bottom up: a module may import its own layer or lower ones, never a higher one.
# (splitproof.verifier and splitproof.protos sit below all of them.)
LAYERS: tuple[tuple[str, ...], ...] = (
    ("", "errors", "privatefs", "net"),   # "": the package itself (a docstring)
    ("proc",),
    ("manifests", "router", "envoyroutes"),
    ("boutique",),
    ("mesh", "cluster"),   # two providers side by side: neither imports the other
    ("demo",),
    ("cli",),              # finds its subcommand modules by name (importlib): every layer below
    ("__main__",),
)


def modules() -> dict[str, Path]:
    """splitproof.setup module name -> file."""
    out = {}
    for path in sorted(SETUP.rglob("*.py")):
        rel = path.relative_to(SETUP).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        out[".".join(["splitproof.setup", *parts])] = path
    return out


def imports_of(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """Every splitproof.setup module ``name`` imports (anywhere in the file), with the line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base
                                                                                                  else []))
            # ``from pkg import name``: the submodule ``pkg.name`` when there is one, else ``pkg`` itself
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith("splitproof.setup"):
                yield target, node.lineno


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    out: dict[str, set[str]] = {}
    for name, path in mods.items():
        out[name] = {t for t, _ in imports_of(name, path, known)}
    return out


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def layer_of(name: str) -> tuple[int, str]:
    top = name.split(".")[2] if name.count(".") >= 2 else ""
    for level, members in enumerate(LAYERS):
        if top in members:
            return level, top
    raise AssertionError(f"{name}: not in any layer of this test (add it to LAYERS)")


def test_the_checker_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_setup_not_even_lazy_ones() -> None:
    """Lazy imports inside functions and imports under ``TYPE_CHECKING`` count: a cycle they hide is still one."""
    assert cycles(graph()) == []


def test_imports_only_point_down_the_layers() -> None:
    bad = []
    for name, targets in graph().items():
        level, top = layer_of(name)
        for target in targets:
            t_level, t_top = layer_of(target)
            if t_level > level or (t_level == level and t_top != top):
                bad.append(f"{name} imports {target}")
    assert bad == []


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
