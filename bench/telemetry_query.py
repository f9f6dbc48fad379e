"""Telemetry: what an exact count over 1 h of Prometheus data costs, against the one-line ``increase()`` query.

    python -m bench.telemetry_query [--repeat 7] [--pods 4] [--other-services 5] [--update]

One real Prometheus (Debian's, on 127.0.0.1, temp data dir) holds two backfilled datasets (``promtool tsdb
create-blocks-from openmetrics``) of ``istio_requests_total``: 1 h + 10 min at 15 s resolution (the scrape interval
of Istio's Prometheus addon) and at 1 s (the local mesh's). Per dataset: 2 reporters x 2 versions x 2 response
codes x ``--pods`` pods for recommendationservice, the canary's series created 20 min into the hour, one
production pod restarted at 40 min, plus ``--other-services`` services' series that the selector must skip.

Measured in the same run, interleaved, median of ``--repeat``:
* baseline: ``sum by (destination_version) (increase(SELECTOR[1h]))`` (what peer tools run) and
  ``sum by (destination_version) (count_over_time(SELECTOR[1h]))`` (touches every raw sample server-side, returns
  two numbers);
* measured: ``promsource.count_window`` -- raw samples of the hour plus its 5 min lookback, parsed and counted.
Also: the answer's JSON size, and each method's counts against the known truth.

``--update`` rewrites its section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from bench.machine import describe
from bench.results import replace_section
from splitproof.verifier.telemetry.clusters import Service
from splitproof.verifier.telemetry.httpget import request
from splitproof.verifier.telemetry.prometheus import PrometheusClient
from splitproof.verifier.telemetry.promql import istio_requests
from splitproof.verifier.telemetry.promsource import count_window
from splitproof.verifier.telemetry.window import Window

HOUR = 3600
LEAD = 600  # data before the window: the lookback finds the baselines there
OFFSET = 7.3  # the window starts off the scrape grid, as a wall-clock window does
SVC = Service()
_PDEATHSIG_EXEC = ("import ctypes,os,signal,sys\nctypes.CDLL(None).prctl(1, signal.SIGTERM)\n"
                   "os.getppid() == int(sys.argv[1]) or sys.exit(1)\nos.execv(sys.argv[2], sys.argv[2:])\n")


def dataset(path: Path, t0: int, step: int, pods: int, others: int, seed: int) -> tuple[Counter[str], int]:
    """Write one dataset; return the true source-reporter requests per version in the window and
    the number of series."""
    rng = random.Random(seed)
    since, until = t0 + LEAD + OFFSET % step, t0 + LEAD + OFFSET % step + HOUR
    truth: Counter[str] = Counter()
    n_series = 0
    with open(path, "a", encoding="utf-8") as out:
        for service in ["recommendationservice", *(f"service{i}" for i in range(others))]:
            for reporter in ("source", "destination"):
                for version in ("production", "canary"):
                    for code in ("200", "503"):
                        for pod in range(pods):
                            n_series += 1
                            born = t0 + LEAD + 1200 if version == "canary" else t0
                            reset = t0 + LEAD + 2400 if (version, pod) == ("production", 0) else None
                            rate = (6 if version == "production" else 2) * (20 if code == "200" else 1) * step
                            labels = (f'destination_service="{service}.online-boutique.svc.cluster.local",'
                                      f'destination_service_name="{service}",'
                                      f'destination_service_namespace="online-boutique",'
                                      f'destination_version="{version}",pod="frontend-{pod}",reporter="{reporter}",'
                                      f'response_code="{code}",response_flags="-"')
                            value, lines = 0, []
                            for t in range(born, t0 + LEAD + HOUR + step + 1, step):
                                inc = rng.randint(0, rate // 10 + 1)
                                value = inc if t == reset else value + inc
                                lines.append(f"istio_requests_total{{{labels}}} {value} {t}")
                                if (service, reporter) == (SVC.name, "source") and since < t <= until:
                                    truth[version] += inc
                            out.write("\n".join(lines) + "\n")
    return truth, n_series


def start_prometheus(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    (root / "prometheus.yml").write_text("global:\n  scrape_interval: 15s\nscrape_configs: []\n")
    port = free_port()
    log = open(root / "prometheus.log", "ab")  # noqa: SIM115 -- the child keeps it
    proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _PDEATHSIG_EXEC, str(os.getpid()), binary,
                             f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
                             "--storage.tsdb.retention.time=30d", "--query.timeout=2m"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"prometheus exited: {(root / 'prometheus.log').read_text()[-1000:]}")
        try:
            with urllib.request.urlopen(url + "/-/ready", timeout=1) as resp:
                if resp.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.1)
    raise SystemExit("prometheus did not become ready")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def by_version(client: PrometheusClient, promql: str, at: float) -> tuple[float, dict[str, float]]:
    start = time.perf_counter()
    answer = client.query(promql, round(at * 1000))
    elapsed = time.perf_counter() - start
    return elapsed, {r["metric"].get("destination_version", "?"): float(r["value"][1]) for r in answer.data["result"]}


def window_of(t0: int, step: int) -> Window:
    since = t0 + LEAD + OFFSET % step
    return Window(since, since + HOUR)


def measure(client: PrometheusClient, t0: int, step: int, repeat: int) -> dict[str, Any]:
    window = window_of(t0, step)
    sel = istio_requests(SVC).selector
    increase_q = f"sum by (destination_version) (increase({sel}[1h]))"
    count_q = f"sum by (destination_version) (count_over_time({sel}[1h]))"
    times: dict[str, list[float]] = {"increase": [], "count_over_time": [], "exact": [], "exact_15m": []}
    results: dict[str, Any] = {}
    for _ in range(repeat):
        t, results["increase"] = by_version(client, increase_q, window.until)
        times["increase"].append(t)
        t, results["count_over_time"] = by_version(client, count_q, window.until)
        times["count_over_time"].append(t)
        start = time.perf_counter()
        results["exact"] = count_window(client, istio_requests(SVC), window)
        times["exact"].append(time.perf_counter() - start)
        start = time.perf_counter()
        count_window(client, istio_requests(SVC), window, chunk=900)
        times["exact_15m"].append(time.perf_counter() - start)
    raw = request(client.endpoint, "/api/v1/query", post=True,
                  params={"query": f"{sel}[{(HOUR + 300) * 1000}ms]", "time": f"{window.until:.3f}"})
    results["json_bytes"] = len(raw.body)
    results["samples"] = sum(len(s["values"]) for s in json.loads(raw.body)["data"]["result"])
    results["times"] = {k: statistics.median(v) for k, v in times.items()}
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--pods", type=int, default=4)
    p.add_argument("--other-services", type=int, default=5)
    p.add_argument("--update", action="store_true", help="rewrite its section of bench/RESULTS.md")
    args = p.parse_args(argv)
    if not (shutil.which("prometheus") or Path("/usr/bin/prometheus").exists()) or not shutil.which("promtool"):
        print("prometheus/promtool not installed (Debian package prometheus; `make prometheus` as root)",
              file=sys.stderr)
        return 2
    base = (int(time.time()) // 7200) * 7200 - 3 * 86400
    sets = {15: base, 1: base + 86400}
    rows = []
    with tempfile.TemporaryDirectory(prefix="splitproof-bench-") as tmp:
        root = Path(tmp)
        om = root / "data.om"
        truths, series = {}, {}
        gen_start = time.perf_counter()
        for step, t0 in sets.items():
            truths[step], series[step] = dataset(om, t0, step, args.pods, args.other_services, seed=step)
        with open(om, "a", encoding="utf-8") as out:
            out.write("# EOF\n")
        size_mb = om.stat().st_size / 1e6
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(om),
                        str(root / "data")], check=True)
        om.unlink()
        print(f"backfilled {size_mb:.0f} MB of OpenMetrics in {time.perf_counter() - gen_start:.0f}s", flush=True)
        proc, url = start_prometheus(root)
        try:
            client = PrometheusClient.from_url(url, timeout=120)
            for step, t0 in sets.items():
                m = measure(client, t0, step, args.repeat)
                exact = m["exact"]
                if dict(exact.counts) != dict(truths[step]):
                    raise SystemExit(f"exact counts {dict(exact.counts)} != truth {dict(truths[step])}")
                rows.append((step, series[step], m, truths[step]))
                tm = m["times"]
                print(f"{step:>2} s: increase {tm['increase'] * 1000:.1f} ms, count_over_time "
                      f"{tm['count_over_time'] * 1000:.1f} ms, exact {tm['exact'] * 1000:.1f} ms "
                      f"(x{tm['exact'] / tm['increase']:.1f} increase), {m['samples']:,} samples, "
                      f"{m['json_bytes'] / 1e6:.1f} MB JSON", flush=True)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    text = render(rows, args)
    if args.update:
        replace_section(text)
    print(text)
    return 0


def render(rows: list[tuple[int, int, dict[str, Any], Counter[str]]], args: argparse.Namespace) -> str:
    out = [
        "## Telemetry: query cost over 1 h of data (`bench/telemetry_query.py`)",
        "",
        f"Run {dt.date.today().isoformat()} on {describe()}; Prometheus "
        f"{_prom_version()} on 127.0.0.1, data backfilled with promtool; median of {args.repeat} interleaved runs. "
        f"Selector `{istio_requests(SVC).selector}` over a 1 h window; per dataset "
        f"{rows[0][1]:,} `istio_requests_total` series (2 reporters x 2 versions x 2 codes x {args.pods} pods for "
        f"the service, the rest {args.other_services} other services), canary series created 20 min in, one "
        "production pod restarted at 40 min. Baselines: `sum by (destination_version) (increase(...[1h]))` and "
        "`count_over_time(...[1h])` in the same run.",
        "",
        "| resolution | raw samples read | JSON answer | `increase()` | `count_over_time()` | exact (1 query) | "
        "exact (15 min chunks) | per raw sample | exact / `increase()` | exact / `count_over_time()` |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for step, _series, m, _truth in rows:
        t = m["times"]
        out.append(f"| {step} s | {m['samples']:,} | {m['json_bytes'] / 1e6:.2f} MB | {t['increase'] * 1000:.1f} ms "
                   f"| {t['count_over_time'] * 1000:.1f} ms | {t['exact'] * 1000:.1f} ms | "
                   f"{t['exact_15m'] * 1000:.1f} ms | {1e6 * t['exact'] / m['samples']:.1f} us | "
                   f"x{t['exact'] / t['increase']:.1f} | "
                   f"x{t['exact'] / t['count_over_time']:.1f} |")
    out += ["", "**Accuracy** (reporter=\"source\" requests in the hour; the truth is what the generator counted):",
            "", "| resolution | version | truth | exact | `increase()` | `increase()` error |",
            "| --- | --- | --- | --- | --- | --- |"]
    for step, _series, m, truth in rows:
        for version in ("production", "canary"):
            inc = m["increase"].get(version, 0.0)
            out.append(f"| {step} s | {version} | {truth[version]:,} | {m['exact'].counts.get(version, 0):,} | "
                       f"{inc:,.1f} | {100 * (inc - truth[version]) / truth[version]:+.2f}% |")
    out += ["", "The exact count reads every raw sample and counts on the client, so it costs more than the "
            "server-side `increase()`; the table says how much at a realistic series count. `increase()` "
            "extrapolates to the window edges and has no baseline for a series created inside the window (the "
            "canary pods here), so it is neither an integer nor the number of requests.", ""]
    return "\n".join(out)


def _prom_version() -> str:
    try:
        out = subprocess.run([shutil.which("prometheus") or "/usr/bin/prometheus", "--version"], capture_output=True,
                             text=True, timeout=10).stdout
        return out.split()[2] if out else "?"
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


if __name__ == "__main__":
    sys.exit(main())
