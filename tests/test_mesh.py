"""The local mesh on a real Envoy with the real boutique services (127.0.0.1, ephemeral ports, always stopped).

Statistical checks use the binomial 99.9% band: a correct mesh fails one of them about once in a thousand runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from flakebudget import BAND_CONFIDENCE
from helpers import decoys_hit, run_installed
from scipy.stats import binom

from splitproof.protos import demo_pb2, demo_pb2_grpc
from splitproof.setup.manifests import CanaryParams
from splitproof.setup.mesh import LocalMesh
from splitproof.setup.mesh.statedir import read_state
from splitproof.setup.net import port_open
from splitproof.setup.proc import ProcRef, wait_until
from splitproof.verifier.exitcodes import ExitCode
from splitproof.verifier.inputs.attribution import count_recommendations

HEADER = "x-version"
PRODUCT = "OLJCESPC7Z"
REQUEST = demo_pb2.ListRecommendationsRequest(user_id="test", product_ids=[PRODUCT])
GRPC_CLASS = {5: "production", 2: "canary"}
PAGE_CLASS = {4: "production", 2: "canary"}


def band(n: int, p: float) -> tuple[int, int]:
    lo, hi = binom.interval(BAND_CONFIDENCE, n, p)
    return int(lo), int(hi)


def call_many(entry: str, n: int, window: int = 32) -> Counter[str]:
    """n unary calls over ONE channel (several in flight): outcome per call = version by count, or the error code.
    Also checks every reply's x-version header (headers.response.set per destination) agrees with its count."""
    out: Counter[str] = Counter()
    with grpc.insecure_channel(entry) as channel:
        stub = demo_pb2_grpc.RecommendationServiceStub(channel)
        pending = []

        def settle(fut) -> None:  # noqa: ANN001 -- grpc future
            try:
                reply = fut.result()
            except grpc.RpcError as exc:
                out[f"error:{exc.code().name}"] += 1
                return
            version = GRPC_CLASS.get(len(reply.product_ids), f"count:{len(reply.product_ids)}")
            header = dict(fut.initial_metadata()).get(HEADER)
            out[version if header == version else f"{version}/header:{header}"] += 1

        for _ in range(n):
            pending.append(stub.ListRecommendations.future(REQUEST, timeout=10))
            if len(pending) >= window:
                settle(pending.pop(0))
        for fut in pending:
            settle(fut)
    return out


def fetch_pages(url: str, n: int) -> Counter[str]:
    out: Counter[str] = Counter()
    for _ in range(n):
        with urllib.request.urlopen(f"{url}/product/{PRODUCT}", timeout=10) as resp:  # noqa: S310 -- loopback
            count = count_recommendations(resp.read().decode("utf-8"))
        out[PAGE_CLASS.get(count, f"count:{count}") if count is not None else "no-section"] += 1
    return out


@pytest.fixture(scope="module")
def mesh() -> Iterator[LocalMesh]:
    """This module's own mesh (not the session's, tests/conftest.py): with a version header, and its tests crash
    instances and Envoy, count the restarts and change more than the weights."""
    with LocalMesh(CanaryParams(version_header=HEADER)) as m:
        yield m


def test_grpc_split_80_20_per_call(mesh: LocalMesh) -> None:
    counts = call_many(mesh.grpc_entry, 4000)
    assert set(counts) <= {"production", "canary"}, counts  # no error, no unattributed count, header agrees
    lo, hi = band(4000, 0.2)
    assert lo <= counts["canary"] <= hi, counts
    st = mesh.status()
    assert st.weights == {"production": 80, "canary": 20}  # read back from Envoy's config_dump
    assert st.warnings == []


def test_product_pages_through_ingress_show_4_or_2(mesh: LocalMesh) -> None:
    n = 300
    counts = fetch_pages(mesh.ingress_url, n)
    assert set(counts) <= {"production", "canary"}, counts
    lo, hi = band(n, 0.2)
    assert lo <= counts["canary"] <= hi, counts


