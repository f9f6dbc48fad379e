"""``rollout --source prometheus`` on the real traffic as a real Prometheus counts it: the local mesh's own
Prometheus (``local up --prometheus``: Istio's istio_requests_total from the mesh's exporter and Envoy's own stats,
scraped every second) while a background client calls the mesh entry (traffic the rollout does not send). The
mesh's canary fails 5% of its calls (INTERNAL): with --health the istio metric's grpc_response_status shows it and
the rollout rolls back at its first step; on Envoy's HTTP-only counters only the split can be judged (and --health
is refused). Each step counted from Prometheus' polls after the proxies serve it, the first poll left out."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flakebudget import ALPHA_ARGS
from helpers import in_process
from promharness import missing_prometheus

from splitproof.setup import proc
from splitproof.setup.cli import main
from splitproof.setup.manifests import CanaryParams
from splitproof.setup.mesh import LocalMesh
from splitproof.setup.mesh.faults import InstanceFaults
from splitproof.verifier.exitcodes import ExitCode
from splitproof.verifier.inputs import probes, sampling
from splitproof.verifier.inputs.attribution import Attribution

pytestmark = pytest.mark.skipif(missing_prometheus() is not None, reason=missing_prometheus() or "")
TRAFFIC_LIMIT_S = 300.0  # the background client stops by then whatever happens


@pytest.fixture(scope="module")
def mesh() -> Iterator[LocalMesh]:
    with LocalMesh(CanaryParams(weights={"production": 100, "canary": 0}), prometheus=True,
                   faults={"canary": InstanceFaults(error_rate=5, error_code="INTERNAL", seed=15)}) as m:
        yield m


@pytest.fixture(scope="module", autouse=True)
def traffic(mesh: LocalMesh) -> Iterator[None]:
    """Bounded background load on the mesh entry (4 in flight, at most TRAFFIC_LIMIT_S), stopped at teardown."""
    stop = threading.Event()
    probe = probes.GrpcProbe(mesh.grpc_entry, Attribution(), timeout=2.0)
    thread = threading.Thread(target=sampling.sample, args=(probe,), daemon=True,
                              kwargs={"concurrency": 4, "max_samples": None, "duration": TRAFFIC_LIMIT_S,
                                      "on_record": lambda _r: False, "stop": stop})
    thread.start()
    yield
    stop.set()
    thread.join(timeout=10)
    probe.close()


def rollout(mesh: LocalMesh, log: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    mesh.router.set_weights({"production": 100, "canary": 0})
    mesh.router.wait_served()
    done = subprocess.run(proc.python_argv(
        "-m", "splitproof.setup.cli", "rollout", "--local", "--state-dir", str(mesh.state_dir), "--source",
        "prometheus", "--steps", "20,100", "--step-timeout", "90s", "--json-log", str(log), *ALPHA_ARGS, *args),
        capture_output=True, text=True, timeout=300, check=False)
    return done, [json.loads(line) for line in log.read_text().splitlines()]


def test_health_through_prometheus_rolls_the_failing_canary_back(mesh: LocalMesh, tmp_path: Path) -> None:
    done, events = rollout(mesh, tmp_path / "rollout.jsonl", "--health")
    assert done.returncode == ExitCode.FAIL, done.stdout + done.stderr
    verdict = next(e for e in events if e["event"] == "verdict")
    assert (verdict["percent"], verdict["outcome"], verdict["health"]) == (20, "FAIL", "FAIL")
    assert "not counted" in verdict["reason"] and verdict["samples"] > 0
    assert events[-1]["event"] == "rolled_back" and events[-1]["verified"] is True
    assert events[-1]["check_samples"] > 0 and events[-1]["check_canary"] == 0
    assert "rolled back at step 1/2 (canary 20%): health FAIL" in done.stderr


def test_envoy_counters_judge_the_split_alone(mesh: LocalMesh, tmp_path: Path) -> None:
    done, events = rollout(mesh, tmp_path / "rollout.jsonl", "--metric", "envoy", "--interval", "1")
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    verdicts = [e for e in events if e["event"] == "verdict"]
    assert [(v["percent"], v["outcome"], v["health"]) for v in verdicts] == [(20, "PASS", None), (100, "PASS", None)]
    assert all("not counted" in v["reason"] and v["samples"] > 0 for v in verdicts)
    assert verdicts[1]["counts"].get("production", 0) == 0  # at 100 every counted request is the canary's


def test_health_on_envoy_counters_and_no_prometheus_are_refused(mesh: LocalMesh, tmp_path: Path, capsys) -> None:
    base = ["rollout", "--local", "--state-dir", str(mesh.state_dir), "--source", "prometheus"]
    code, _, err = in_process(main, capsys, *base, "--metric", "envoy", "--health")
    assert code == ExitCode.USAGE and "Envoy's cluster counters carry HTTP status codes only" in err
    code, _, err = in_process(main, capsys, "rollout", "--local", "--state-dir", str(tmp_path), "--source",
                              "prometheus")
    assert code == ExitCode.NOT_RUNNING, err
