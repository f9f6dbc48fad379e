"""Every Python child this project starts is built by setup.proc.python_argv (python -P): none imports from the
caller's working directory. The decoy-folder tests with real children are in test_mesh.py (detached supervisor
and instances), test_boutique.py (launcher), test_demo.py (mesh, Locust, verify-split) and
test_loadtest_locust.py (Locust, which puts its working directory on sys.path itself)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from helpers import decoys_hit

from splitproof.setup import proc

REPO = Path(__file__).resolve().parent.parent
SOURCES = [p for folder in ("setup", "verifier", "loadtest", "bench", "protos") for p in (REPO / folder).rglob("*.py")]
# sys.executable (or "python") followed by an interpreter option: a child command line built by hand.
HAND_BUILT = re.compile(r"""(sys\.executable|["']python3?["'])\s*,\s*["']-[mcIS]""")
# The other safe choice, a fixed working directory: the repository's (not installed) bench modules run from it.
FIXED_CWD = {"bench/run_all.py"}


def test_python_children_are_built_in_one_place() -> None:
    offenders = [f"{path.relative_to(REPO)}:{n}" for path in SOURCES
                 if path.name != "proc.py" and str(path.relative_to(REPO)) not in FIXED_CWD
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if HAND_BUILT.search(line) and "-I" not in line]  # the -I -S exec wrapper is isolated already
    assert offenders == [], f"build Python child command lines with setup.proc.python_argv: {offenders}"


def test_python_argv_is_a_safe_path_interpreter(decoy_dir: Path) -> None:
    argv = proc.python_argv("-c", "import sys; print(sys.path[0])")
    assert argv[:2] == [sys.executable, "-P"]
    first = subprocess.run(argv, cwd=decoy_dir, capture_output=True, text=True, check=True).stdout.strip()
    assert first != "" and Path(first) != decoy_dir  # `python -c` alone would put '' (the cwd) first
    module = subprocess.run(proc.python_argv("-m", "splitproof.setup.errors"), cwd=decoy_dir, capture_output=True,
                            text=True, timeout=60)
    assert module.returncode == 0, module.stderr
    assert decoys_hit(decoy_dir) == []
    assert proc.python_argv("-m", "x", python="python")[:3] == ["python", "-P", "-m"]