def test_weights_change_under_load_fails_no_call(mesh: LocalMesh) -> None:
    stop = threading.Event()
    lock = threading.Lock()
    during: Counter[str] = Counter()

    def load() -> None:  # closed-loop clients on their own channels, calling across the switch
        with grpc.insecure_channel(mesh.grpc_entry) as channel:
            stub = demo_pb2_grpc.RecommendationServiceStub(channel)
            while not stop.is_set():
                try:
                    outcome = GRPC_CLASS.get(len(stub.ListRecommendations(REQUEST, timeout=10).product_ids), "?")
                except grpc.RpcError as exc:
                    outcome = f"error:{exc.code().name}"
                with lock:
                    during[outcome] += 1

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: sum(during.values()) >= 100, 20, "load to begin")
        took = mesh.set_weights(50)
        at_switch = sum(during.values())
        after = call_many(mesh.grpc_entry, 2000)
        wait_until(lambda: sum(during.values()) >= at_switch + 100, 20, "load to continue after the switch")
    finally:
        stop.set()
        for t in threads:
            t.join()
        mesh.set_weights(20)
    assert set(during) <= {"production", "canary"}, during  # zero failed calls across the switch
    assert set(after) <= {"production", "canary"}, after
    lo, hi = band(2000, 0.5)
    assert lo <= after["canary"] <= hi, after
    assert took < 10
    assert mesh.status().weights == {"production": 80, "canary": 20}


def test_empty_subset_gives_unavailable_share_and_status_warns(mesh: LocalMesh) -> None:
    original = mesh.params
    mesh.apply(CanaryParams(version_header=HEADER,
                            subsets={"production": {"version": "production"}, "canary": {"version": "v3"}}))
    try:
        st = mesh.status()
        assert st.subsets["canary"]["instances"] == []
        assert any("selects no ready instance (labels version=v3)" in w and "20%" in w for w in st.warnings), \
            st.warnings
        counts = call_many(mesh.grpc_entry, 1000)
        assert set(counts) <= {"production", "error:UNAVAILABLE"}, counts
        lo, hi = band(1000, 0.2)
        assert lo <= counts["error:UNAVAILABLE"] <= hi, counts
        pages = fetch_pages(mesh.ingress_url, 60)  # the page silently loses its recommendations
        assert set(pages) <= {"production", "no-section"} and pages["no-section"] > 0, pages
    finally:
        mesh.apply(original)
    assert mesh.status().warnings == []


def test_crashed_instance_is_restarted_and_status_shows_it(mesh: LocalMesh) -> None:
    before = {p["name"]: p for p in mesh.status().processes}
    victim = before["recommendationservice-canary-0"]
    os.kill(victim["pid"], signal.SIGKILL)
    wait_until(lambda: next(p for p in mesh.status().processes if p["name"] == victim["name"])["restarts"] == 1,
               10, "the crash to be noticed")
    mesh.wait_ready(30)
    after = {p["name"]: p for p in mesh.status().processes}[victim["name"]]
    assert after["pid"] != victim["pid"] and after["alive"] and after["state"] == "ready"
    st = mesh.status()
    assert any("recommendationservice-canary-0 crashed and was restarted 1 time(s) (last: killed by signal 9)" in w
               for w in st.warnings), st.warnings
    assert st.subsets["canary"]["instances"] == ["recommendationservice-canary-0"]
    counts = call_many(mesh.grpc_entry, 200)
    assert set(counts) <= {"production", "canary"} and counts["canary"] > 0, counts


def test_crashed_envoy_is_restarted_on_the_same_ports(mesh: LocalMesh) -> None:
    entry, ingress = mesh.grpc_entry, mesh.ingress_url
    envoy = next(p for p in mesh.status().processes if p["name"] == "envoy")
    os.kill(envoy["pid"], signal.SIGKILL)

    def back() -> bool:
        now = next(p for p in mesh.status().processes if p["name"] == "envoy")
        return bool(now["restarts"] == 1 and now["alive"])

    wait_until(back, 15, "Envoy to be restarted")
    st = mesh.status()
    assert (st.grpc_entry, st.ingress_url) == (entry, ingress)  # clients keep their addresses
    assert st.weights == {"production": 80, "canary": 20} and "Envoy restarted 1 time(s)" in st.warnings
    assert not any("503" in w or "not ready" in w for w in st.warnings), st.warnings
    counts = call_many(entry, 400)
    assert set(counts) <= {"production", "canary"} and counts["canary"] > 0, counts
    assert set(fetch_pages(ingress, 20)) <= {"production", "canary"}


