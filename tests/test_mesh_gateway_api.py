"""The local mesh in Gateway API routing (issue 17), on a real Envoy: per-version Services + an HTTPRoute bound to
recommendationservice, the split drawn per call at 80/20, then after a live weight change through the Router, read
back from Envoy as versions, and verify-split --from-httproute judging it live. Your own HTTPRoute (--manifests)
with relative weights is enforced as written. Checks use the binomial band at flakebudget.BAND_CONFIDENCE."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator

import pytest
from flakebudget import ALPHA_ARGS
from helpers import run_installed
from test_mesh import band, call_many, fetch_pages

from splitproof.setup.manifests import CanaryParams, mesh_documents, mesh_yaml
from splitproof.setup.mesh import LocalMesh
from splitproof.setup.router import HTTP_ROUTE

PARAMS = CanaryParams(routing="gateway-api", version_header="x-version")
NS = PARAMS.namespace


@pytest.fixture(scope="module")
def gw_mesh() -> Iterator[LocalMesh]:
    with LocalMesh(PARAMS, replicas={"production": 1, "canary": 1}) as running:
        yield running


def test_80_20_then_a_live_change_through_the_router(gw_mesh):
    router = gw_mesh.router
    assert router.routing.kind == HTTP_ROUTE
    assert dict(router.routing.versions) == {
        f"recommendationservice-production.{NS}.svc.cluster.local": "production",
        f"recommendationservice-canary.{NS}.svc.cluster.local": "canary"}
    served = router.served_weights()
    assert served.serving and served.weights == {"production": 80, "canary": 20}
    n = 4000
    got = call_many(gw_mesh.grpc_entry, n)
    assert set(got) == {"production", "canary"}, got   # every reply's x-version header agrees with its count
    lo, hi = band(n, 0.2)
    assert lo <= got["canary"] <= hi, got
    print(f"gateway-api 80/20: canary {got['canary']}/{n}, band [{lo}, {hi}]")

    took = gw_mesh.set_weights({"production": 50, "canary": 50})
    assert router.served_weights().weights == {"production": 50, "canary": 50} and took < 10
    n = 2000
    got = call_many(gw_mesh.grpc_entry, n)
    lo, hi = band(n, 0.5)
    assert set(got) == {"production", "canary"} and lo <= got["canary"] <= hi, got
    print(f"gateway-api 50/50 after the change: canary {got['canary']}/{n}, band [{lo}, {hi}]")
    st = gw_mesh.status()
    assert st.weights == {"production": 50, "canary": 50} and st.warnings == []
    assert st.subsets["canary"]["instances"] == ["recommendationservice-canary-0"]
    gw_mesh.set_weights({"production": 80, "canary": 20})


def test_pages_through_the_ingress(gw_mesh):
    n = 300
    got = fetch_pages(gw_mesh.ingress_url, n)
    lo, hi = band(n, 0.2)
    assert set(got) == {"production", "canary"} and lo <= got["canary"] <= hi, got


def test_verify_split_reads_the_route_and_judges_the_live_split(gw_mesh, tmp_path):
    manifest = tmp_path / "mesh.yaml"
    manifest.write_text(mesh_yaml(PARAMS))
    out = run_installed("verify-split", "--from-httproute", str(manifest), "--target", gw_mesh.grpc_entry,
                        "--max-samples", "20000", *ALPHA_ARGS, "--json", "-", timeout=180)
    verdict = json.loads(out.stdout)
    assert out.returncode == 0, out.stderr
    assert verdict["expected"] == {"production": 0.8, "canary": 0.2} and verdict["outcome"] == "PASS"
    counts = {row["version"]: row["count"] for row in verdict["rows"]}
    print(f"verify-split --from-httproute live: {counts}, n={verdict['n']}, p={verdict['gof_p_value']}")


def test_your_own_httproute_with_relative_weights(tmp_path):
    docs = copy.deepcopy(mesh_documents(CanaryParams(routing="gateway-api")))
    route = next(d for d in docs if d["kind"] == "HTTPRoute")
    for ref, weight in zip(route["spec"]["rules"][0]["backendRefs"], (3, 1), strict=True):
        ref["weight"] = weight
    with LocalMesh(documents=docs, replicas={"production": 1, "canary": 1}) as mesh:
        assert mesh.router.served_weights().weights == {"production": 3, "canary": 1}
        n = 2000
        got = call_many_plain(mesh.grpc_entry, n)
        lo, hi = band(n, 0.25)
        assert lo <= got["canary"] <= hi, got
        mesh.set_weights({"production": 90, "canary": 10})
        assert mesh.router.served_weights().weights == {"production": 90, "canary": 10}


def call_many_plain(entry: str, n: int) -> dict[str, int]:
    """call_many without the x-version header (the user's documents set none)."""
    got = call_many(entry, n)
    out: dict[str, int] = {}
    for key, count in got.items():
        version = key.split("/", 1)[0]
        out[version] = out.get(version, 0) + count
    return out


def test_cli_up_routing_gateway_api_weights_status_down(tmp_path):
    from test_mesh import cli, recorded_pids

    state_dir = tmp_path / "state"
    up = cli("up", "--detach", "--routing", "gateway-api", "--ingress-port", "0", "--grpc-port", "0",
             "--canary-weight", "20", state_dir=state_dir)
    assert "weights (from Envoy)   production=80,canary=20" in up.stdout
    try:
        out = cli("weights", "30", state_dir=state_dir).stdout   # through the LocalRouter, no restart
        assert "Envoy serves production=70,canary=30" in out
        st = json.loads(cli("status", "--json", state_dir=state_dir).stdout)
        assert st["weights"] == {"production": 70, "canary": 30}
        assert set(st["subsets"]) == {"production", "canary"} and st["warnings"] == []
        bad = cli("weights", "--weights", "production=70,shadow=30", state_dir=state_dir, check=False)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1
        (tmp_path / "x.yaml").write_text(mesh_yaml(PARAMS))
        both = cli("up", "--routing", "gateway-api", "--manifests", str(tmp_path / "x.yaml"),
                   state_dir=tmp_path / "other", check=False)
        assert both.returncode == 2 and "--routing chooses the templates" in both.stderr
        assert both.stderr.count("\n") == 1
    finally:
        pids = recorded_pids(state_dir)
        cli("down", state_dir=state_dir)
    assert not any(ref.alive() for ref in pids)


def test_telemetry_attributes_by_version_service_on_the_real_mesh(gw_mesh):
    """The mesh's own access log and Envoy's admin counters, read with the route's {version Service -> version}
    mapping, count exactly the calls made (their clusters are outbound|8080||recommendationservice-<version>...)."""
    from splitproof.setup.proc import wait_until
    from splitproof.verifier.telemetry import EnvoyAdmin, Service, count_access_log, counts_between

    docs = mesh_documents(PARAMS)
    svc = Service.from_httproute(next(d for d in docs if d["kind"] == "HTTPRoute"),
                                 [d for d in docs if d["kind"] == "Service"])
    log = gw_mesh.access_log_dir / "access-mesh.recommendationservice.log"
    admin = EnvoyAdmin.from_url(gw_mesh.admin_url)

    def logged() -> dict[str, int]:
        return dict(count_access_log(str(log), svc).counts) if log.exists() else {}

    log_before, stats_before = logged(), admin.snapshot(svc)
    got = call_many_plain(gw_mesh.grpc_entry, 1000)
    want = {v: log_before.get(v, 0) + got.get(v, 0) for v in ("production", "canary")}
    wait_until(lambda: logged() == want, 10, "every call in the access log", 0.05)
    stats = counts_between(stats_before, admin.snapshot(svc), svc)
    assert dict(stats.counts) == {v: n for v, n in got.items() if n}, (stats.counts, got)
    print(f"gateway-api telemetry: calls {got}, access log and Envoy admin agree")


def test_rollout_walks_the_httproute_through_the_router(gw_mesh, capsys):
    """canary-setup rollout on the gateway-api mesh: every step moves the HTTPRoute's backend weights through the
    LocalRouter, is proven on Envoy, and ends at canary 100."""
    from helpers import in_process

    from splitproof.setup.cli import main
    from splitproof.setup.rollout.targets import version_services

    assert version_services(gw_mesh.router.routing) == (
        (NS, "recommendationservice-canary", "canary"), (NS, "recommendationservice-production", "production"))
    try:
        code, out, err = in_process(main, capsys, "rollout", "--local", "--state-dir", str(gw_mesh.state_dir),
                                    "--steps", "50,100", *ALPHA_ARGS)
        assert code == 0, out + err
        assert gw_mesh.router.served_weights().weights == {"canary": 100}
    finally:
        gw_mesh.set_weights({"production": 80, "canary": 20})
