"""canary-setup in a cluster with ``--routing gateway-api`` (issue 17), against the recorded fakes: the Gateway API
CRDs of the pinned release (standard channel, ``kubectl apply -f`` of the release manifest URL, idempotent), the
per-version Services + HTTPRoute instead of DestinationRule + VirtualService, every change in order, the proxy
wait reading ``outbound|8080||recommendationservice-<version>...`` clusters as versions, weights / status / down
through the same Router, and the dry run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakes.harness import FakeCluster
from helpers import in_process

from splitproof.setup.cli import main
from splitproof.setup.cluster.options import OB_MANIFESTS_URL, Options
from splitproof.setup.manifests import mesh_documents
from splitproof.verifier.exitcodes import ExitCode
from splitproof.verifier.gatewayapi import CRDS_URL

GW = ["--provider", "kind", "--host", "shop.example.com", "--routing", "gateway-api"]
NS = "online-boutique"
CANARY_CLUSTER = f"outbound|8080||recommendationservice-canary.{NS}.svc.cluster.local"


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    monkeypatch.setattr("splitproof.setup.cluster.router.PROXY_POLL_S", 0.01)
    return FakeCluster(tmp_path, monkeypatch)


def applied(fake: FakeCluster) -> list[dict[str, Any]]:
    return [d for c in fake.calls("kubectl") if "apply" in c["argv"] and c["stdin"]
            for d in yaml.safe_load_all(c["stdin"]) if d]


def backend_weights(doc: dict[str, Any]) -> list[tuple[str, int]]:
    return [(b["name"], b["weight"]) for b in doc["spec"]["rules"][0]["backendRefs"]]


def test_up_installs_the_crds_and_routes_with_an_httproute_then_changes_nothing(fake, capsys):
    code, out, err = in_process(main, capsys, "up", *GW, "--canary-image", "registry.example/reco:canary")
    assert (code, err) == (0, ""), out
    assert fake.mutations() == [
        ["kind", "create", "cluster", "--name", "istio-traffic-lab", "--wait", "300s"],
        ["istioctl", "install", "--set", "profile=demo", "-y"],
        ["kubectl", "apply", "-f", CRDS_URL],   # the pinned release manifest, standard channel
        ["kubectl", "create", "namespace", NS],
        ["kubectl", "label", "namespace", NS, "istio-injection=enabled", "--overwrite"],
        ["kubectl", "apply", "-f", OB_MANIFESTS_URL, "-n", NS],
        ["kubectl", "apply", "-f", "-"],  # Gateway
        ["kubectl", "apply", "-f", "-"],  # frontend VirtualService (--host)
        ["kubectl", "apply", "-f", "-"],  # internal frontend VirtualService
        ["kubectl", "apply", "-f", "-"],  # ServiceEntry googleapis
        ["kubectl", "apply", "-f", "-"],  # ServiceEntry metadata
        ["kubectl", "patch", "deployment", "recommendationservice", "-n", NS, "--type=json", "-p",
         '[{"op": "add", "path": "/spec/template/metadata/labels/version", "value": "production"}]'],
        ["kubectl", "apply", "-f", "-"],  # Service recommendationservice-production
        ["kubectl", "apply", "-f", "-"],  # Service recommendationservice-canary
        ["kubectl", "apply", "-f", "-"],  # canary Deployment
        ["kubectl", "apply", "-f", "-"],  # HTTPRoute
    ]
    docs = applied(fake)
    assert [(d["kind"], d["metadata"]["name"]) for d in docs][5:] == [
        ("Service", "recommendationservice-production"), ("Service", "recommendationservice-canary"),
        ("Deployment", "recommendationservice-canary"), ("HTTPRoute", "recommendationservice")]
    assert not [d for d in docs if d["kind"] == "DestinationRule"]
    # byte for byte the local mesh's documents (same templates, same parameters)
    mesh = mesh_documents(Options(host="shop.example.com", routing="gateway-api").params())
    assert [d for d in docs if d["kind"] in ("Gateway", "VirtualService", "HTTPRoute")
            or d["metadata"]["name"].startswith("recommendationservice-") and d["kind"] == "Service"] == mesh
    assert backend_weights(docs[-1]) == [("recommendationservice-production", 80), ("recommendationservice-canary",
                                                                                      20)]
    crd = fake.obj("customresourcedefinitions", None, "httproutes.gateway.networking.k8s.io")
    assert crd["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"] == "v1.4.0"
    assert "Gateway API CRDs v1.4.0 (standard channel)" in out
    assert "serving   production=80,canary=20 on frontend sidecar" in out
    # what the sidecar was read as: clusters of the per-version Services
    polls = [c for c in fake.commands() if c[1:3] == ["proxy-config", "routes"]]
    assert polls and polls[-1][4:] == ["-n", NS, "-o", "json"]

    fake.clear_log()
    code, out, err = in_process(main, capsys, "up", *GW, "--canary-image", "registry.example/reco:canary")
    assert (code, err) == (0, "") and fake.mutations() == [], out
    assert "Gateway API CRDs v1.4.0 (standard channel; pinned v1.4.0)" in out and "up: nothing changed" in out


@pytest.fixture
def gw_cluster(fake, capsys) -> FakeCluster:
    assert in_process(main, capsys, "up", *GW, "--canary-image", "registry.example/reco:canary")[0] == 0
    fake.clear_log()
    return fake


def test_weights_status_and_the_proxy_wait_through_the_router(gw_cluster, capsys):
    fake = gw_cluster
    fake.update(lambda w: w.update(proxy_lag=2))   # the sidecar takes the change on the 3rd poll
    code, out, err = in_process(main, capsys, "weights", "30", *GW)
    assert (code, err) == (0, ""), out
    assert fake.mutations() == [["kubectl", "apply", "-f", "-"]]
    (doc,) = applied(fake)
    assert doc["kind"] == "HTTPRoute" and backend_weights(doc) == [
        ("recommendationservice-production", 70), ("recommendationservice-canary", 30)]
    polls = [c for c in fake.commands() if c[1:3] == ["proxy-config", "routes"]]
    assert len(polls) == 3 and "serving   production=70,canary=30 on frontend sidecar" in out
    routes = json.loads(_proxy_config(fake, polls[-1]))
    vhost = next(v for v in routes[0]["virtualHosts"] if v["name"].startswith("recommendationservice."))
    assert vhost["routes"][0]["name"] == f"{NS}.recommendationservice.0"
    assert {c["name"]: c["weight"] for c in vhost["routes"][0]["route"]["weightedClusters"]["clusters"]}[
        CANARY_CLUSTER] == 30

    fake.clear_log()
    code, out, _ = in_process(main, capsys, "status", *GW)
    assert code == 0, out
    for row in ("Service/recommendationservice-canary", "app=recommendationservice,version=canary",
                "HTTPRoute/recommendationservice", "production=70,canary=30"):
        assert row in out, out
    assert "healthy" in out and "NOT healthy" not in out

    # a sidecar still holding the old split: status says so, the wait times out naming it
    fake.update(lambda w: w.update(proxy_lag=10**9))
    code, _, err = in_process(main, capsys, "weights", "50", *GW, "--proxy-timeout", "1")
    assert code == ExitCode.TIMEOUT
    assert "the proxies did not serve production=50,canary=50 within 1s" in err
    assert "holds production=70,canary=30" in err
    code, out, _ = in_process(main, capsys, "status", *GW)
    assert code == 1 and "(declared production=50,canary=50)" in out


def _proxy_config(fake: FakeCluster, argv: list[str]) -> str:
    import subprocess

    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def test_weights_refuses_before_the_version_services_exist_and_grpc_gateway_needs_istio(gw_cluster, capsys):
    fake = gw_cluster
    fake.update(lambda w: w["objects"].pop(f"services|{NS}|recommendationservice-canary"))
    code, _, err = in_process(main, capsys, "weights", "50", *GW)
    assert code == ExitCode.FAIL and "Service recommendationservice-canary not found in online-boutique" in err
    assert fake.mutations() == []
    code, _, err = in_process(main, capsys, "weights", "50", *GW, "--grpc-gateway")
    assert code == ExitCode.USAGE and err.count("\n") == 1 and "use it with --routing istio" in err


def test_down_removes_the_httproute_and_the_version_services_but_keeps_the_crds(gw_cluster, capsys):
    fake = gw_cluster
    code, out, _ = in_process(main, capsys, "down", *GW)
    assert code == 0, out
    deleted = [c[2:4] for c in fake.mutations() if c[1] == "delete"]
    assert deleted[1:5] == [["httproutes.gateway.networking.k8s.io", "recommendationservice"],
                            ["deployments.apps", "recommendationservice-canary"],
                            ["services", "recommendationservice-production"],
                            ["services", "recommendationservice-canary"]]
    assert fake.obj("httproutes", NS, "recommendationservice") is None
    assert fake.obj("customresourcedefinitions", None, "httproutes.gateway.networking.k8s.io") is not None


def test_dry_run_prints_the_crd_install_and_touches_nothing(fake, capsys):
    code, out, _ = in_process(main, capsys, "up", *GW, "--dry-run", "--canary-image", "registry.example/reco:canary")
    assert code == 0, out
    assert f"kubectl --context kind-istio-traffic-lab apply -f {CRDS_URL}" in out
    assert "kind: HTTPRoute" in out and "kind: DestinationRule" not in out
    assert fake.mutations() == []


def test_an_older_release_is_upgraded(fake, capsys):
    assert in_process(main, capsys, "up", *GW, "--canary-image", "registry.example/reco:canary")[0] == 0

    def older(world: dict[str, Any]) -> None:
        crd = world["objects"]["customresourcedefinitions||httproutes.gateway.networking.k8s.io"]
        crd["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"] = "v1.2.1"

    fake.update(older)
    fake.clear_log()
    code, out, _ = in_process(main, capsys, "istio", *GW)
    assert code == 0 and fake.mutations() == [["kubectl", "apply", "-f", CRDS_URL]]
    assert "Gateway API CRDs v1.4.0 (standard channel, was v1.2.1)" in out
