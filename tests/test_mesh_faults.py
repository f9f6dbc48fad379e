"""A bad canary on the local mesh: ``local up --canary-error-rate/--canary-error-code/--canary-delay-ms/
--canary-fault-seed`` reach the canary instances only, are kept in the state (status, restarts)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from helpers import run_installed

from splitproof.protos import demo_pb2, demo_pb2_grpc
from splitproof.setup.manifests import CanaryParams
from splitproof.setup.mesh.faults import InstanceFaults, faults_from_json, faults_to_json, parse_instance_faults
from splitproof.setup.mesh.state import Listeners, MeshState, Ports
from splitproof.setup.mesh.statedir import read_state
from splitproof.setup.mesh.topology import plan_instances
from splitproof.setup.proc import wait_until
from splitproof.verifier.errors import InputError
from splitproof.verifier.exitcodes import ExitCode

HEADER = "x-version"
REQUEST = demo_pb2.ListRecommendationsRequest(user_id="test", product_ids=["OLJCESPC7Z"])


# --- units -----------------------------------------------------------------------------------------------------


def test_faults_become_serve_options_of_the_canary_instances_only() -> None:
    faults = {"canary": parse_instance_faults("5", "internal", "40", "7")}
    assert faults["canary"] == InstanceFaults(5.0, "INTERNAL", 40.0, 7)
    specs = {s.name: s for s in plan_instances(CanaryParams(), {"canary": 2}, faults)}
    argv = specs["recommendationservice-canary-1"].argv(0, catalog_addr="c:1", recommendation_addr="r:1")
    assert argv[-8:] == ["--error-rate", "5", "--error-code", "INTERNAL", "--extra-latency-ms", "40",
                         "--fault-seed", "7"]
    prod = specs["recommendationservice-production-0"].argv(0, catalog_addr="c:1", recommendation_addr="r:1")
    assert not any(a.startswith("--error") or a.startswith("--extra") for a in prod)
    assert parse_instance_faults(delay_ms="40").serve_args() == ["--extra-latency-ms", "40"]
    assert parse_instance_faults("5").describe() == "5% of calls fail with UNAVAILABLE"


def test_faults_survive_the_state_file() -> None:
    faults = {"canary": InstanceFaults(50.0, "INTERNAL", 30.0, 3)}
    state = MeshState(CanaryParams(), Ports({}, Listeners()), None, faults=faults)
    again = MeshState.from_json(json.loads(json.dumps(state.to_json())))
    assert again.faults == faults
    assert "faults" not in MeshState(CanaryParams(), Ports({}, Listeners()), None).to_json()  # format unchanged
    assert faults_from_json(faults_to_json({"canary": InstanceFaults()})) == {}  # nothing injected: not kept


@pytest.mark.parametrize(("args", "message"), [
    (("150", None, None, None), "--canary-error-rate must be from 0 to 100, got 150"),
    (("five", None, None, None), "--canary-error-rate must be a number"),
    (("5", "OK", None, None), "the injected error code cannot be OK"),
    (("5", "NOPE", None, None), "unknown gRPC status 'NOPE'"),
    ((None, None, "-1", None), "--canary-delay-ms must be from 0"),
    (("5", None, None, "x"), "--canary-fault-seed must be an integer"),
    ((None, "INTERNAL", None, None), "--canary-error-code needs --canary-error-rate"),
    ((None, None, "10", "3"), "--canary-fault-seed needs --canary-error-rate"),
])
def test_bad_fault_values_are_input_errors(args: tuple[str | None, ...], message: str) -> None:
    with pytest.raises(InputError, match="^" + message.replace("(", r"\(")):
        parse_instance_faults(*args)


def test_bad_fault_option_exits_2_in_one_line_before_anything_starts(tmp_path: Path) -> None:
    proc = run_installed("canary-setup", "local", "up", "--canary-error-rate", "101", "--ingress-port", "0",
                         "--grpc-port", "0", "--state-dir", str(tmp_path), check=False)
    assert proc.returncode == ExitCode.USAGE and proc.stderr.count("\n") == 1, proc.stderr
    assert "--canary-error-rate must be from 0 to 100" in proc.stderr and "Traceback" not in proc.stderr
    assert read_state(tmp_path) is None


# --- a real mesh -----------------------------------------------------------------------------------------------


def cli(*args: str, state_dir: Path, check: bool = True):  # noqa: ANN201 -- CompletedProcess
    return run_installed("canary-setup", "local", *args, "--state-dir", str(state_dir), check=check)


@pytest.fixture(scope="module")
def bad_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state_dir = tmp_path_factory.mktemp("bad-canary")
    cli("up", "--detach", "--ingress-port", "0", "--grpc-port", "0", "--canary-weight", "50",
        "--version-header", HEADER, "--canary-error-rate", "50", "--canary-error-code", "INTERNAL",
        "--canary-fault-seed", "7", "--canary-delay-ms", "30", state_dir=state_dir)
    try:
        yield state_dir
    finally:
        cli("down", state_dir=state_dir, check=False)


def calls(entry: str, n: int) -> list[tuple[str | None, str, float]]:
    """(version header, status, seconds) of n sequential calls; the header is read from a failed call too."""
    out = []
    with grpc.insecure_channel(entry) as channel:
        stub = demo_pb2_grpc.RecommendationServiceStub(channel)
        for _ in range(n):
            start = time.monotonic()
            try:
                _, call = stub.ListRecommendations.with_call(REQUEST, timeout=5)
                status, metadata = "OK", [*call.initial_metadata(), *call.trailing_metadata()]
            except grpc.RpcError as exc:
                status = exc.code().name
                metadata = [*(exc.initial_metadata() or ()), *(exc.trailing_metadata() or ())]  # type: ignore[attr-defined]
            out.append((dict(metadata).get(HEADER), status, time.monotonic() - start))
    return out


def test_canary_fails_with_the_chosen_code_production_never(bad_mesh: Path) -> None:
    st = json.loads(cli("status", "--json", state_dir=bad_mesh).stdout)
    assert st["faults"]["canary"]["description"] == "50% of calls fail with INTERNAL, +30 ms per call (seed 7)"
    assert "injected faults        canary: 50% of calls fail with INTERNAL" in cli("status", state_dir=bad_mesh).stdout
    results = calls(st["grpc_entry"], 200)
    outcomes = Counter((version, status) for version, status, _ in results)
    assert set(outcomes) <= {("production", "OK"), ("canary", "OK"), ("canary", "INTERNAL")}, outcomes
    canary = outcomes["canary", "OK"] + outcomes["canary", "INTERNAL"]
    assert 60 <= canary <= 140 and 0.3 * canary <= outcomes["canary", "INTERNAL"] <= 0.7 * canary, outcomes
    production = sorted(s for v, _, s in results if v == "production")
    assert min(s for v, _, s in results if v == "canary") >= 0.030  # +30 ms on every canary call, failed or not
    assert production[len(production) // 2] < 0.030, production
    # a restarted canary instance is started with the same faults
    victim = next(p for p in st["processes"] if p["name"] == "recommendationservice-canary-0")
    os.kill(victim["pid"], signal.SIGKILL)

    def restarted() -> bool:
        procs = json.loads(cli("status", "--json", state_dir=bad_mesh).stdout)["processes"]
        p = next(p for p in procs if p["name"] == victim["name"])
        return p["restarts"] == 1 and p["state"] == "ready"

    wait_until(restarted, 30, "the canary to be restarted")
    state = read_state(bad_mesh)
    assert state is not None
    log = Path(next(i.log for i in state.instances if i.name == victim["name"])).read_text()
    assert log.count("injected faults: 50% of calls fail with INTERNAL, +30 ms per call (seed 7)") == 2
    after = Counter((v, s) for v, s, _ in calls(st["grpc_entry"], 60))
    assert after["canary", "INTERNAL"] > 0 and after["production", "OK"] > 0 and ("production", "INTERNAL") not in after
