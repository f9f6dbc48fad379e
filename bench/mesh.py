"""Local mesh benchmark: what the real Envoy in front of the boutique costs and how fast it changes.

All numbers from one run, each against a baseline measured in the same run:

1. Throughput, same client, alternating rounds: unary gRPC ListRecommendations through the mesh entry vs direct
   to a production recommendation instance (one channel, sync loop; and 16 calls in flight), and product pages
   through the ingress vs direct to the frontend instance (one keep-alive connection).
2. Envoy start-to-ready (spawn -> admin /ready LIVE on the mesh's file-based xDS config) vs the whole LocalMesh
   start (Envoy + 4 Python instances ready and in the clusters).
3. Weight change: ``set_weights`` until Envoy's config_dump shows it, and switch-to-effect (100/0 -> 0/100 under a
   closed-loop client: until the first reply from the newly weighted version) vs one call's round trip.

``python -m bench.mesh [--seconds 3] [--record]`` (--record rewrites the ``## Local mesh`` section of RESULTS.md).
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import grpc

from bench.grpcload import sync_loop, window_loop
from bench.machine import describe
from splitproof.protos import demo_pb2, demo_pb2_grpc
from splitproof.setup import proc
from splitproof.setup.manifests import CanaryParams, mesh_documents
from splitproof.setup.mesh import LocalMesh
from splitproof.setup.mesh.admin import Admin
from splitproof.setup.mesh.envoy import bootstrap, envoy_argv, find_envoy
from splitproof.setup.mesh.envoy_build import ListenerPorts
from splitproof.setup.mesh.topology import services
from splitproof.setup.mesh.translate import translate
from splitproof.setup.mesh.xds import ConfigFiles
from splitproof.verifier.inputs.attribution import count_recommendations

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADING = "## Local mesh"
PRODUCT = "OLJCESPC7Z"
REQUEST = demo_pb2.ListRecommendationsRequest(user_id="bench", product_ids=[PRODUCT])


def machine() -> str:
    out = subprocess.run([find_envoy(), "--version"], capture_output=True, text=True).stdout
    match = re.search(r"version: \S+?/(\d+\.\d+\.\d+)", out)
    return f"{describe()}, Envoy {match.group(1) if match else '?'}"


def grpc_sync_rate(target: str, seconds: float) -> float:
    return sync_loop(target, seconds, product=PRODUCT).rate


def grpc_window_rate(target: str, seconds: float, window: int = 16) -> float:
    return window_loop(target, seconds, window=window, product=PRODUCT).rate


def page_rate(hostport: str, seconds: float) -> float:
    host, port = hostport.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    n = 0
    start = time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        conn.request("GET", "/product/OLJCESPC7Z")
        body = conn.getresponse().read().decode()
        if count_recommendations(body) not in (4, 2):
            raise SystemExit("bench: a product page without 4 or 2 recommendations")
        n += 1
    conn.close()
    return n / (time.perf_counter() - start)


def alternate(direct: Callable[[], float], mesh: Callable[[], float], rounds: int = 3) -> tuple[float, float]:
    """Median of alternating rounds (direct, mesh, direct, mesh...) so drift hits both alike."""
    d, m = [], []
    for _ in range(rounds):
        d.append(direct())
        m.append(mesh())
    return statistics.median(d), statistics.median(m)


def start_to_ready(argv: list[str], addr_file: Path, log: Path) -> float:
    """Seconds from spawning Envoy until its admin /ready answers LIVE (polled every millisecond)."""
    start = time.perf_counter()
    child = proc.spawn(argv, log=log, die_with_parent=True)
    found: list[Admin] = []

    def ready() -> bool:
        if not found and addr_file.exists() and addr_file.read_text().strip():
            found.append(Admin("http://" + addr_file.read_text().strip()))
        return bool(found) and found[0].ready()

    try:
        proc.wait_until(ready, 30, "Envoy /ready", 0.001, max_interval=0.001)
        return time.perf_counter() - start
    finally:
        proc.stop(child)


def envoy_start_to_ready(repeats: int) -> list[float]:
    params = CanaryParams()
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-envoy-") as tmp:
        files = ConfigFiles(Path(tmp) / "xds")
        cfg = translate(mesh_documents(params), services=services(params), endpoints=[],
                        ports=ListenerPorts({80: 0}, {}), route_path=files.route_path,
                        default_namespace=params.namespace)
        files.write_all(cfg)
        boot = Path(tmp) / "bootstrap.json"
        boot.write_text(json.dumps(bootstrap(files, 0, "bench")))
        for i in range(repeats):
            addr = Path(tmp) / f"admin{i}"
            argv = envoy_argv(find_envoy(), boot, addr, Path(tmp) / "base-id", 1)
            out.append(start_to_ready(argv, addr, Path(tmp) / "envoy.log"))
    return out


def switch_to_effect(mesh: LocalMesh, switches: int) -> tuple[list[float], list[float], float]:
    """Closed-loop client; flip 100/0 <-> 0/100; time until the first reply from the newly weighted version."""
    seen: list[tuple[float, str]] = []
    stop = threading.Event()
    rtts: list[float] = []

    def client() -> None:
        with grpc.insecure_channel(mesh.grpc_entry) as channel:
            stub = demo_pb2_grpc.RecommendationServiceStub(channel)
            while not stop.is_set():
                t = time.perf_counter()
                reply = stub.ListRecommendations(REQUEST, timeout=5)
                done = time.perf_counter()
                rtts.append(done - t)
                seen.append((done, "canary" if len(reply.product_ids) == 2 else "production"))

    mesh.set_weights(0)
    thread = threading.Thread(target=client)
    thread.start()
    applied, effect = [], []
    try:
        target = "canary"
        for _ in range(switches):
            start = time.perf_counter()
            mesh.set_weights(100 if target == "canary" else 0)
            applied.append(time.perf_counter() - start)  # the whole call: render, write, config_dump shows it
            proc.wait_until(lambda: any(t > start and v == target for t, v in seen[-50:]), 10,  # noqa: B023
                            f"the first reply from {target}", 0.0005, max_interval=0.0005)
            effect.append(next(t for t, v in seen if t > start and v == target) - start)
            target = "production" if target == "canary" else "canary"
    finally:
        stop.set()
        thread.join()
        mesh.set_weights(20)
    return applied, effect, statistics.median(rtts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.mesh")
    ap.add_argument("--seconds", type=float, default=3.0, help="per throughput round (%(default)s)")
    ap.add_argument("--record", action="store_true", help=f"rewrite the '{HEADING}' section of {RESULTS.name}")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()

    ready = envoy_start_to_ready(10)
    mesh_starts = []
    for _ in range(2):
        s = time.perf_counter()
        with LocalMesh():
            mesh_starts.append(time.perf_counter() - s)

    with LocalMesh() as mesh:
        procs = {p["name"]: p for p in mesh.status().processes}
        prod = f"127.0.0.1:{procs['recommendationservice-production-0']['port']}"
        front = f"127.0.0.1:{procs['frontend-0']['port']}"
        ingress = mesh.ingress_url.removeprefix("http://")
        secs = args.seconds
        g_direct, g_mesh = alternate(lambda: grpc_sync_rate(prod, secs), lambda: grpc_sync_rate(mesh.grpc_entry, secs))
        w_direct, w_mesh = alternate(lambda: grpc_window_rate(prod, secs),
                                     lambda: grpc_window_rate(mesh.grpc_entry, secs))
        p_direct, p_mesh = alternate(lambda: page_rate(front, secs), lambda: page_rate(ingress, secs))
        applied, effect, rtt = switch_to_effect(mesh, 20)

    rows = [
        ("gRPC ListRecommendations, 1 channel, sync loop", g_direct, g_mesh),
        ("gRPC ListRecommendations, 1 channel, 16 in flight", w_direct, w_mesh),
        ("product pages, 1 keep-alive connection", p_direct, p_mesh),
    ]
    ms = 1000.0

    def med(values: list[float]) -> float:
        return statistics.median(values) * ms

    lines = [
        HEADING + " (`bench/mesh.py`)",
        "",
        f"Run {date.today().isoformat()} on {machine()}; {time.perf_counter() - t0:.0f} s. "
        f"Throughput: median of 3 alternating {secs:g} s rounds per path, same client; 'direct' = the production "
        "recommendation instance / the frontend instance itself, 'mesh' = the mesh gRPC entry / the ingress "
        "(both add one Envoy hop; the frontend reaches recommendation and catalog through Envoy either way).",
        "",
        "| client | direct (baseline) | through Envoy | ratio |",
        "| --- | --- | --- | --- |",
        *[f"| {name} | {d:,.0f}/s | {m:,.0f}/s | x{m / d:.2f} |" for name, d, m in rows],
        "",
        "| startup and reconfiguration | median | range | vs baseline |",
        "| --- | --- | --- | --- |",
        f"| Envoy start-to-ready (spawn -> /ready LIVE, mesh xDS files; 10 starts) | {med(ready):.0f} ms | "
        f"{min(ready) * ms:.0f}-{max(ready) * ms:.0f} ms | x{med(ready) / med(mesh_starts):.2f} of a whole "
        f"`LocalMesh` start ({med(mesh_starts):.0f} ms, 2 starts) |",
        f"| `set_weights` call: render, rename into place, until config_dump serves it (20 changes) | "
        f"{med(applied):.1f} ms | "
        f"{min(applied) * ms:.1f}-{max(applied) * ms:.1f} ms | x{statistics.median(applied) / rtt:.1f} of one call "
        f"({rtt * ms:.2f} ms) |",
        f"| switch-to-effect: 100/0 <-> 0/100 until the first reply from the new version | "
        f"{statistics.median(effect) * ms:.1f} ms | {min(effect) * ms:.1f}-{max(effect) * ms:.1f} ms | "
        f"x{statistics.median(effect) / rtt:.1f} of one call |",
        "",
        "Reading: a sync client loses about 15-30% of its throughput to the extra Envoy hop; with calls in flight, "
        "or for product pages where the Python frontend dominates, 0-25%. On this shared 2-core box (client, "
        "Envoy and the Python servers compete for the same cores, other jobs too) the ratios "
        "moved by up to about 0.2 between runs of this script on the same day, so read them as that range, not "
        "to two decimals. Envoy is ready in a fraction of the mesh start (the rest is the Python instances "
        "importing grpc). A weight change is served a few milliseconds after the file is renamed into place, "
        "without restarting Envoy, and the first reply from the newly weighted version follows within a call or two.",
        "",
    ]
    section = "\n".join(lines)
    print(section)
    if args.record:
        record(section)
    return 0


def record(section: str) -> None:
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    start = text.find(HEADING + " ")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + ("\n" + text[end + 1:] if end >= 0 else "")
    RESULTS.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
