"""The local mesh's Gateway API translation (issue 17), pure: HTTPRoute + per-version Services -> Envoy clusters and
routes as istiod builds them (weighted_clusters over ``outbound|8080||<service>-<version>...`` clusters), relative
weights, default 1, weight 0, precedence, and every unsupported field refused with its path."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from splitproof.setup.envoyroutes import served_split, subset_weights
from splitproof.setup.manifests import CanaryParams, mesh_documents
from splitproof.setup.mesh.edit import reweight, split_of, versions_of
from splitproof.setup.mesh.envoy_build import ListenerPorts
from splitproof.setup.mesh.topology import Endpoint, services
from splitproof.setup.mesh.translate import translate
from splitproof.setup.router import ProxyWeights, proportions
from splitproof.verifier.errors import InputError

PARAMS = CanaryParams(routing="gateway-api")
NS = PARAMS.namespace
FQDN = f"recommendationservice.{NS}.svc.cluster.local"
ROUTE = f"{FQDN}:8080"
PROD = f"outbound|8080||recommendationservice-production.{NS}.svc.cluster.local"
CANARY = f"outbound|8080||recommendationservice-canary.{NS}.svc.cluster.local"
ENDPOINTS = [
    Endpoint("recommendationservice", "127.0.0.1", 9001, {"app": "recommendationservice", "version": "production"},
             "recommendationservice-production-0"),
    Endpoint("recommendationservice", "127.0.0.1", 9002, {"app": "recommendationservice", "version": "canary"},
             "recommendationservice-canary-0"),
    Endpoint("productcatalogservice", "127.0.0.1", 9003, {"app": "productcatalogservice"}, "catalog-0"),
]


def run(docs: list[dict[str, Any]]):  # noqa: ANN201
    return translate(docs, services=services(PARAMS), endpoints=ENDPOINTS, ports=ListenerPorts({80: 0}, {}),
                     route_path=lambda name: f"/xds/{name}.json", default_namespace=NS)


def routes_of(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return run(docs).routes[ROUTE]["virtual_hosts"][0]["routes"]


def docs_with(weights: dict[str, int | None] | None = None, **rule: Any) -> list[dict[str, Any]]:
    docs = copy.deepcopy(mesh_documents(PARAMS))
    route = next(d for d in docs if d["kind"] == "HTTPRoute")
    if weights is not None:
        refs = []
        for version, w in weights.items():
            ref: dict[str, Any] = {"name": f"recommendationservice-{version}", "port": 8080}
            if w is not None:
                ref["weight"] = w
            refs.append(ref)
        route["spec"]["rules"][0]["backendRefs"] = refs
    route["spec"]["rules"][0].update(rule)
    return docs


def test_the_templates_become_weighted_clusters_of_the_version_services():
    cfg = run(mesh_documents(PARAMS))
    clusters = {c["name"]: c for c in cfg.clusters}
    assert PROD in clusters and CANARY in clusters and cfg.warnings == []
    held = [lb["metadata"]["filter_metadata"]["splitproof"]["instance"]
            for lb in clusters[CANARY]["load_assignment"]["endpoints"][0]["lb_endpoints"]]
    assert held == ["recommendationservice-canary-0"]   # the selector app+version picks the canary pod only
    assert clusters[CANARY]["typed_extension_protocol_options"]  # grpc port name: HTTP/2 upstream
    (route,) = routes_of(mesh_documents(PARAMS))
    assert route["name"] == f"{NS}.recommendationservice.0"   # istiod's <ns>.<name>.<index>
    assert route["match"] == {"prefix": "/"}
    assert [(c["name"], c["weight"]) for c in route["route"]["weighted_clusters"]["clusters"]] == [
        (PROD, 80), (CANARY, 20)]
    versions = versions_of(mesh_documents(PARAMS), NS)
    assert served_split(run(mesh_documents(PARAMS)).routes[ROUTE], versions=versions) == {"production": 80,
                                                                                          "canary": 20}
    assert subset_weights(cfg.routes[ROUTE], versions)[0]["weights"] == {"production": 80, "canary": 20}


def test_relative_weights_default_one_and_zero():
    (route,) = routes_of(docs_with({"production": 4, "canary": 1}))
    assert [c["weight"] for c in route["route"]["weighted_clusters"]["clusters"]] == [4, 1]
    (route,) = routes_of(docs_with({"production": None, "canary": None}))
    assert [c["weight"] for c in route["route"]["weighted_clusters"]["clusters"]] == [1, 1]
    (route,) = routes_of(docs_with({"production": 5, "canary": 0}))
    assert route["route"]["cluster"] == PROD and "weighted_clusters" not in route["route"]
    with pytest.raises(InputError, match=r"spec.rules\[0\].backendRefs\[\*\].weight are all 0"):
        run(docs_with({"production": 0, "canary": 0}))
    assert proportions({"production": 4, "canary": 1}) == proportions({"production": 80, "canary": 20})
    assert ProxyWeights("p", {"production": 4, "canary": 1}).serves({"production": 80, "canary": 20})


def test_matches_filters_and_precedence():
    docs = docs_with()
    route = next(d for d in docs if d["kind"] == "HTTPRoute")
    tester = {"matches": [{"headers": [{"name": "X-Canary", "value": "1"}],
                           "path": {"type": "PathPrefix", "value": "/hipstershop/"}}],
              "backendRefs": [{"name": "recommendationservice-canary", "port": 8080}],
              "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
                  "set": [{"name": "x-tester", "value": "yes"}], "remove": ["x-debug"]}}],
              "timeouts": {"request": "2s"}}
    route["spec"]["rules"].append(tester)   # after the catch-all in the YAML; precedence puts it first
    first, last = routes_of(docs)
    assert first["match"] == {"prefix": "/hipstershop", "headers": [{"name": "x-canary",
                                                                      "string_match": {"exact": "1"}}]}
    assert first["route"]["cluster"] == CANARY and first["route"]["timeout"] == "2s"
    assert first["request_headers_to_add"][0]["header"] == {"key": "x-tester", "value": "yes"}
    assert first["request_headers_to_remove"] == ["x-debug"]
    assert last["match"] == {"prefix": "/"} and "weighted_clusters" in last["route"]
    versions = versions_of(docs, NS)
    assert served_split(run(docs).routes[ROUTE], versions=versions) == {"production": 80, "canary": 20}


@pytest.mark.parametrize(("edit", "message"), [
    (lambda r: r["spec"].update(hostnames=["x"]), r"spec.hostnames is not supported by the local mesh"),
    (lambda r: r["spec"]["rules"][0].update(retry={"attempts": 3}), r"spec.rules\[0\].retry is not supported"),
    (lambda r: r["spec"]["rules"][0].update(matches=[{"queryParams": [{"name": "a", "value": "b"}]}]),
     r"spec.rules\[0\].matches\[0\].queryParams is not supported"),
    (lambda r: r["spec"]["rules"][0].update(matches=[{"method": "GET"}]),
     r"spec.rules\[0\].matches\[0\].method is not supported"),
    (lambda r: r["spec"]["rules"][0].update(filters=[{"type": "RequestMirror", "requestMirror": {}}]),
     r"spec.rules\[0\].filters\[0\].type 'RequestMirror' is not supported"),
    (lambda r: r["spec"]["rules"][0]["backendRefs"][1].update(weight=-3),
     r"spec.rules\[0\].backendRefs\[1\].weight must be an integer from 0"),
    (lambda r: r["spec"]["rules"][0]["backendRefs"][1].update(name="nope"),
     r"spec.rules\[0\].backendRefs\[1\].name 'nope' is not a Service"),
    (lambda r: r["spec"]["parentRefs"][0].update(kind="Gateway", group="gateway.networking.k8s.io"),
     r"spec.parentRefs\[0\] gateway.networking.k8s.io/Gateway parents are not supported"),
    (lambda r: r["spec"]["parentRefs"][0].pop("group"), r"spec.parentRefs\[0\] .*parents are not supported"),
    (lambda r: r["spec"]["parentRefs"][0].update(port=9999), r"spec.parentRefs\[0\].port 9999 is not a port"),
    (lambda r: r.update(apiVersion="gateway.networking.k8s.io/v1alpha2"), "is not supported by the local mesh"),
])
def test_unsupported_fields_are_refused_with_their_path(edit, message):
    docs = docs_with()
    edit(next(d for d in docs if d["kind"] == "HTTPRoute"))
    with pytest.raises(InputError, match=message) as info:
        run(docs)
    assert str(info.value).startswith("HTTPRoute online-boutique/recommendationservice")


def test_bad_services_and_two_routes_for_one_host():
    docs = docs_with()
    svc = next(d for d in docs if d["kind"] == "Service")
    svc["spec"]["type"] = "LoadBalancer"
    with pytest.raises(InputError, match=r"Service online-boutique/recommendationservice-production: spec.type"):
        run(docs)
    docs = docs_with()
    docs.append({**copy.deepcopy(next(d for d in docs if d["kind"] == "HTTPRoute")),
                 "metadata": {"name": "second", "namespace": NS}})
    with pytest.raises(InputError, match="already routed by"):
        run(docs)
    gw_gateway = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "g"},
                  "spec": {}}
    with pytest.raises(InputError, match="Gateway online-boutique/g: gateway.networking.k8s.io/v1 Gateway is not "
                                         "supported by the local mesh"):
        run([*docs_with(), gw_gateway])


def test_an_empty_version_service_is_an_empty_cluster_with_a_warning_in_status():
    from splitproof.setup.mesh.status import served_subsets, served_warnings

    cfg = translate(mesh_documents(PARAMS), services=services(PARAMS), endpoints=ENDPOINTS[:1],
                    ports=ListenerPorts({80: 0}, {}), route_path=lambda n: n, default_namespace=NS)
    clusters = {c["name"]: c for c in cfg.clusters}
    warnings = served_warnings({ROUTE: ("1", cfg.routes[ROUTE])}, clusters)
    assert any("20% goes to " + CANARY in w and "selects no ready instance" in w for w in warnings), warnings
    subsets = served_subsets(clusters, FQDN, versions_of(mesh_documents(PARAMS), NS))
    assert subsets["canary"]["instances"] == [] and subsets["production"]["selector"] == {
        "app": "recommendationservice", "version": "production"}


def test_reweight_and_split_of_user_documents():
    docs = docs_with({"production": 4, "canary": 1})
    assert split_of(docs, FQDN, NS) == ({"production": {"version": "production"}, "canary": {"version": "canary"}},
                                        {"production": 80, "canary": 20})
    out = reweight(docs, FQDN, {"production": 50, "canary": 50}, NS)
    route = next(d for d in out if d["kind"] == "HTTPRoute")
    assert [r["weight"] for r in route["spec"]["rules"][0]["backendRefs"]] == [50, 50]
    assert next(d for d in docs if d["kind"] == "HTTPRoute")["spec"]["rules"][0]["backendRefs"][0]["weight"] == 4
    with pytest.raises(InputError, match="the new weights name production, shadow"):
        reweight(docs, FQDN, {"production": 50, "shadow": 50}, NS)
