"""Load generation overhead: the attributing Locust users against bare clients, same machine, same run.

    python -m bench.loadgen [--seconds 8] [--users 10] [--rounds 2] [--only page-bare,page-shopper,...] [--paired]
    python -m bench.loadgen --instructions [--seconds 30] [--hash-seed 0]

HTTP: ShopperUser (only its browseProduct task, so it fetches exactly what the baseline fetches: product pages --
counted, attributed, recorded, fed to the live gate) against a bare FastHttpUser that GETs the same product pages
and does nothing else, against two servers:
  * the real local frontend (a product page = one real ListRecommendations call): what a load test sees;
  * a real Envoy answering every path with a product page captured from that frontend (``direct_response``):
    the server costs next to nothing, so the load generator is the bottleneck -- the worst case for overhead.

gRPC: RecommendationUser against (a) a bare grpcio loop (one synchronous stub call after another, no Locust) and
(b) a bare Locust gRPC user (same gevent plumbing, no attribution or recording), all calling the real local
recommendationservice.

``--instructions`` counts instead the instructions the Locust child executes per product page under valgrind
(callgrind), bare FastHttpUser and ShopperUser against the instant server: a ratio for the same overhead that moves
by about 1% between runs, where requests/s move by up to 25% on a shared host (it does not see cache misses, which
the rate does). A third user, the bare one checking its status through ``catch_response``, shows how much of the
difference is Locust's own price for judging a response. Every child there runs with one string-hash seed
(``PYTHONHASHSEED``, ``--hash-seed``, default 0): with a random seed per process each run lays out its dicts
differently, and ShopperUser's count went from 597k to 620k per page in three runs of the same code; with seed 0,
602k-605k in three. The count still moves with how many pages valgrind lets through (the event loop's per-second
work is spread over them: the bare user read 546k-562k at seed 0): compare the users of one run.

Besides requests/s, each run reports the client's CPU time per request (the child's rusage, minus the CPU the
same command spends starting up, measured alone): when the server bounds the rate, that is the generator's own
cost. Rounds alternate the configurations, counterbalanced (A B C, C B A, ...: within a pair the baseline runs
first in odd rounds and second in even ones); medians are reported; ratios are against the
baseline measured in the same run -- the ratio of the medians, and the median and range of the ratios within each
round (on a shared host whose speed drifts by 25% over minutes, the within-round ratio is the steadier figure).
``--paired`` runs each baseline and its candidate at the same time instead, sharing the two cores with the server:
the drift then hits both alike, and the req per CPU-second ratio -- the rate each would reach with the CPU to itself
-- is the figure (each command's start-up CPU is measured alone first).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from splitproof.setup import proc
from splitproof.setup.proc import python_argv
from splitproof.verifier.boutique import PRODUCT_IDS

REPO = Path(__file__).resolve().parent.parent
BOUTIQUE = str(REPO / "loadtest" / "boutique.py")
THIS = str(Path(__file__).resolve())
CLOCK = str(Path(__file__).resolve().with_name("locust_clock.py"))

if __name__ != "__main__":
    # Imported by Locust as the baseline locustfile. (Run as a script -- the harness and the bare grpcio loop --
    # it must not import locust, which monkey-patches the standard library.)
    import grpc
    import grpc.experimental.gevent as grpc_gevent
    from locust import FastHttpUser, User, task

    from splitproof.protos import demo_pb2, demo_pb2_grpc

    grpc_gevent.init_gevent()  # before any channel exists

    class BareProductUser(FastHttpUser):
        """GET a product page; Locust's own success check only."""

        @task
        def product(self) -> None:
            self.client.get(f"/product/{random.choice(PRODUCT_IDS)}", name="/product/[id]")

    class CheckedProductUser(FastHttpUser):
        """The same GET through Locust's own way to judge a response (``catch_response``), judged by its status
        only: what any locustfile that checks its pages pays before it checks anything (``--instructions``)."""

        @task
        def product(self) -> None:
            with self.client.get(f"/product/{random.choice(PRODUCT_IDS)}", name="/product/[id]",
                                 catch_response=True) as resp:
                if resp.status_code != 200:
                    resp.failure(f"status {resp.status_code}")

    class BareGrpcUser(User):
        """ListRecommendations on ``--host HOST:PORT`` reported to Locust; no attribution, no records."""

        def on_start(self) -> None:
            self.channel = grpc.insecure_channel(str(self.host))
            self.stub = demo_pb2_grpc.RecommendationServiceStub(self.channel)

        def on_stop(self) -> None:
            self.channel.close()

        @task
        def call(self) -> None:
            request = demo_pb2.ListRecommendationsRequest(user_id="bench", product_ids=[random.choice(PRODUCT_IDS)])
            start = time.perf_counter()
            exc: Exception | None = None
            size = 0
            try:
                size = self.stub.ListRecommendations(request, timeout=10).ByteSize()
            except grpc.RpcError as error:
                exc = error
            self.environment.events.request.fire(request_type="grpc", name="ListRecommendations",
                                                 response_time=(time.perf_counter() - start) * 1000,
                                                 response_length=size, response=None, context={}, exception=exc)


