"""Verifier start-up: what each ``verify-split`` path costs before and besides its work, on a small results file.

    python -m bench.verifier_startup [--records 3000] [--rounds 10] [--pythonpath DIR]

Every side is a child process, interleaved round by round (so all see the same machine state), medians of
``--rounds``; PYTHONDONTWRITEBYTECODE=1 (every module compiled at each start, as on a fresh checkout). The baseline
is ``python -c pass`` (the interpreter's own start). Sides: the plain fixed-n verdict ``--expected 20 --results
FILE --json -``, the same with ``--html``, ``--health`` and ``--sequential``, and ``import
splitproof.verifier.command.run``. For each path the child's ``-X importtime`` gives the import time (the sum of its
top-level imports' cumulative times, one run) and whether scipy.stats was loaded. ``--pythonpath DIR`` runs the
children against another checkout (a directory holding ``splitproof/verifier`` etc.), for a before/after table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.machine import describe
from bench.verifier_throughput import write_file


def sides(results: Path, html: Path) -> dict[str, list[str]]:
    verify = ["-m", "splitproof.verifier.cli", "--expected", "20", "--results", str(results), "--json", "-"]
    return {
        "python -c pass (baseline)": ["-c", "pass"],
        "import verifier.command.run": ["-c", "import splitproof.verifier.command.run"],
        "verdict (fixed-n)": verify,
        "verdict --html": [*verify, "--html", str(html)],
        "verdict --health": [*verify, "--health"],
        "verdict --sequential": [*verify, "--sequential"],
        "input error (--health --error-fail-margin 200)": [*verify, "--health", "--error-fail-margin", "200"],
    }


def import_profile(argv: list[str], env: dict[str, str]) -> tuple[float, bool]:
    """(ms of imports: the sum of the top-level imports' cumulative times, scipy.stats imported?) of one run."""
    err = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True, text=True, env=env,
                         check=False).stderr
    total, stats = 0, False
    for line in err.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|")
        stats = stats or name.strip().startswith("scipy.stats")
        if not name.startswith("  "):  # top level: one space after the bar
            total += int(cumulative)
    return total / 1000, stats


def measure(cases: dict[str, list[str]], rounds: int, env: dict[str, str]) -> dict[str, float]:
    walls: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(rounds):
        for label, argv in cases.items():
            start = time.perf_counter()
            subprocess.run([sys.executable, *argv], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env=env, check=False)
            walls[label].append((time.perf_counter() - start) * 1000)
    return {k: statistics.median(v) for k, v in walls.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--pythonpath", help="run the children against this checkout (PYTHONPATH)")
    args = parser.parse_args(argv)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    if args.pythonpath:
        env["PYTHONPATH"] = args.pythonpath
    with tempfile.TemporaryDirectory(prefix="splitproof-startup-") as tmp:
        results, html = Path(tmp) / "small.jsonl", Path(tmp) / "report.html"
        write_file(results, args.records)
        cases = sides(results, html)
        walls = measure(cases, args.rounds, env)
        profiles = {label: import_profile(argv, env) for label, argv in cases.items()}
    base = walls["python -c pass (baseline)"]
    print(f"{describe()}; {args.records:,} records; median of {args.rounds} interleaved rounds"
          + (f"; PYTHONPATH={args.pythonpath}" if args.pythonpath else ""))
    print("| path | wall, median | vs python -c pass | imports (-X importtime) | scipy.stats |")
    print("| --- | --- | --- | --- | --- |")
    for label, ms in walls.items():
        imports, stats = profiles[label]
        print(f"| {label} | {ms:.0f} ms | x{ms / base:.1f} | {imports:.0f} ms | {'yes' if stats else 'no'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