def test_ctrl_c_while_starting_leaves_nothing(tmp_path: Path) -> None:
    seen: list[ProcRef] = []

    def interrupt_once_envoy_runs() -> None:  # a real SIGINT while start() waits for the instances
        def envoy_up() -> bool:
            state = read_state(tmp_path)
            return bool(state and state.envoy.ref)

        wait_until(envoy_up, 20, "Envoy to start")
        seen.extend(read_state(tmp_path).pids)
        os.kill(os.getpid(), signal.SIGINT)

    watcher = threading.Thread(target=interrupt_once_envoy_runs)
    watcher.start()
    with pytest.raises(KeyboardInterrupt):
        with LocalMesh(state_dir=tmp_path):
            pytest.fail("the mesh finished starting before the interrupt")
    watcher.join()
    assert seen and not any(ref.alive() for ref in seen)
    assert read_state(tmp_path) is None


def test_a_failing_supervision_tick_does_not_end_the_mesh(monkeypatch: pytest.MonkeyPatch) -> None:
    from splitproof.setup.errors import WaitTimeoutError

    ticks = Counter()
    with LocalMesh(CanaryParams(weights={"production": 100, "canary": 0}), replicas={"canary": 0}) as m:
        supervisor = m._supervisor
        real_tick = supervisor.tick

        def flaky_tick() -> None:
            ticks["n"] += 1
            if ticks["n"] == 1:
                raise WaitTimeoutError("simulated: Envoy slow to confirm")
            real_tick()

        monkeypatch.setattr(supervisor, "tick", flaky_tick)  # this mesh only, not the module's
        wait_until(lambda: ticks["n"] >= 3, 10, "supervision to go on after the failure")
        st = m.status()
        assert st.status == "ready"
        assert any("last supervisor error" in w and "simulated" in w for w in st.warnings), st.warnings
        assert set(call_many(m.grpc_entry, 20)) == {"production/header:None"}


# --- the command line ------------------------------------------------------------------------------------------


def cli(*args: str, state_dir: Path, check: bool = True, cwd: Path | None = None,
        umask: int = -1) -> subprocess.CompletedProcess[str]:
    """``canary-setup local ARGS --state-dir DIR``, the installed console script, as a user runs it."""
    return run_installed("canary-setup", "local", *args, "--state-dir", str(state_dir), check=check, cwd=cwd,
                         umask=umask)


def recorded_pids(state_dir: Path) -> list[ProcRef]:
    state = read_state(state_dir)
    assert state is not None and state.supervisor is not None
    return [state.supervisor, *state.pids]


def listening_ports(state_dir: Path) -> list[int]:
    state = read_state(state_dir)
    assert state is not None and state.ports.bound is not None and state.ports.admin_url
    bound = state.ports.bound
    admin = int(state.ports.admin_url.rpartition(":")[2])
    return [*bound.gateway.values(), *bound.services.values(), admin]


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    if read_state(tmp_path) is not None:  # a failed test must not leave a mesh behind
        cli("down", state_dir=tmp_path, check=False)


def test_cli_detach_weights_crash_down_leaves_nothing(state_dir: Path) -> None:
    # umask 000: the state dir (state.json decides which PIDs `down` kills) is owner-only all the same
    up = cli("up", "--detach", "--ingress-port", "0", "--grpc-port", "0", "--canary-weight", "20",
             state_dir=state_dir, umask=0)
    assert "weights (from Envoy)   production=80,canary=20" in up.stdout
    modes = {str(p.relative_to(state_dir)): p.stat().st_mode & 0o777 for p in [state_dir, *state_dir.rglob("*")]}
    assert {"state.json", "lock", "launch.json", "supervisor.log", "xds/cds.json", "logs/envoy.log",
            "envoy-admin-address"} <= set(modes)
    assert {m for name, m in modes.items() if (state_dir / name).is_dir()} == {0o700}, modes
    assert {m for name, m in modes.items() if not (state_dir / name).is_dir()} == {0o600}, modes
    st = json.loads(cli("status", "--json", state_dir=state_dir).stdout)
    assert st["status"] == "ready" and st["weights"] == {"production": 80, "canary": 20}
    out = cli("weights", "50", state_dir=state_dir).stdout
    assert "Envoy serves production=50,canary=50" in out
    assert json.loads(cli("status", "--json", state_dir=state_dir).stdout)["weights"] == \
        {"production": 50, "canary": 50}
    counts = call_many(st["grpc_entry"], 300)
    assert set(counts) <= {"production/header:None", "canary/header:None"}, counts  # no header by default
    # crash an instance: the supervisor restarts it, status shows it
    victim = next(p for p in st["processes"] if p["name"] == "productcatalogservice-0")
    os.kill(victim["pid"], signal.SIGKILL)

    def restarted() -> bool:
        procs = json.loads(cli("status", "--json", state_dir=state_dir).stdout)["processes"]
        p = next(p for p in procs if p["name"] == victim["name"])
        return p["restarts"] == 1 and p["state"] == "ready"

    wait_until(restarted, 30, "the catalog to be restarted")
    pids = recorded_pids(state_dir)
    ports = listening_ports(state_dir)
    procs = json.loads(cli("status", "--json", state_dir=state_dir).stdout)["processes"]
    assert {p["pid"] for p in procs} <= {ref.pid for ref in pids}  # incl. the restarted catalog and Envoy
    assert len(pids) == 6 and victim["pid"] not in {ref.pid for ref in pids}
    down = cli("down", state_dir=state_dir)
    assert "local mesh stopped" in down.stdout
    assert not any(ref.alive() for ref in pids)
    assert not any(port_open("127.0.0.1", p) for p in ports)
    assert read_state(state_dir) is None
    again = cli("down", state_dir=state_dir, check=False)
    assert again.returncode == 6 and again.stderr.count("\n") == 1