else:  # the harness: its processes (bench.loadgen_harness; ``bench`` is importable from the repository only)
    from bench.loadgen_harness import (
        Sample,
        boutique_services,
        envoy_page_server,
        idle_cpu,
        locust_argv,
        locust_run,
        run_child,
        shopper_args,
    )


# ------------------------------------------------------------------------------------------------- harness


def bare_grpc_loop(target: str, seconds: float) -> None:
    """Child mode: a synchronous grpcio loop for ``seconds`` (bench.grpcload); prints calls and failures as JSON."""
    from bench.grpcload import sync_loop

    result = sync_loop(target, seconds, warmup=False)
    print(json.dumps({"calls": result.calls, "failures": result.failures, "elapsed": result.elapsed}))


def loop_sample(workdir: Path, target: str, seconds: float) -> Sample:
    log = workdir / "grpc-loop.log"
    # as ``-m bench.loadgen`` with this repository (not the working directory) on the path: bench.grpcload
    argv = python_argv("-m", "bench.loadgen", "--bare-grpc-loop", target, "--seconds", f"{seconds:g}")
    env = {"PYTHONPATH": str(REPO)}
    idle = idle_cpu(python_argv("-m", "bench.loadgen", "--bare-grpc-loop", target, "--seconds", "0"), log, env)
    code, cpu = run_child(argv, log, seconds + 60, env)
    cpu = max(cpu - idle, 0.0)
    if code != 0:
        raise RuntimeError(f"bare grpc loop exited {code} (log: {log})")
    result = json.loads(log.read_text().strip().splitlines()[-1])
    return Sample("grpc-loop", result["calls"], result["failures"], result["calls"] / result["elapsed"], cpu)


# (baseline, candidate): with --paired the two run at the same time
PAIRS = (("page-bare", "page-shopper"), ("frontend-bare", "frontend-shopper"),
         ("grpc-bare-locust", "grpc-recommendation-user"))


def run_together(runs: list[Callable[[], Sample]]) -> list[Sample]:
    """Run the samples at the same time (one thread each, waiting on its own child); their results in order."""
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        return list(pool.map(lambda run: run(), runs))


