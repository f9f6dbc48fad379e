"""Verifier throughput: read and judge a 3-million-record results file vs a baseline that only counts its lines;
and how fast a usage or input error answers.

    python -m bench.verifier_throughput [--records 3000000 --records 10000000] [--rounds 3] [--update]

All sides run as child processes of this script on the same file, interleaved (baseline, verdict, --html, baseline,
...), so every ratio is measured on the same machine state; medians of ``--rounds`` rounds. The baseline is the floor
any Python reader pays (``for line in f: n += 1`` over the text file); the measured sides are the real
``verify-split --expected 20 --results FILE --json PATH`` (fixed-n verdict) and the same with ``--html PATH``. The
file is written by this script just before (the page cache is warm: the numbers are CPU, not disk). Memory: peak
RSS of each child (``ru_maxrss`` of the reaped child); the same command on a file 10x smaller shows whether memory
grows with the input (it must not: the reader streams in blocks of 1 MiB).

Usage errors: the median wall time of ``verify-split`` refusing bad input (a missing file, a bad split, a bad
option), against ``python -c pass`` (the interpreter's own start) and ``python -c "import
splitproof.verifier.command.run"`` (the body -- scipy, numpy, rich -- which an error used to import first).

``--update`` replaces the "## Verifier throughput" section of bench/RESULTS.md with this run's figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import statistics
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
ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}


def write_file(path: Path, n: int, seed: int = 1) -> None:
    """n records at a true 80/20 split with 0.2% errors, as the Locust file's RecordWriter writes them."""
    rng = random.Random(seed)
    t = 1_764_000_000.0
    chunk: list[str] = []
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            t += 0.001
            if rng.random() < 0.002:
                rec = Record(t, "http", None, None, "error:no_recommendations", 3.5, "ShopperUser")
            elif rng.random() < 0.2:
                rec = Record(t, "http", 2, "canary", "ok", rng.uniform(0.5, 9.0), "ShopperUser")
            else:
                rec = Record(t, "http", 4, "production", "ok", rng.uniform(0.5, 9.0), "ShopperUser")
            chunk.append(rec.to_json())
            if len(chunk) == 100_000 or i == n - 1:
                fh.write("\n".join(chunk) + "\n")
                chunk.clear()


