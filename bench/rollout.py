"""Progressive rollout benchmark (``canary-setup rollout --local``, issue 15) on a real local mesh.

Per step of 5 -> 20 -> 50 -> 100: the time from the weights written to Envoy serving them (config_dump read back),
and from served to the step's verdict, with the responses it took; the whole rollout's time. Baselines from the
same run: one gRPC round trip through the mesh entry (for written -> served), and the sampler's raw rate with no
gate (same probe, same concurrency): served -> verdict against ``responses / raw rate`` says what the gates and
the driver add beyond the sampling the statistics require.

``python -m bench.rollout [--rounds 3] [--record]`` (--record rewrites the ``## Progressive rollout`` section of
RESULTS.md). The driver runs in this process over the mesh's LocalRouter and the live-sampling source, exactly as
the command builds them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import date
from pathlib import Path

from bench.machine import describe
from splitproof.setup.manifests import CanaryParams
from splitproof.setup.mesh import LocalMesh
from splitproof.setup.rollout import events as ev
from splitproof.setup.rollout.driver import Driver
from splitproof.setup.rollout.plan import RolloutPlan
from splitproof.setup.rollout.sources import SampleSource, SampleTarget
from splitproof.verifier.inputs import sampling

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADING = "## Progressive rollout"
STEPS = (5, 20, 50, 100)


def raw_rate(target: SampleTarget, n: int = 3000) -> float:
    probe = target.probe()
    try:
        probe.check(5.0)
        result = sampling.sample(probe, concurrency=target.concurrency, max_samples=n, duration=60.0,
                                 on_record=lambda rec: False)
    finally:
        probe.close()
    return result.observed / result.elapsed


def round_trip_ms(target: SampleTarget, n: int = 200) -> float:
    probe = target.probe()
    try:
        probe.check(5.0)
        times = [probe(i).latency_ms for i in range(n)]
    finally:
        probe.close()
    return statistics.median(times)


def one_rollout(mesh: LocalMesh, target: SampleTarget, health: bool) -> tuple[float, list[dict[str, object]]]:
    mesh.router.set_weights({"production": 100, "canary": 0})
    mesh.router.wait_served()
    log = ev.EventLog(None)
    plan = RolloutPlan(STEPS, step_timeout=300.0, health=health)
    start = time.monotonic()
    result = Driver(plan, mesh.router, SampleSource(target, health=health), log, say=lambda _m: None).run()
    took = time.monotonic() - start
    if result.code != 0:
        raise SystemExit(f"the rollout did not promote: {result.message}")
    return took, [e for e in log.events if e["event"] in (ev.WEIGHTS_SERVED, ev.VERDICT)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="rollouts per mode (median reported)")
    ap.add_argument("--record", action="store_true", help=f"rewrite the '{HEADING}' section of {RESULTS.name}")
    args = ap.parse_args(argv)
    load_before = os.getloadavg()[0]
    with LocalMesh(CanaryParams(version_header="x-version", weights={"production": 100, "canary": 0})) as mesh:
        target = SampleTarget(target=mesh.grpc_entry, header="x-version")
        rtt = round_trip_ms(target)
        rate = raw_rate(target)
        runs = {health: [one_rollout(mesh, target, health) for _ in range(args.rounds)] for health in (False, True)}
    lines = [f"{HEADING} (bench/rollout.py, {date.today().isoformat()})", "",
             f"{describe()}; sampler: gRPC through the mesh entry, 8 in flight; raw rate with no gate "
             f"**{rate:,.0f} responses/s**, one round trip {rtt:.2f} ms (the baselines). Median of {args.rounds} "
             "rollouts 5 -> 20 -> 50 -> 100 per mode, whole-rollout alpha 0.01 (per step 0.0025; with health "
             f"0.00125 per judge). Load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the "
             "end (other work shares the cores: compare the ratios, not the seconds).", "",
             "| mode | step | written -> served | / one round trip | served -> verdict | responses | "
             "/ (responses / raw rate) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for health, rollouts in runs.items():
        mode = "split + health" if health else "split only"
        for i, percent in enumerate(STEPS):
            served = [r[1][2 * i]["written_to_served_s"] for r in rollouts]
            verdict = [r[1][2 * i + 1]["served_to_verdict_s"] for r in rollouts]
            samples = [r[1][2 * i + 1]["samples"] for r in rollouts]
            w, v, n = statistics.median(served), statistics.median(verdict), statistics.median(samples)
            lines.append(f"| {mode} | {percent}% | {1000 * w:.0f} ms | x{1000 * w / rtt:.1f} | {v:.2f} s | "
                         f"{n:,.0f} | x{v / (n / rate):.2f} |")
        total = statistics.median(r[0] for r in rollouts)
        lines.append(f"| {mode} | **total 5 -> 100** | | | **{total:.1f} s** | | |")
    lines += ["", "Served -> verdict is the sampling the sequential tests need (the responses column) at the "
              "sampler's rate; the ratio is what the gates, the health judge and the driver add (1.0 = nothing). "
              "With health the 5% step dominates: showing the canary's error rate within +1 pp of production's "
              "takes ~900 canary responses, i.e. ~18,000 at a 5% share."]
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
