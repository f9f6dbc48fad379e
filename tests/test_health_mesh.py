"""Acceptance on the real local mesh (Envoy, the boutique services, a bad canary from ``--canary-error-rate`` /
``--canary-delay-ms``): a canary failing 5% of its calls FAILs on health with the split still PASS, a canary 40 ms
slower FAILs on latency, a healthy canary PASSes -- through live sampling with header attribution and through a
Locust results file (the Locust run's own exit code, and ``verify-split --health --results`` on its file).

The canary's failures use INTERNAL: the mesh, like Istio, retries UNAVAILABLE (twice), which would hide most of a
5% UNAVAILABLE rate from the clients -- the judge judges what clients see. To keep the runs short (the suite's
budget): a 50/50 split (the canary gets half the samples), ``--tolerance 10``; the health margins are the defaults
except the Locust healthy run (``--max-error-increase 2``). bench/RESULTS.md has the 20%-share figures.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from flakebudget import ALPHA_ARGS
from helpers import installed

from splitproof.setup import proc
from splitproof.setup.manifests import CanaryParams
from splitproof.setup.mesh import LocalMesh
from splitproof.setup.mesh.faults import parse_instance_faults

REPO = Path(__file__).resolve().parent.parent
LOCUSTFILE = str(REPO / "loadtest" / "boutique.py")
HEADER = "x-version"
SPLIT = ("--expected", "50", "--tolerance", "10", *ALPHA_ARGS)


def _mesh(**faults: str) -> Iterator[LocalMesh]:
    bad = {"canary": parse_instance_faults(**faults)} if faults else None  # type: ignore[arg-type]
    params = CanaryParams(version_header=HEADER).with_weights({"production": 50, "canary": 50})
    with LocalMesh(params, faults=bad) as mesh:
        yield mesh


@pytest.fixture(scope="module")
def failing() -> Iterator[LocalMesh]:
    yield from _mesh(error_rate="5", error_code="INTERNAL")


@pytest.fixture(scope="module")
def slow() -> Iterator[LocalMesh]:
    yield from _mesh(delay_ms="40")


@pytest.fixture(scope="module")
def healthy() -> Iterator[LocalMesh]:
    yield from _mesh()


def verify(*args: str, timeout: float = 120) -> tuple[int, dict]:
    done = subprocess.run([installed("verify-split"), *args, "--health", "--json", "-", "--no-progress"],
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode in (0, 1, 3), done.stderr
    return done.returncode, json.loads(done.stdout)


def live(mesh: LocalMesh, *more: str) -> tuple[int, dict]:
    return verify(*SPLIT, "--target", mesh.grpc_entry, "--header", HEADER, *more)


def locust(tmp_path: Path, mesh: LocalMesh, *more: str) -> tuple[int, Path, str]:
    out = tmp_path / "records.jsonl"
    log = tmp_path / "locust.log"
    with open(log, "wb") as fh:
        done = subprocess.run(proc.python_argv("-m", "locust", "-f", LOCUSTFILE, "--headless", "RecommendationUser",
                                               "-u", "4", "-r", "2", "-t", "90s", "--grpc-target", mesh.grpc_entry,
                                               "--version-header", HEADER, *SPLIT, "--health", "--stop-on-verdict",
                                               "--split-results", str(out), *more),
                              stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=150,
                              cwd=tmp_path, check=False)
    return done.returncode, out, log.read_text(errors="replace")


# --- live sampling with header attribution ---------------------------------------------------------------------


def test_live_a_canary_failing_5_percent_fails_on_health_with_the_split_pass(failing: LocalMesh) -> None:
    # Errors only: a loaded machine can make the canary look slower than production's p95 before the errors are
    # shown (seen: "canary slow (>66.2 ms) 7.7% vs 0.0%" at 820 responses), so latency counts only past 1 s here.
    code, data = live(failing, "--latency-threshold-ms", "1000")
    assert code == 1 and data["split"]["outcome"] == "PASS", data["reason"]
    assert data["health"]["outcome"] == "FAIL" and data["reason"].startswith("health FAIL: canary errors")
    errors = data["health"]["metrics"][0]["rows"][0]
    assert errors["baseline_bad"] == 0 and errors["bad"] > 0 and data["health"]["attribution"] == "header"


def test_live_a_canary_40ms_slower_fails_on_latency(slow: LocalMesh) -> None:
    code, data = live(slow)
    latency = data["health"]["metrics"][1]
    assert code == 1 and latency["outcome"] == "FAIL" and "slow (>" in data["reason"], data["reason"]
    assert latency["rows"][0]["rate"] > 0.5  # +40 ms puts most canary responses past production's p95


def test_live_a_healthy_canary_passes(healthy: LocalMesh) -> None:
    code, data = live(healthy)
    assert code == 0 and data["outcome"] == "PASS" and data["health"]["outcome"] == "PASS", data["reason"]


# --- through a Locust results file ------------------------------------------------------------------------------


def same_verdict(code: int, out: Path, output: str) -> dict:
    """verify-split --health --sequential over the Locust run's file reaches the run's own verdict."""
    vs_code, data = verify(*SPLIT, "--results", str(out), "--sequential")
    assert vs_code == code, (data["reason"], output[-2500:])
    assert f"health verdict (sequential): {data['health']['outcome']} - {data['health']['reason']}" in output
    return data


def test_locust_a_canary_failing_5_percent_fails_on_health(tmp_path: Path, failing: LocalMesh) -> None:
    code, out, output = locust(tmp_path, failing)
    assert code == 1, output[-2500:]
    data = same_verdict(code, out, output)
    assert data["health"]["outcome"] == "FAIL" and data["split"]["outcome"] != "FAIL"
    assert '"by":"header"' in out.read_text().splitlines()[0]


def test_locust_a_canary_40ms_slower_fails_on_latency(tmp_path: Path, slow: LocalMesh) -> None:
    code, out, output = locust(tmp_path, slow)
    assert code == 1, output[-2500:]
    data = same_verdict(code, out, output)
    assert data["health"]["metrics"][1]["outcome"] == "FAIL"


def test_locust_a_healthy_canary_passes(tmp_path: Path, healthy: LocalMesh) -> None:
    code, out, output = locust(tmp_path, healthy, "--max-error-increase", "2")
    assert code == 0, (output[-2500:], out.read_text()[:3000])
    vs_code, data = verify(*SPLIT, "--results", str(out), "--sequential", "--max-error-increase", "2")
    assert vs_code == 0 and data["health"]["outcome"] == "PASS", data["reason"]
