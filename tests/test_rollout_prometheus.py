"""``rollout --source prometheus`` on the real traffic as a real Prometheus counts it: the local mesh's Envoy
scraped every second at ``/stats/prometheus`` while a background client calls the mesh entry (the traffic the
rollout does not send); each step counted from Prometheus' polls only after the proxies serve it, the first poll
after the switch left out. Plus the refusals (--health on Envoy's HTTP-only counters, no --prometheus)."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import in_process
from promharness import Prometheus, missing_prometheus, wait_until

from splitproof.setup import proc
from splitproof.setup.cli import main
from splitproof.setup.manifests import CanaryParams
from splitproof.setup.mesh import LocalMesh
from splitproof.verifier.exitcodes import ExitCode
from splitproof.verifier.inputs import probes, sampling
from splitproof.verifier.inputs.attribution import Attribution

pytestmark = pytest.mark.skipif(missing_prometheus() is not None, reason=missing_prometheus() or "")
TRAFFIC_LIMIT_S = 240.0  # the background client stops by then whatever happens


@pytest.fixture(scope="module")
def mesh() -> Iterator[LocalMesh]:
    with LocalMesh(CanaryParams(weights={"production": 100, "canary": 0})) as m:
        yield m


@pytest.fixture(scope="module")
def traffic(mesh: LocalMesh) -> Iterator[None]:
    """Bounded background load on the mesh entry (2 in flight, at most TRAFFIC_LIMIT_S), stopped at teardown."""
    stop = threading.Event()
    probe = probes.GrpcProbe(mesh.grpc_entry, Attribution(), timeout=2.0)
    thread = threading.Thread(target=sampling.sample, args=(probe,), daemon=True,
                              kwargs={"concurrency": 2, "max_samples": None, "duration": TRAFFIC_LIMIT_S,
                                      "on_record": lambda _r: False, "stop": stop})
    thread.start()
    yield
    stop.set()
    thread.join(timeout=10)
    probe.close()


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory, mesh: LocalMesh, traffic: None) -> Iterator[Prometheus]:
    server = Prometheus(tmp_path_factory.mktemp("prom-rollout"), mesh.admin_url.removeprefix("http://"),
                        metrics_path="/stats/prometheus")
    try:
        wait_until(lambda: server.query("sum(envoy_cluster_upstream_rq_completed) > 0")
                   or server.query("sum({__name__=~'envoy_cluster_.*upstream_rq_completed'}) > 0"), 60,
                   "Prometheus counting the mesh's requests")
        yield server
    finally:
        server.stop()


def test_each_step_is_judged_on_prometheus_counts_after_the_switch(mesh: LocalMesh, prom: Prometheus,
                                                                   tmp_path: Path) -> None:
    log = tmp_path / "rollout.jsonl"
    done = subprocess.run(proc.python_argv(
        "-m", "splitproof.setup.cli", "rollout", "--local", "--state-dir", str(mesh.state_dir), "--source",
        "prometheus", "--prometheus", prom.url, "--interval", "1", "--steps", "20,100", "--step-timeout", "90s",
        "--json-log", str(log)), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    events = [json.loads(line) for line in log.read_text().splitlines()]
    verdicts = [e for e in events if e["event"] == "verdict"]
    assert [(v["percent"], v["outcome"]) for v in verdicts] == [(20, "PASS"), (100, "PASS")]
    assert all("not counted" in v["reason"] and v["samples"] > 0 for v in verdicts)
    assert verdicts[1]["counts"].get("production", 0) == 0  # at 100 every counted request is the canary's
    assert events[-1]["event"] == "promoted"


def test_health_on_envoy_counters_and_a_missing_url_are_refused(mesh: LocalMesh, capsys) -> None:
    base = ["rollout", "--local", "--state-dir", str(mesh.state_dir), "--source", "prometheus"]
    code, _, err = in_process(main, capsys, *base, "--prometheus", "http://127.0.0.1:9", "--health")
    assert code == ExitCode.USAGE and "Envoy's cluster counters carry HTTP status codes only" in err
    code, _, err = in_process(main, capsys, *base)
    assert code == ExitCode.USAGE and "--source prometheus needs --prometheus URL" in err