def test_children_die_with_a_killed_supervisor_and_down_cleans_up(state_dir: Path, decoy_dir: Path) -> None:
    # Started from a folder of decoys (setup.py, splitproof/, protos/, grpc.py...): neither the detached
    # supervisor nor any instance imports or executes one of them (every child runs with python -P).
    cli("up", "--detach", "--ingress-port", "0", "--grpc-port", "0", state_dir=state_dir, cwd=decoy_dir)
    assert decoys_hit(decoy_dir) == []
    pids = recorded_pids(state_dir)
    os.kill(pids[0].pid, signal.SIGKILL)
    wait_until(lambda: not any(ref.alive() for ref in pids), 10, "Envoy and the instances to exit")
    status = cli("status", state_dir=state_dir, check=False)
    assert status.returncode == 6 and "supervisor" in status.stdout
    # the dead instances are not listed as ready (their recorded state was), in the table nor in JSON
    st = json.loads(cli("status", "--json", state_dir=state_dir, check=False).stdout)
    assert st["status"] == "dead" and {p["state"] for p in st["processes"] if "state" in p} == {"dead"}
    assert not any(p["alive"] for p in st["processes"])
    table = status.stdout[status.stdout.index("PROCESS"):]  # supervisor, Envoy, 4 instances: all dead
    assert " ready " not in table and table.count(" dead ") == len(st["processes"]) == 6, status.stdout
    cli("down", state_dir=state_dir)
    assert read_state(state_dir) is None


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--envoy", "/nonexistent/envoy"], ExitCode.MISSING_BINARY, "envoy binary not found"),
    (["--manifests", "BAD"], ExitCode.USAGE, "not valid YAML"),
    (["--manifests", "UNSUPPORTED"], ExitCode.USAGE, "spec.http[0].mirror is not supported by the local mesh"),
    (["--replicas", "canary=99"], ExitCode.USAGE, "replicas for 'canary'"),
    (["--weights", "production=70,canary=20"], ExitCode.USAGE, "weights must sum to 100"),
    (["--ingress-port", "BUSY"], ExitCode.PORT_IN_USE, "is already in use"),
])
def test_up_errors_are_one_line_with_distinct_exit_codes(state_dir: Path, args: list[str], code: int,
                                                         message: str) -> None:
    bad = state_dir / "bad.yaml"
    bad.write_text("kind: [unclosed\n")
    unsupported = state_dir / "unsupported.yaml"
    unsupported.write_text(
        "apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\nmetadata: {name: r}\n"
        "spec:\n  hosts: [recommendationservice]\n  http:\n  - mirror: {host: recommendationservice}\n"
        "    route:\n    - destination: {host: recommendationservice}\n")
    with __import__("socket").socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        subst = {"BAD": str(bad), "UNSUPPORTED": str(unsupported), "BUSY": str(busy.getsockname()[1])}
        argv = [subst.get(a, a) for a in args]
        if "--ingress-port" not in argv:
            argv += ["--ingress-port", "0"]
        proc = cli("up", *argv, "--grpc-port", "0", state_dir=state_dir, check=False)
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.count("\n") == 1 and message in proc.stderr and "Traceback" not in proc.stderr
    assert read_state(state_dir) is None  # nothing was started


def test_status_and_weights_with_nothing_running(state_dir: Path) -> None:
    for args in (["status"], ["weights", "50"]):
        proc = cli(*args, state_dir=state_dir, check=False)
        assert proc.returncode == 6 and "no local mesh is running" in proc.stderr
