"""Verifier throughput: read and judge a 10-million-record results file vs a baseline that only counts its lines.

    python -m bench.verifier_throughput [--records 10000000] [--update]

Both sides run as child processes of this script on the same file, one after the other, so the ratio is measured
on the same machine state: the baseline is the floor any Python reader pays (``for line in f: n += 1``); the
measured side is the real ``verify-split --expected 20 --results FILE`` (fixed-n verdict, JSON out). Memory: peak
RSS of each child (``ru_maxrss`` of the reaped child); the same command on a file 10x smaller shows whether memory
grows with the input (it must not: the reader streams).

``--update`` replaces the "## Verifier throughput" section of bench/RESULTS.md with this run's figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.machine import describe
from splitproof.setup.proc import python_argv
from splitproof.verifier.inputs.records import Record

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADING = "## Verifier throughput"
BASELINE = (
    "import sys\n"
    "n = 0\n"
    "with open(sys.argv[1], encoding='utf-8') as f:\n"
    "    for _ in f:\n"
    "        n += 1\n"
    "print(n)\n"
)


def write_file(path: Path, n: int, seed: int = 1) -> None:
    """n records at a true 80/20 split with 0.2% errors, as RecordWriter would write them."""
    rng = random.Random(seed)
    t = 1_764_000_000.0
    chunk: list[str] = []
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            t += 0.001
            if rng.random() < 0.002:
                rec = Record(t, "http", None, None, "error:no_recommendations", 3.5)
            elif rng.random() < 0.2:
                rec = Record(t, "grpc", 2, "canary", "ok", rng.uniform(0.5, 9.0))
            else:
                rec = Record(t, "grpc", 5, "production", "ok", rng.uniform(0.5, 9.0))
            chunk.append(rec.to_json())
            if len(chunk) == 100_000 or i == n - 1:
                fh.write("\n".join(chunk) + "\n")
                chunk.clear()


def run_child(argv: list[str]) -> tuple[float, str]:
    """(wall seconds, stdout) of one child process."""
    start = time.perf_counter()
    out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    return time.perf_counter() - start, out


def measure(path: Path) -> dict[str, Any]:
    base_s, base_out = run_child(python_argv("-c", BASELINE, str(path)))
    verify = python_argv("-m", "splitproof.verifier.cli", "--expected", "20", "--results", str(path), "--json", "-")
    ver_s, ver_out = run_child(verify)
    outcome = re.search(r'"outcome":\s*"(\w+)"', ver_out)
    return {"lines": int(base_out.strip()), "baseline_s": base_s, "verify_s": ver_s,
            "outcome": outcome.group(1) if outcome else "?"}


def peak_rss_isolated(argv: list[str]) -> int:
    """Peak RSS (MiB) of one child measured on its own (RUSAGE_CHILDREN is a high-water mark over all children)."""
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
            "stderr=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run(python_argv("-c", code, *argv), capture_output=True, text=True, check=True).stdout
    return int(out.strip()) // 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--update", action="store_true", help="write the figures into bench/RESULTS.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="splitproof-bench-") as tmp:
        big, small = Path(tmp) / "big.jsonl", Path(tmp) / "small.jsonl"
        t0 = time.perf_counter()
        write_file(big, args.records)
        write_file(small, max(args.records // 10, 1))
        gen_s = time.perf_counter() - t0
        size_mib = big.stat().st_size / 2**20
        m = measure(big)
        verify = python_argv("-m", "splitproof.verifier.cli", "--expected", "20", "--results")
        rss_big = peak_rss_isolated([*verify, str(big), "--json", "-"])
        rss_small = peak_rss_isolated([*verify, str(small), "--json", "-"])
        rss_base = peak_rss_isolated(python_argv("-c", BASELINE, str(big)))
    ratio = m["verify_s"] / m["baseline_s"]
    per_rec_us = m["verify_s"] / m["lines"] * 1e6
    print(f"{m['lines']:,} records ({size_mib:,.0f} MiB, generated in {gen_s:.0f}s): baseline {m['baseline_s']:.1f}s, "
          f"verify-split {m['verify_s']:.1f}s (x{ratio:.1f}, {per_rec_us:.2f} us/record, verdict {m['outcome']}); "
          f"peak RSS {rss_big} MiB at {args.records:,} vs {rss_small} MiB at {args.records // 10:,} "
          f"(baseline reader {rss_base} MiB)")
    if args.update:
        section = render(m, size_mib, ratio, per_rec_us, rss_big, rss_small, rss_base, args.records)
        update_results(section)
    return 0


def render(m: dict[str, Any], size_mib: float, ratio: float, per_rec_us: float, rss_big: int, rss_small: int,
           rss_base: int, n: int) -> str:
    base_us = m["baseline_s"] / m["lines"] * 1e6
    return f"""{HEADING} (`bench/verifier_throughput.py`)

Run {dt.date.today().isoformat()} on {describe()}.
File: {m['lines']:,} records ({size_mib:,.0f} MiB), true split 80/20 with 0.2% errors, as RecordWriter writes them.
Baseline: a Python child that only counts the file's lines. Measured: `verify-split --expected 20 --results FILE
--json -` (fixed-n verdict: {m['outcome']}), same file, same run.

| | wall time | per record | ratio to baseline | peak RSS |
| --- | --- | --- | --- | --- |
| count lines (baseline) | {m['baseline_s']:.1f} s | {base_us:.2f} µs | 1.0 | {rss_base} MiB |
| verify-split | {m['verify_s']:.1f} s | {per_rec_us:.2f} µs | x{ratio:.1f} | {rss_big} MiB |

Memory stays flat: peak RSS {rss_big} MiB on {n:,} records vs {rss_small} MiB on {n // 10:,} (ratio
{rss_big / max(rss_small, 1):.2f}); what remains is the interpreter with numpy/scipy/rich imported. The reader streams
and keeps only counters. Canonical lines take a regex fast path (`verifier/inputs/records.py`); the rest of the time per
record is validation, attribution and counting in Python.
"""


def update_results(section: str) -> None:
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(HEADING)}.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
