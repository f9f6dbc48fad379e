"""Run every benchmark in turn (``make bench``): each measures ratios against a baseline in its own run.

    python -m bench.run_all [--update] [--quick]

``--update`` lets the benchmarks that maintain their own section of bench/RESULTS.md rewrite it; the others print
their figures (copy them into RESULTS.md by hand). ``--quick`` shrinks the long ones (a 1M-record file instead of
10M, 1,000 simulated runs instead of 4,000) for a smoke run. Load goes only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

# The benchmarks are modules of this repository's bench/ package, not installed: each runs with the repository
# root as its working directory (and so first on sys.path), never the caller's directory.
REPO = Path(__file__).resolve().parent.parent

# (module, arguments, argument that rewrites its RESULTS.md section or None, quick-mode arguments)
BENCHES: tuple[tuple[str, list[str], str | None, list[str]], ...] = (
    ("bench.calibration", [], "--update", ["--runs", "1000"]),
    ("bench.health_calibration", [], "--update", ["--runs", "200"]),
    ("bench.dispatch_order", [], "--update", ["--runs", "500"]),
    ("bench.verifier_throughput", [], "--update", ["--records", "1000000", "--rounds", "1"]),
    ("bench.mesh", [], "--record", []),
    ("bench.loadgen", [], None, ["--seconds", "4", "--rounds", "1"]),
    ("bench.loadgen", ["--instructions"], None, ["--seconds", "22"]),
    ("bench.loadgen_pieces", [], None, ["--calls", "2000"]),
    ("bench.frontend_keepalive", [], None, []),
    ("bench.yaml_input", [], "--update", ["--mib", "1"]),
    ("bench.telemetry_query", [], "--update", ["--repeat", "3"]),
    ("bench.telemetry_watch", [], "--update", ["--runs", "2"]),
    ("bench.rollout", [], "--record", ["--rounds", "1"]),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--update", action="store_true", help="let benchmarks rewrite their RESULTS.md sections")
    parser.add_argument("--quick", action="store_true", help="smaller runs (a smoke test, not for RESULTS.md)")
    args = parser.parse_args(argv)
    failed = []
    for module, extra, update_flag, quick in BENCHES:
        cmd = [sys.executable, "-m", module, *extra, *(quick if args.quick else [])]
        if args.update and update_flag and not args.quick:
            cmd.append(update_flag)
        print(f"\n=== {' '.join(cmd[1:])}", flush=True)
        start = time.monotonic()
        code = subprocess.run(cmd, cwd=REPO).returncode
        print(f"=== {module}: exit {code} in {time.monotonic() - start:.0f}s", flush=True)
        if code != 0:
            failed.append(module)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