def timed(argv: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (MiB) and stdout of one child, its RSS read from its own rusage."""
    code = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
            "p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True); "
            "w = time.perf_counter() - t; "
            "print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024); print(p.stdout)")
    out = subprocess.run(python_argv("-c", code, *argv), capture_output=True, text=True, check=True, env=ENV).stdout
    head, _, rest = out.partition("\n")
    wall, rss = head.split()
    return float(wall), int(rss), rest


def measure(big: Path, small: Path, html: Path, rounds: int) -> dict[str, Any]:
    verify = python_argv("-m", "splitproof.verifier.cli", "--expected", "20", "--results")
    sides = {
        "baseline": python_argv("-c", BASELINE, str(big)),
        "verdict": [*verify, str(big), "--json", "-"],
        "html": [*verify, str(big), "--json", "-", "--html", str(html)],
    }
    walls: dict[str, list[float]] = {k: [] for k in sides}
    rss: dict[str, int] = {}
    outcome = "?"
    for _ in range(rounds):
        for name, argv in sides.items():
            wall, peak, out = timed(argv)
            walls[name].append(wall)
            rss[name] = max(rss.get(name, 0), peak)
            found = re.search(r'"outcome":\s*"(\w+)"', out)
            outcome = found.group(1) if found else outcome
    rss["verdict_small"] = timed([*verify, str(small), "--json", "-"])[1]
    return {"walls": walls, "rss": rss, "outcome": outcome}


ERRORS = (
    ("missing --results file", ["--expected", "20", "--results", "/nonexistent/results.jsonl"]),
    ("--expected 120", ["--expected", "120", "--results", "-"]),
    ("--tolerance 0", ["--expected", "20", "--results", "-", "--tolerance", "0"]),
)


def error_times(repeats: int) -> dict[str, float]:
    """Median wall ms of each error invocation and of the two references, interleaved."""
    cases = {"python -c pass (baseline)": python_argv("-c", "pass"),
             "import the body (what an error cost before)": python_argv(
                 "-c", "import splitproof.verifier.command.run")}
    cases.update({label: python_argv("-m", "splitproof.verifier.cli", *args) for label, args in ERRORS})
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(repeats):
        for label, argv in cases.items():
            start = time.perf_counter()
            subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env=ENV, check=False)
            times[label].append((time.perf_counter() - start) * 1000)
    return {k: statistics.median(v) for k, v in times.items()}


def scanner() -> str:
    from splitproof.verifier.inputs import bulk

    return "C (verifier/inputs/_scan.c)" if bulk.SCAN is not bulk.scan_regex else "regex (no C scanner built)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, action="append",
                        help="file size in records (repeatable; default 3,000,000 and 10,000,000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--update", action="store_true", help="write the figures into bench/RESULTS.md")
    args = parser.parse_args(argv)
    sizes = args.records or [3_000_000, 10_000_000]
    runs = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="splitproof-bench-") as tmp:
            big, small, html = Path(tmp) / "big.jsonl", Path(tmp) / "small.jsonl", Path(tmp) / "report.html"
            t0 = time.perf_counter()
            write_file(big, n)
            write_file(small, max(n // 10, 1))
            gen_s = time.perf_counter() - t0
            size_mib = big.stat().st_size / 2**20
            m = measure(big, small, html, args.rounds)
        med = {k: statistics.median(v) for k, v in m["walls"].items()}
        runs.append({"n": n, "mib": size_mib, "m": m, "med": med, "load": os.getloadavg()[0]})
        print(f"{n:,} records ({size_mib:,.0f} MiB, generated in {gen_s:.0f}s), median of {args.rounds}: "
              f"baseline {med['baseline']:.2f}s, verdict {med['verdict']:.2f}s "
              f"(x{med['verdict'] / med['baseline']:.2f}), --html {med['html']:.2f}s "
              f"(x{med['html'] / med['baseline']:.2f}); verdict {m['outcome']}; peak RSS {m['rss']}", flush=True)
    errors = error_times(15)
    for label, ms in errors.items():
        print(f"  {label}: {ms:.0f} ms")
    print(f"scanner: {scanner()}")
    if args.update:
        update_results(render(runs, errors, args.rounds))
    return 0


def render(runs: list[dict[str, Any]], errors: dict[str, float], rounds: int) -> str:
    rows = []
    for run in runs:
        n, med, walls, rss = run["n"], run["med"], run["m"]["walls"], run["m"]["rss"]
        base = med["baseline"]
        for label, key in (("count lines (baseline)", "baseline"), ("verify-split (verdict)", "verdict"),
                           ("verify-split --html", "html")):
            rounds_s = " / ".join(f"{w:.2f}" for w in walls[key])
            rows.append(f"| {n:,} ({run['mib']:,.0f} MiB) | {label} | {med[key]:.2f} s ({rounds_s}) | "
                        f"{med[key] / n * 1e9:,.0f} ns | **x{med[key] / base:.2f}** | {rss[key]} MiB |")
    flat = "; ".join(f"{r['m']['rss']['verdict']} MiB on {r['n']:,} records vs {r['m']['rss']['verdict_small']} MiB "
                     f"on {r['n'] // 10:,}" for r in runs)
    outcomes = ", ".join(sorted({r["m"]["outcome"] for r in runs}))
    loads = ", ".join(f"{r['load']:.1f}" for r in runs)
    err_base = errors["python -c pass (baseline)"]
    err_rows = "\n".join(f"| {label} | {ms:.0f} ms | x{ms / err_base:.1f} |" for label, ms in errors.items())
    table = "\n".join(rows)
    return f"""{HEADING} (`bench/verifier_throughput.py`)

Run {dt.date.today().isoformat()} on {describe()}; load average after each size: {loads};
PYTHONDONTWRITEBYTECODE=1 (every splitproof module compiled at each start, as on a fresh checkout); scanner:
{scanner()}. Files: true split 80/20 with 0.2% errors, as the Locust file's RecordWriter writes them; written just
before, so the page cache is warm (CPU, not disk, is measured). Baseline: a Python child that only counts the file's
lines (`for line in f: n += 1`, text mode). Measured: `verify-split --expected 20 --results FILE --json -` (fixed-n
verdict: {outcomes}) and the same with `--html PATH`; the three interleaved, {rounds} rounds, medians (each round's
wall time in brackets). Every side is a whole command: interpreter start, imports, read, verdict, reports.

| records | | wall time, median (rounds) | per record | ratio to baseline | peak RSS |
| --- | --- | --- | --- | --- | --- |
{table}

Memory stays flat: peak RSS {flat}: the reader keeps one 1 MiB buffer, its key table and counters. The read itself is
the C scanner (`verifier/inputs/_scan.c`): one pass per 1 MiB block that matches each line against RecordWriter's
exact shape and counts its key (about 40 ns a line; about 90 ns when it also converts `t` and `latency_ms`, as the
HTML timeline needs); every line it does not vouch for goes to the exact parser, which counts and reports it. What is
left of the verdict's time is the start: Python, numpy and scipy.special (the exact binomial tests), rich; `--html`
adds matplotlib and the charts.

**Usage and input errors** (median of 15 interleaved runs, exit 2 with one line): checked before scipy, numpy and
rich are imported (`verifier/command/preflight.py`).

| command | wall time | vs `python -c pass` |
| --- | --- | --- |
{err_rows}
"""


def update_results(section: str) -> None:
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(HEADING)} \(.*?(?=^## |\Z)", re.S | re.M)  # not the "HEADING: ..." sections
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
