"""Every runnable benchmark answers ``--help`` (``make bench`` and bench/RESULTS.md name their command lines; a help
text that crashes -- a stray ``%`` in an argparse help string -- hides every option of the script)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from splitproof.setup import proc

REPO = Path(__file__).resolve().parent.parent
RUNNABLE = sorted(p.stem for p in (REPO / "bench").glob("*.py") if 'if __name__ == "__main__":' in p.read_text())


def test_there_are_runnable_benchmarks() -> None:
    assert {"loadgen", "verifier_throughput", "run_all"} <= set(RUNNABLE)


def test_every_benchmark_answers_help() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # the bench modules are the repository's, not installed
    children = {name: subprocess.Popen(proc.python_argv("-m", f"bench.{name}", "--help"), cwd=REPO, env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for name in RUNNABLE}
    failed = {}
    for name, child in children.items():
        try:
            out, err = child.communicate(timeout=120)
        finally:
            child.kill()
        if child.returncode != 0 or "usage:" not in out:
            failed[name] = (child.returncode, err.strip().splitlines()[-1:] if err else out[:200])
    assert failed == {}, failed