def measure(seconds: float, users: int, rounds: int, only: set[str] | None = None,
            paired: bool = False) -> dict[str, list[Sample]]:
    samples: dict[str, list[Sample]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-loadgen-") as tmp:
        work = Path(tmp)
        started = []
        envoy_child = None
        try:
            production, frontend, page = boutique_services(work, started)
            envoy_child, page_url = envoy_page_server(page, work)
            results = work / "out.jsonl"
            shopper = shopper_args(results)
            page, grpc = "/product/[id]", "ListRecommendations"
            locust_runs = [
                locust_run("page-bare", work, THIS, page_url, users, seconds, page, ["BareProductUser"]),
                locust_run("page-shopper", work, BOUTIQUE, page_url, users, seconds, page, shopper),
                locust_run("frontend-bare", work, THIS, frontend.url, users, seconds, page, ["BareProductUser"]),
                locust_run("frontend-shopper", work, BOUTIQUE, frontend.url, users, seconds, page, shopper),
                locust_run("grpc-bare-locust", work, THIS, production.addr, users, seconds, grpc, ["BareGrpcUser"]),
                locust_run("grpc-recommendation-user", work, BOUTIQUE, "http://127.0.0.1:9", users, seconds, grpc,
                           ["RecommendationUser", "--grpc-target", production.addr, "--split-results", str(results),
                            "--expected", "0"]),
            ]
            runs: dict[str, Callable[[], Sample]] = {run.name: run.sample for run in locust_runs}
            runs["grpc-loop"] = lambda: loop_sample(work, production.addr, seconds)
            order = ("page-bare", "page-shopper", "frontend-bare", "frontend-shopper", "grpc-loop",
                     "grpc-bare-locust", "grpc-recommendation-user")
            names = [name for name in order if only is None or name in only]
            steps = [[name] for name in names]
            if paired:  # each pair in one step; the rest alone
                together = [[b, c] for b, c in PAIRS if b in names and c in names]
                steps = together + [[name] for name in names if not any(name in step for step in together)]
                by_name = {run.name: run for run in locust_runs}
                for step in together:  # each command's start-up CPU alone, before the pairs share the cores
                    for name in step:
                        by_name[name].startup_cpu()
            for r in range(rounds):
                # counterbalanced (A B C, C B A, ...): within a pair the baseline goes first in odd rounds and second
                # in even ones, so a carry-over from whichever run comes before hits both alike over two rounds
                for step in steps if r % 2 == 0 else steps[::-1]:
                    for name, sample in zip(step, run_together([runs[name] for name in step]), strict=True):
                        samples.setdefault(name, []).append(sample)
                        print(f"round {r + 1} {name:26s} {sample.rps:8.0f} req/s  {sample.cpu_us_per_request:7.0f} "
                              f"us CPU/req  ({sample.requests} requests, {sample.failures} failed)", flush=True)
        finally:
            if envoy_child is not None:
                proc.stop(envoy_child)
            for spawned in reversed(started):
                spawned.stop()
    return samples


SHORT_RUN_S = 12.0  # past ramp-up and the live gate's decision (537 pages for --expected 0, ~5 s under valgrind)


def instructions_per_request(name: str, workdir: Path, locustfile: str, host: str, users: int, seconds: float,
                             extra: list[str], hash_seed: int = 0) -> tuple[float, int]:
    """Instructions the Locust child executes per product page, counted by valgrind (callgrind): the difference
    between a run of ``seconds`` and one of SHORT_RUN_S, over the difference in requests, so start-up, ramp-up, the
    live gate's undecided start and the end-of-run verdict cancel: the steady state of a long run. Deterministic
    where requests/s are not -- a shared host moves those by up to 25% between runs -- at the price of a ~50x slower
    child (so few requests: the ratio, not the rate, is the figure). bench/locust_clock.py runs beside the
    locustfile, or ``-t`` would end a run under valgrind as soon as it started."""
    counts = []
    for length in (SHORT_RUN_S, seconds):
        stats = workdir / f"{name}-cg-stats"
        argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                *locust_argv(f"{locustfile},{CLOCK}", host, users, length, stats, extra)]
        log = workdir / f"{name}-cg.log"
        # one BLAS thread: numpy's pool spins under valgrind (which runs threads one at a time) and would be counted
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONHASHSEED": str(hash_seed)}
        code, _cpu = run_child(argv, log, length * 100 + 120, env=env)
        collected = [line for line in log.read_text().splitlines() if "Collected :" in line]
        if code not in (0, 1, 3) or not collected:
            raise RuntimeError(f"{name}: valgrind run failed (exit {code}, log: {log})")
        entries = json.loads(Path(f"{stats}.json").read_text())
        requests = sum(e["num_requests"] for e in entries if e["name"] == "/product/[id]")
        counts.append((int(collected[-1].split(":")[-1].replace(",", "")), requests))
    (short_ir, short_n), (long_ir, long_n) = counts
    if long_n <= short_n:
        raise RuntimeError(f"{name}: no more requests in the long run than in the short one")
    return (long_ir - short_ir) / (long_n - short_n), long_n - short_n


def measure_instructions(seconds: float, users: int, hash_seed: int = 0) -> str:
    """``--instructions``: bare FastHttpUser, the same checked with ``catch_response``, and ShopperUser against the
    instant server, per page (a table)."""
    import shutil

    if shutil.which("valgrind") is None:
        return "valgrind is not installed (Debian: valgrind): instruction counts skipped"
    with tempfile.TemporaryDirectory(prefix="bench-loadgen-ir-") as tmp:
        work = Path(tmp)
        started: list[Any] = []
        envoy_child = None
        try:
            _production, _frontend, page = boutique_services(work, started)
            while started:  # only the page was needed: nothing else may take the CPU
                started.pop().stop()
            envoy_child, page_url = envoy_page_server(page, work)
            shopper = shopper_args(work / "out.jsonl")
            bare, n_bare = instructions_per_request("page-bare", work, THIS, page_url, users, seconds,
                                                    ["BareProductUser"], hash_seed)
            checked, n_checked = instructions_per_request("page-checked", work, THIS, page_url, users, seconds,
                                                          ["CheckedProductUser"], hash_seed)
            shop, n_shop = instructions_per_request("page-shopper", work, BOUTIQUE, page_url, users, seconds, shopper,
                                                    hash_seed)
        finally:
            if envoy_child is not None:
                proc.stop(envoy_child)
            for spawned in reversed(started):
                spawned.stop()
    return "\n".join([
        f"| {time.strftime('%Y-%m-%d')}: instructions per product page (callgrind), instant server | bare "
        "FastHttpUser | the same, checked with catch_response | ShopperUser | ratio (bare / ShopperUser) "
        "| ratio (checked / ShopperUser) |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| {users} users, {seconds:g} s - {SHORT_RUN_S:g} s runs under valgrind, hash seed {hash_seed} "
        f"| {bare:,.0f} ({n_bare} pages) "
        f"| {checked:,.0f} ({n_checked} pages) | {shop:,.0f} ({n_shop} pages) | **{bare / shop:.3f}** "
        f"| {checked / shop:.3f} |",
    ])


