"""One reading of a VirtualService's split: verify-split, the local mesh and cluster status agree."""

from __future__ import annotations

from typing import Any

import pytest

from splitproof.setup.cluster import resources
from splitproof.setup.cluster.declared import virtual_service_weights
from splitproof.setup.cluster.options import Options
from splitproof.setup.envoyroutes import served_split
from splitproof.setup.manifests import CanaryParams, mesh_documents
from splitproof.setup.mesh.edit import split_of
from splitproof.verifier.errors import InputError
from splitproof.verifier.inputs.virtualservice import weights_from_virtualservice
from splitproof.verifier.istio import weighted_route

NS = "online-boutique"
FQDN = f"recommendationservice.{NS}.svc.cluster.local"


def route(*dests: tuple[str, int | None]) -> list[dict[str, Any]]:
    out = []
    for subset, weight in dests:
        entry: dict[str, Any] = {"destination": {"host": "recommendationservice", "subset": subset}}
        if weight is not None:
            entry["weight"] = weight
        out.append(entry)
    return out


def vs(*http: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "recommendationservice", "namespace": NS},
            "spec": {"hosts": ["recommendationservice"], "http": list(http)}}


def all_three(doc: dict[str, Any]) -> list[dict[str, int] | None]:
    return [weights_from_virtualservice(doc), virtual_service_weights(doc, "recommendationservice"),
            split_of([doc], FQDN, NS)[1]]


def test_testers_header_route_first_then_the_split() -> None:
    doc = vs({"match": [{"headers": {"x-tester": {"exact": "1"}}}], "route": route(("canary", None))},
             {"route": route(("production", 80), ("canary", 20))})
    assert all_three(doc) == [{"production": 80, "canary": 20}] * 3


def test_the_lab_templates_read_the_same_everywhere() -> None:
    doc = next(d for d in mesh_documents(CanaryParams(weights={"production": 70, "canary": 30}))
               if d["kind"] == "VirtualService" and d["metadata"]["name"] == "recommendationservice")
    assert all_three(doc) == [{"production": 70, "canary": 30}] * 3


def test_the_gateway_bound_grpc_route_is_read_by_its_destinations() -> None:
    opts = Options(weights={"production": 60, "canary": 40}, host="shop.example.com")
    gateway_vs = resources.grpc_virtual_service(opts)
    assert "recommendationservice" not in gateway_vs["spec"]["hosts"]  # bound to the gateway's host
    assert virtual_service_weights(gateway_vs, "recommendationservice") == {"production": 60, "canary": 40}


def test_a_missing_weight_among_several_is_an_error_not_100_each() -> None:
    doc = vs({"route": route(("production", 80), ("canary", None))})
    with pytest.raises(InputError, match="no weight"):
        weighted_route(doc)
    with pytest.raises(InputError, match="no weight"):
        weights_from_virtualservice(doc)
    assert virtual_service_weights(doc, "recommendationservice") is None
    assert split_of([doc], FQDN, NS)[1] == {}


def test_a_proxys_routes_are_read_from_the_catch_all_too() -> None:
    """istioctl proxy-config routes -o json (camelCase): a testers' header route before the weighted one."""
    def cluster(subset: str) -> str:
        return f"outbound|8080|{subset}|{FQDN}"

    routes = [{"name": "8080", "virtualHosts": [{"name": f"{FQDN}:8080", "domains": [FQDN], "routes": [
        {"match": {"prefix": "/", "headers": [{"name": "x-tester", "stringMatch": {"exact": "1"}}]},
         "route": {"cluster": cluster("canary")}},
        {"match": {"prefix": "/"}, "route": {"weightedClusters": {"clusters": [
            {"name": cluster("production"), "weight": 80}, {"name": cluster("canary"), "weight": 20}]}}},
    ]}]}]
    assert served_split(routes, [FQDN]) == {"production": 80, "canary": 20}
    only = [{"virtualHosts": [{"name": f"{FQDN}:8080", "domains": [FQDN], "routes": [
        {"match": {"prefix": "/"}, "route": {"cluster": cluster("production")}}]}]}]
    assert served_split(only, [FQDN]) == {"production": 100}
