"""Passive gate speed: time from a live misroute to a FAIL by ``verify-split --prometheus --watch`` at a 1 s scrape.

    python -m bench.telemetry_watch [--runs 5] [--window 4] [--update]

One local mesh with its real Prometheus (``LocalMesh(prometheus=True)``: Istio's metrics from the exporter, scraped
every 1 s) and background gRPC traffic through the mesh entry (one channel, ``--window`` calls in flight: the "real
traffic"). Each run: the weights go from the right split (80/20, 20 expected) to 50/50 live (``set_weights``
returns once Envoy serves them) -- the clock starts, and ``verify-split --prometheus --watch`` starts; it stops
when the watch exits FAIL. (A watch already running at the right split would soon PASS and stop: a passive gate
runs after each weight step.) Baseline in the same run, same traffic and misroute: the active sequential sampler
``verify-split --target <entry>`` started at the same moment (its own calls, decided per response). Median of
``--runs``, interleaved. Also the passive gate's rate of requests per second seen, from its JSON.

``--update`` rewrites its section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import grpc

from bench.machine import describe
from bench.results import replace_section
from splitproof.protos import demo_pb2, demo_pb2_grpc
from splitproof.setup import proc
from splitproof.setup.manifests import CanaryParams
from splitproof.setup.mesh import LocalMesh

HEADING = "## Passive verification: misroute to FAIL by --watch (`bench/telemetry_watch.py`)"
REQUEST = demo_pb2.ListRecommendationsRequest(user_id="bench", product_ids=["OLJCESPC7Z"])


def traffic(entry: str, window: int, stop: threading.Event) -> None:
    with grpc.insecure_channel(entry) as channel:
        stub = demo_pb2_grpc.RecommendationServiceStub(channel)
        pending: list[grpc.Future] = []
        while not stop.is_set():
            pending.append(stub.ListRecommendations.future(REQUEST, timeout=10))
            if len(pending) >= window:
                try:
                    pending.pop(0).result()
                except grpc.RpcError:
                    pass
        for fut in pending:
            try:
                fut.result()
            except grpc.RpcError:
                pass


def verify(*args: str, out: Path, progress: bool = False) -> subprocess.Popen[bytes]:
    argv = proc.python_argv("-m", "splitproof.verifier.cli", "--expected", "20", *args, "--json", str(out),
                            *([] if progress else ["--no-progress"]))
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE if progress else subprocess.DEVNULL)


def count_polls(child: subprocess.Popen[bytes], polls: list[int]) -> None:
    """The watch prints one line per poll on stderr: count them (until it exits)."""
    assert child.stderr is not None
    for line in child.stderr:
        if b"attributed" in line:
            polls[0] += 1


def one_run(mesh: LocalMesh, tmp: Path, i: int) -> tuple[float, float, dict, dict]:
    mesh.set_weights(20)
    watch_json, active_json = tmp / f"watch-{i}.json", tmp / f"active-{i}.json"
    mesh.set_weights(50)
    t0 = time.monotonic()
    watch = verify("--prometheus", mesh.prometheus_url, "--watch", "--interval", "1", "--duration", "120",
                   out=watch_json, progress=True)
    polls = [0]
    reader = threading.Thread(target=count_polls, args=(watch, polls), daemon=True)
    reader.start()
    active = verify("--target", mesh.grpc_entry, "--max-samples", "20000", "--duration", "120", out=active_json)
    codes: dict[str, int] = {}
    times: dict[str, float] = {}
    while len(codes) < 2:
        for name, child in (("watch", watch), ("active", active)):
            if name not in codes and child.poll() is not None:
                codes[name], times[name] = child.returncode, time.monotonic() - t0
        time.sleep(0.01)
    reader.join(timeout=5)
    if codes != {"watch": 1, "active": 1}:
        doc = json.loads(watch_json.read_text()) if watch_json.exists() else {}
        raise SystemExit(f"run {i}: expected two FAILs, got {codes}; the watch: {doc.get('reason')} "
                         f"({doc.get('telemetry', {}).get('batches')} polls, counts "
                         f"{doc.get('telemetry', {}).get('counts')})")
    return times["watch"], times["active"], json.loads(watch_json.read_text()), json.loads(active_json.read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--window", type=int, default=4, help="background calls in flight (default: %(default)s)")
    p.add_argument("--update", action="store_true", help="rewrite its section of bench/RESULTS.md")
    args = p.parse_args(argv)
    passive: list[float] = []
    active: list[float] = []
    seen: list[tuple[int, int, float]] = []
    with tempfile.TemporaryDirectory(prefix="splitproof-bench-") as tmp, \
            LocalMesh(CanaryParams(), prometheus=True) as mesh:
        stop = threading.Event()
        load = threading.Thread(target=traffic, args=(mesh.grpc_entry, args.window, stop), daemon=True)
        load.start()
        try:
            for i in range(args.runs):
                tp, ta, wdoc, adoc = one_run(mesh, Path(tmp), i)
                passive.append(tp)
                active.append(ta)
                tele = wdoc["telemetry"]
                span = (tele["window"]["until"] - tele["window"]["since"]) if tele["window"] else 0.0
                seen.append((wdoc["n"], tele["batches"], wdoc["n"] / span if span else 0.0))
                print(f"run {i + 1}: passive FAIL {tp:.2f}s after the misroute ({tele['batches']} polls, "
                      f"{wdoc['n']} requests), active FAIL {ta:.2f}s ({adoc['n']} responses)", flush=True)
        finally:
            stop.set()
            load.join()
    mp, ma = statistics.median(passive), statistics.median(active)
    rate = statistics.median(r for _n, _b, r in seen)
    section = "\n".join([
        HEADING, "",
        f"Run {date.today().isoformat()} on {describe()}; one local mesh with its real Prometheus (1 s scrape of "
        f"the exporter's istio_requests_total), background gRPC traffic ({args.window} calls in flight, "
        f"~{rate:,.0f} requests/s seen by the watch). The split is 80/20 with 20 expected; the weights become "
        f"50/50 live and both gates start at once (each time includes its process start: Python + scipy "
        f"imports). Median of {args.runs} runs; the watch's median poll count at the FAIL: "
        f"{statistics.median(b for _n, b, _r in seen):g}.", "",
        "| gate | misroute -> FAIL, median | min | max | ratio to baseline |",
        "| --- | --- | --- | --- | --- |",
        f"| passive `--prometheus --watch` (1 s polls) | {mp:.2f} s | {min(passive):.2f} s | {max(passive):.2f} s "
        f"| x{mp / ma:.1f} |",
        f"| baseline: active `--target` sequential, started at the misroute | {ma:.2f} s | {min(active):.2f} s | "
        f"{max(active):.2f} s | x1.0 |", "",
        "The passive gate decides only at poll boundaries from what Prometheus has scraped, so beyond its start "
        "it waits up to a scrape plus a poll interval (here 1 s + 1 s) for each batch -- at this traffic one "
        "batch of the misroute is enough; it sends no load. The active sampler decides per response but sends its "
        "own calls and needs a sidecar (or the mesh entry) to sample through.", ""])
    if args.update:
        replace_section(section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