def summarize(samples: dict[str, list[Sample]]) -> dict[str, dict[str, float]]:
    out = {}
    for name, runs in samples.items():
        out[name] = {"rps": statistics.median(s.rps for s in runs),
                     "cpu_us": statistics.median(s.cpu_us_per_request for s in runs),
                     "failures": sum(s.failures for s in runs)}
    return out


def round_ratios(samples: dict[str, list[Sample]], base: str, cand: str, per_cpu: bool = False) -> list[float]:
    """req/s (``per_cpu``: requests per CPU-second) of ``cand`` over ``base`` within each round: the two ran one
    after the other (or together), so a host that speeds up or slows down between rounds moves both alike."""
    def rate(sample: Sample) -> float:
        return 1.0 / sample.cpu_us_per_request if per_cpu else sample.rps

    pairs = zip(samples.get(base, ()), samples.get(cand, ()), strict=False)
    return [rate(c) / rate(b) for b, c in pairs if rate(b) > 0]


def spread(ratios: list[float]) -> str:
    return f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})" if ratios else "-"


def report(samples: dict[str, list[Sample]], seconds: float, users: int, rounds: int, paired: bool = False) -> str:
    summary = summarize(samples)

    def row(label: str, base: str, base_label: str, cand: str, cand_label: str) -> str | None:
        if base not in summary or cand not in summary:  # --only left one of them out
            return None
        b, c = summary[base], summary[cand]
        return (f"| {label} | {base_label} {b['rps']:.0f}/s, {b['cpu_us']:.0f} us CPU/req "
                f"| {cand_label} {c['rps']:.0f}/s, {c['cpu_us']:.0f} us CPU/req "
                f"| **{c['rps'] / b['rps']:.2f}** | {spread(round_ratios(samples, base, cand))} "
                f"| {b['cpu_us'] / c['cpu_us']:.2f} | {spread(round_ratios(samples, base, cand, per_cpu=True))} |")

    rows = [
        row("product page, real local frontend", "frontend-bare", "bare FastHttpUser", "frontend-shopper",
            "ShopperUser"),
        row("product page, instant server (Envoy direct_response)", "page-bare", "bare FastHttpUser",
            "page-shopper", "ShopperUser"),
        row("ListRecommendations, real local recommendationservice", "grpc-loop", "bare grpcio loop",
            "grpc-recommendation-user", "RecommendationUser"),
        row("ListRecommendations, recording overhead only", "grpc-bare-locust", "bare Locust gRPC user",
            "grpc-recommendation-user", "RecommendationUser"),
    ]
    lines = [
        f"| {time.strftime('%Y-%m-%d')}: {users} users, {seconds:g} s runs, median of {rounds}"
        f"{', each pair at the same time' if paired else ''} "
        "| baseline | splitproof | req/s ratio | per round: median (range) | req per CPU-second ratio "
        "| per round |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *(r for r in rows if r is not None),
    ]
    failed = sum(int(v["failures"]) for v in summary.values())
    lines.append("")
    lines.append(f"Failed requests across all runs: {failed}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each run (default 8)")
    parser.add_argument("--users", type=int, default=10, help="Locust users per run (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (default 2)")
    parser.add_argument("--only", metavar="NAME,...", default=None,
                        help="run only these configurations (page-bare, page-shopper, frontend-bare, frontend-shopper, "
                             "grpc-loop, grpc-bare-locust, grpc-recommendation-user)")
    parser.add_argument("--paired", action="store_true",
                        help="run each baseline and its candidate at the same time (page-bare with page-shopper, ...): "
                             "the host's drift hits both alike; read the req per CPU-second ratio")
    parser.add_argument("--instructions", action="store_true",
                        help="instead: count the instructions per product page under valgrind (repeatable to ~1-2%%; "
                             "bare FastHttpUser and ShopperUser against the instant server; ~3 minutes)")
    parser.add_argument("--hash-seed", type=int, default=0,
                        help="with --instructions: PYTHONHASHSEED of every child (default 0: repeatable counts)")
    parser.add_argument("--bare-grpc-loop", metavar="TARGET", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare_grpc_loop:
        bare_grpc_loop(args.bare_grpc_loop, args.seconds)
        return 0
    if args.instructions:
        print(measure_instructions(max(args.seconds, SHORT_RUN_S + 10.0), args.users, args.hash_seed))
        return 0
    only = {name.strip() for name in args.only.split(",")} if args.only else None
    samples = measure(args.seconds, args.users, args.rounds, only, paired=args.paired)
    print()
    print(report(samples, args.seconds, args.users, args.rounds, args.paired))
    return 0


if __name__ == "__main__":
    sys.exit(main())
