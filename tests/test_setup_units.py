"""Pure units of setup's shared layers: the poll loop and restart backoff (setup.proc), the Router's typed results
(setup.router), the one reading of Envoy routes (setup.envoyroutes), the typed mesh state and its file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from splitproof.setup.envoyroutes import matches_everything, served_split, subset_weights
from splitproof.setup.errors import BusyError, NotRunningError, SetupError, WaitTimeoutError
from splitproof.setup.manifests import CanaryParams
from splitproof.setup.mesh.state import FORMAT, InstanceRecord, Listeners, MeshState, Ports
from splitproof.setup.mesh.statedir import (
    ROLLOUT_LOCK_FILE,
    STATE_FILE,
    read_state,
    refuse_during_rollout,
    rollout_lock,
    write_state,
)
from splitproof.setup.proc import Backoff, ProcRef, ReadyLine, parse_ready, wait_until
from splitproof.setup.router import ProxyWeights, Routing, ServedWeights, describe, normalize, wait_served

FQDN = "recommendationservice.online-boutique.svc.cluster.local"


def cluster(subset: str) -> str:
    return f"outbound|8080|{subset}|{FQDN}"


# ------------------------------------------------------------------------------------------------ setup.proc


def test_wait_until_returns_the_first_true_value_and_names_what_timed_out() -> None:
    values = iter([None, 0, "", {"port": 8080}])
    assert wait_until(lambda: next(values), 5, "the port", 0.001) == {"port": 8080}
    calls = []
    with pytest.raises(WaitTimeoutError, match=r"^timed out after 0.05s waiting for the port$"):
        wait_until(lambda: calls.append(1), 0.05, "the port", 0.01)
    assert len(calls) >= 2  # looked again at the deadline


def test_backoff_doubles_up_to_its_limit_and_starts_over_after_a_good_run() -> None:
    backoff = Backoff(start=0.2, limit=1.0, reset_after=10.0)
    assert [backoff.next_delay() for _ in range(5)] == [0.2, 0.4, 0.8, 1.0, 1.0]
    backoff.ran_for(5.0)
    assert backoff.next_delay() == 1.0  # not long enough
    backoff.ran_for(11.0)
    assert backoff.next_delay() == 0.2


def test_ready_line_ignores_what_the_log_held_before_the_child_started(tmp_path: Path) -> None:
    log = tmp_path / "svc.log"
    log.write_text("READY catalog 127.0.0.1:1111\n")  # a crashed predecessor's line
    ready = ReadyLine(log, "catalog")
    assert ready.poll() is None
    with open(log, "a") as fh:
        fh.write("starting\nREADY frontend 127.0.0.1:2222\nREADY catalog 127.0.0.1:3333\n")
    assert ready.poll() == ("127.0.0.1", 3333)
    assert parse_ready("READY catalog 127.0.0.1:1111\n", "frontend") is None
    assert ReadyLine(tmp_path / "missing.log", "catalog").poll() is None


def test_a_proc_ref_is_not_fooled_by_a_recycled_pid() -> None:
    import os

    me = ProcRef.of(os.getpid())
    assert me.alive() and ProcRef.from_json(me.to_json()) == me
    assert not ProcRef(os.getpid(), (me.ticks or 0) + 1).alive()  # same PID, another start time
    assert ProcRef.from_json({"pid": None, "ticks": None}) is None
    assert ProcRef(os.getpid(), (me.ticks or 0) + 1).terminate() is True  # gone (for that ref): never signalled


# ------------------------------------------------------------------------------------------------ setup.router


def test_served_weights_compare_as_istio_holds_them() -> None:
    assert normalize({"production": 100, "canary": 0}) == {"production": 100}
    assert normalize({"production": 80, "canary": 20}) == {"production": 80, "canary": 20}
    served = ServedWeights({"production": 100, "canary": 0},
                           (ProxyWeights("frontend sidecar f-1", {"production": 100}),))
    assert served.serving and served.weights == {"production": 100}
    stale = ServedWeights({"production": 50, "canary": 50},
                          (ProxyWeights("envoy", {"production": 50, "canary": 50}, synced=False),))
    assert not stale.serving
    assert not ServedWeights({"production": 50, "canary": 50}).serving  # no proxy read: nothing is served
    assert describe(None) == "(no route)" and describe({}) == "(none)"


def test_wait_served_names_what_each_proxy_holds() -> None:
    held = ServedWeights({}, (ProxyWeights("frontend sidecar f-1", {"production": 80, "canary": 20}),
                              ProxyWeights("ingress gateway g-1", None, error="x" * 300 + "connection refused")))
    with pytest.raises(WaitTimeoutError) as err:
        wait_served(lambda: held, {"production": 50, "canary": 50}, 0.05, interval=0.01, max_interval=0.01,
                    hint=" (check `istioctl proxy-status`)")
    message = str(err.value)
    assert message.startswith("the proxies did not serve production=50,canary=50 within 0.05s: frontend sidecar "
                              "f-1 holds production=80,canary=20; ingress gateway g-1 holds error: ")
    assert message.endswith("connection refused (check `istioctl proxy-status`)") and len(message) < 400


def test_a_routing_names_its_api() -> None:
    assert Routing("recommendationservice", "online-boutique").fqdn == FQDN
    with pytest.raises(ValueError, match="unknown routing kind 'Ingress'"):
        Routing("recommendationservice", "online-boutique", kind="Ingress")


# ------------------------------------------------------------------------------------------- setup.envoyroutes


def test_both_json_spellings_read_the_same_split() -> None:
    snake = {"name": "8080", "virtual_hosts": [{"name": f"{FQDN}:8080", "domains": ["*"], "routes": [
        {"match": {"prefix": "/", "headers": [{"name": "x-tester"}]}, "route": {"cluster": cluster("canary")}},
        {"match": {"prefix": "/"}, "route": {"weighted_clusters": {"clusters": [
            {"name": cluster("production"), "weight": 80}, {"name": cluster("canary"), "weight": 20}]}}}]}]}
    camel = json.loads(json.dumps(snake).replace("virtual_hosts", "virtualHosts")
                       .replace("weighted_clusters", "weightedClusters"))
    for config in (snake, camel):
        assert served_split(config) == {"production": 80, "canary": 20}
        assert served_split([config], [FQDN]) == {"production": 80, "canary": 20}
        assert served_split(json.dumps([config]), ["elsewhere"]) is None
    assert [r["catch_all"] for r in subset_weights(snake)] == [False, True]
    assert not matches_everything({"match": {"prefix": "/", "queryParameters": [{"name": "q"}]}})
    redirect = {"virtual_hosts": [{"routes": [{"match": {"prefix": "/"}, "redirect": {"path_redirect": "/x"}}]}]}
    assert served_split(redirect) is None
    with pytest.raises(ValueError):
        served_split("not json")


# -------------------------------------------------------------------------------------- the typed mesh state


def state() -> MeshState:
    params = CanaryParams(weights={"production": 70, "canary": 30})
    return MeshState(params=params, ports=Ports({"ingress": 0, "grpc": 8081, "admin": 0},
                                                Listeners({80: 0}, {"recommendationservice": 8081})),
                     supervisor=ProcRef(4242, 17), replicas={"production": 1, "canary": 1},
                     instances=[InstanceRecord("frontend-0", "frontend", "frontend", {"app": "frontend"}, "f.log")])


def test_state_json_keeps_format_1_key_for_key(tmp_path: Path) -> None:
    data = state().to_json()
    assert data["format"] == FORMAT == 1
    assert set(data) == {"format", "status", "started_at", "supervisor", "params", "documents", "replicas", "ports",
                         "envoy", "instances", "pids", "warnings"}
    assert data["ports"] == {"requested": {"ingress": 0, "grpc": 8081, "admin": 0},
                             "lds": {"gateway": {"80": 0}, "services": {"recommendationservice": 8081}}, "bound": {}}
    assert data["supervisor"] == {"pid": 4242, "ticks": 17}
    assert set(data["instances"][0]) == {"name", "service", "kind", "labels", "pid", "ticks", "port", "state",
                                         "restarts", "last_exit", "log"}
    write_state(tmp_path, state())
    again = read_state(tmp_path)
    assert again is not None and again.to_json() == data
    assert again.params.weights == {"production": 70, "canary": 30} and again.ports.listen.gateway == {80: 0}


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "is corrupt (not JSON)"),
    (json.dumps({"format": 1, "params": {}}), "is corrupt (not a local mesh state)"),
    (json.dumps({"format": 0, "supervisor": {"pid": 999999999, "ticks": 1}}),
     "was written by another version of splitproof (state format 0, this one reads 1); no supervisor of it is "
     "running: remove"),
])
def test_an_unreadable_state_says_what_to_do_in_one_line(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / STATE_FILE).write_text(content)
    with pytest.raises(SetupError) as err:
        read_state(tmp_path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_old_state_whose_supervisor_still_runs_is_not_removed_blindly(tmp_path: Path) -> None:
    import os

    (tmp_path / STATE_FILE).write_text(json.dumps({"format": 99, "supervisor": ProcRef.of(os.getpid()).to_json()}))
    with pytest.raises(SetupError, match=f"its supervisor \\(pid {os.getpid()}\\) still runs: stop it with the "
                                         "version that started it"):
        read_state(tmp_path)


# --- the rollout lock ------------------------------------------------------------------------------------------


def test_a_rollout_lock_refuses_a_second_rollout_and_weights_and_names_its_holder(tmp_path: Path) -> None:
    refuse_during_rollout(tmp_path)  # never locked: nothing to refuse, nothing created
    assert not (tmp_path / ROLLOUT_LOCK_FILE).exists()
    with rollout_lock(tmp_path, "pid 4242, steps 5,20,50,100, since 2026-12-07T23:00:00+0000"):
        for attempt in (lambda: refuse_during_rollout(tmp_path),
                        lambda: rollout_lock(tmp_path, "pid 1").__enter__()):  # a second open: flock conflicts
            with pytest.raises(BusyError) as busy:
                attempt()
            assert busy.value.exit_code == 9
            assert str(busy.value) == (f"a rollout is driving the local mesh in {tmp_path} (pid 4242, steps "
                                       "5,20,50,100, since 2026-12-07T23:00:00+0000): wait for it to end, or stop "
                                       "it (Ctrl-C) first")
    refuse_during_rollout(tmp_path)  # released: weights and the next rollout may go
    assert (tmp_path / ROLLOUT_LOCK_FILE).read_text() == ""  # no stale holder
    with rollout_lock(tmp_path, "pid 7"):
        pass


def test_a_rollout_lock_on_a_removed_state_dir_says_no_mesh_is_running(tmp_path: Path) -> None:
    with pytest.raises(NotRunningError, match="no local mesh is running in"):
        rollout_lock(tmp_path / "gone", "pid 1").__enter__()
