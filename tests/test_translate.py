"""Istio documents -> Envoy config (setup/mesh/istio_model.py -> envoy_build.py, orchestrated by translate.py),
the user's documents reweighted (edit.py), Envoy's routes read back (setup/envoyroutes.py): pure, no processes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from splitproof.setup.envoyroutes import served_split, subset_weights
from splitproof.setup.manifests import CanaryParams, mesh_documents
from splitproof.setup.mesh.edit import reweight, split_of
from splitproof.setup.mesh.envoy_build import ListenerPorts, ingress_route_name, mesh_route_name
from splitproof.setup.mesh.status import served_warnings
from splitproof.setup.mesh.topology import Endpoint, parse_replicas, plan_instances, services
from splitproof.setup.mesh.translate import translate
from splitproof.verifier.errors import InputError
from splitproof.verifier.istio import API_VERSIONS, cluster_name, parse_cluster_name

NS = "online-boutique"
REC = f"recommendationservice.{NS}.svc.cluster.local"
PROD = f"outbound|8080|production|{REC}"
CANARY = f"outbound|8080|canary|{REC}"


def endpoints(params: CanaryParams, replicas: dict[str, int] | None = None) -> list[Endpoint]:
    return [Endpoint(spec.service, "127.0.0.1", 20000 + i, spec.labels, spec.name)
            for i, spec in enumerate(plan_instances(params, replicas))]


def run(docs: list[dict[str, Any]], params: CanaryParams | None = None, eps: list[Endpoint] | None = None):
    params = params or CanaryParams()
    return translate(docs, services=services(params), endpoints=endpoints(params) if eps is None else eps,
                     ports=ListenerPorts(gateway={80: 0}, services={}), route_path=lambda n: f"/x/{n}.json",
                     default_namespace=params.namespace)


def rec_route(cfg) -> dict[str, Any]:
    rc = cfg.routes[mesh_route_name(next(s for s in services(CanaryParams()) if s.name == "recommendationservice"))]
    (vhost,) = rc["virtual_hosts"]
    return vhost["routes"][0]


def cluster(cfg, name: str) -> dict[str, Any]:
    return next(c for c in cfg.clusters if c["name"] == name)


def instances_of(c: dict[str, Any]) -> list[str]:
    return [lb["metadata"]["filter_metadata"]["splitproof"]["instance"]
            for group in c["load_assignment"]["endpoints"] for lb in group["lb_endpoints"]]


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_lab_documents_translate_like_istiod(api_version: str) -> None:
    params = CanaryParams(api_version=api_version)
    cfg = run(mesh_documents(params), params)
    assert cfg.warnings == []
    route = rec_route(cfg)
    assert route["route"]["weighted_clusters"] == {"clusters": [{"name": PROD, "weight": 80},
                                                                {"name": CANARY, "weight": 20}]}
    assert "total_weight" not in route["route"]["weighted_clusters"]
    assert instances_of(cluster(cfg, PROD)) == ["recommendationservice-production-0"]
    assert instances_of(cluster(cfg, CANARY)) == ["recommendationservice-canary-0"]
    # the whole-service cluster has every version
    assert len(instances_of(cluster(cfg, f"outbound|8080||{REC}"))) == 2
    # gRPC services get HTTP/2 upstream, the frontend HTTP/1.1
    opts = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    assert "http2_protocol_options" in cluster(cfg, CANARY)["typed_extension_protocol_options"][opts][
        "explicit_http_config"]
    frontend = cluster(cfg, f"outbound|80||frontend.{NS}.svc.cluster.local")
    assert "http_protocol_options" in frontend["typed_extension_protocol_options"][opts]["explicit_http_config"]
    # the ingress (Gateway port 80, host *) routes every host to the frontend
    (vhost,) = cfg.routes[ingress_route_name(80)]["virtual_hosts"]
    assert vhost["domains"] == ["*"]
    assert vhost["routes"][0]["route"]["cluster"] == f"outbound|80||frontend.{NS}.svc.cluster.local"
    assert {ln["name"] for ln in cfg.listeners} == {"ingress.80", "mesh.frontend", "mesh.productcatalogservice",
                                                    "mesh.recommendationservice"}


def test_weights_follow_params_and_zero_weight_is_dropped() -> None:
    cfg = run(mesh_documents(CanaryParams().with_weights({"production": 50, "canary": 50})))
    assert subset_weights(cfg.routes[mesh_route_name(services(CanaryParams())[2])])[0]["weights"] == \
        {"production": 50, "canary": 50}
    cfg = run(mesh_documents(CanaryParams().with_weights({"production": 100, "canary": 0})))
    assert rec_route(cfg)["route"]["cluster"] == PROD  # like istiod: one remaining destination = plain cluster


def test_version_header_is_set_per_destination() -> None:
    cfg = run(mesh_documents(CanaryParams(version_header="x-version")))
    dests = rec_route(cfg)["route"]["weighted_clusters"]["clusters"]
    for dest, subset in zip(dests, ("production", "canary"), strict=True):
        assert dest["response_headers_to_add"] == [{"header": {"key": "x-version", "value": subset},
                                                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]


def vs(http: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "recommendationservice", "namespace": NS},
            "spec": {"hosts": ["recommendationservice"], "http": http, **spec}}


def dr(**spec: Any) -> dict[str, Any]:
    base = {"host": "recommendationservice", "subsets": [{"name": "production", "labels": {"version": "production"}},
                                                         {"name": "canary", "labels": {"version": "canary"}}]}
    return {"apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule",
            "metadata": {"name": "recommendationservice", "namespace": NS}, "spec": {**base, **spec}}


def dest(subset: str, weight: int | None = None, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"destination": {"host": "recommendationservice", "subset": subset}, **extra}
    if weight is not None:
        d["weight"] = weight
    return d


def test_matches_headers_and_timeout() -> None:
    http = [
        {"name": "beta", "match": [{"headers": {"x-beta": {"exact": "1"}}}, {"uri": {"prefix": "/hipstershop."}}],
         "route": [dest("canary", headers={"response": {"add": {"x-via": "beta"}, "remove": ["server"]},
                                           "request": {"set": {"x-subset": "canary"}}})],
         "timeout": "250ms"},
        {"match": [{"uri": {"exact": "/a"}, "ignoreUriCase": True}, {"uri": {"regex": "/b.*"}}],
         "headers": {"response": {"set": {"x-route": "two"}}},
         "route": [dest("production", 60), dest("canary", 40, headers={"response": {"set": {"x-v": "c"}}})]},
    ]
    cfg = run([dr(), vs(http)])
    (vhost,) = cfg.routes[mesh_route_name(services(CanaryParams())[2])]["virtual_hosts"]
    r = vhost["routes"]
    assert [x["name"] for x in r] == ["beta.0", "beta.1", "recommendationservice.1.0", "recommendationservice.1.1"]
    assert r[0]["match"] == {"prefix": "/", "headers": [{"name": "x-beta", "string_match": {"exact": "1"}}]}
    assert r[1]["match"] == {"prefix": "/hipstershop."}
    assert r[2]["match"] == {"path": "/a", "case_sensitive": False}
    assert r[3]["match"] == {"safe_regex": {"regex": "/b.*"}}
    # single destination: its headers move to the route, as istiod does
    assert r[0]["route"]["cluster"] == CANARY and r[0]["route"]["timeout"] == "0.25s"
    assert r[0]["response_headers_to_add"] == [{"header": {"key": "x-via", "value": "beta"},
                                                "append_action": "APPEND_IF_EXISTS_OR_ADD"}]
    assert r[0]["response_headers_to_remove"] == ["server"]
    assert r[0]["request_headers_to_add"][0]["header"] == {"key": "x-subset", "value": "canary"}
    assert r[2]["route"]["timeout"] == "0s"  # Istio's default: no route timeout
    assert r[2]["response_headers_to_add"][0]["header"] == {"key": "x-route", "value": "two"}
    canary = r[2]["route"]["weighted_clusters"]["clusters"][1]
    assert canary["name"] == CANARY and canary["weight"] == 40
    assert canary["response_headers_to_add"][0]["header"] == {"key": "x-v", "value": "c"}


def test_subset_with_unknown_label_is_an_empty_cluster_and_app_only_includes_canary() -> None:
    params = CanaryParams(subsets={"production": {"app": "recommendationservice"}, "canary": {"version": "v3"}})
    cfg = run(mesh_documents(params), params)
    assert instances_of(cluster(cfg, CANARY)) == []
    assert sorted(instances_of(cluster(cfg, PROD))) == ["recommendationservice-canary-0",
                                                        "recommendationservice-production-0"]
    served = {name: ("v", rc) for name, rc in cfg.routes.items()}
    warnings = served_warnings(served, {c["name"]: c for c in cfg.clusters})
    assert any("20% goes to subset 'canary'" in w and "selects no ready instance (labels version=v3)" in w
               for w in warnings), warnings
    # the canary instance is only in production here (canary selects nobody): no overlap to report yet
    assert not any("is in subsets" in w for w in warnings), warnings
    params = CanaryParams(subsets={"production": {"app": "recommendationservice"}, "canary": {"version": "canary"}})
    cfg = run(mesh_documents(params), params)
    warnings = served_warnings({n: ("v", rc) for n, rc in cfg.routes.items()}, {c["name"]: c for c in cfg.clusters})
    assert any("instance recommendationservice-canary-0 is in subsets canary, production" in w for w in warnings)


def test_route_to_undefined_subset_warns_and_points_to_a_missing_cluster() -> None:
    cfg = run([vs([{"route": [dest("production", 80), dest("canary", 20)]}])])  # no DestinationRule
    assert any("no DestinationRule defines" in w for w in cfg.warnings)
    assert {c["name"] for c in cfg.clusters}.isdisjoint({PROD, CANARY})
    served = served_warnings({n: ("v", rc) for n, rc in cfg.routes.items()}, {c["name"]: c for c in cfg.clusters})
    assert any("80% goes to subset 'production'" in w for w in served)


def test_replicas_become_endpoints() -> None:
    params = CanaryParams()
    cfg = run(mesh_documents(params), params, endpoints(params, parse_replicas("production=3,canary=0")))
    assert len(instances_of(cluster(cfg, PROD))) == 3
    assert instances_of(cluster(cfg, CANARY)) == []


def test_gateway_hosts_and_selector() -> None:
    params = CanaryParams(host="shop.example.com")
    cfg = run(mesh_documents(params), params)
    (vhost,) = cfg.routes[ingress_route_name(80)]["virtual_hosts"]
    assert vhost["domains"] == ["shop.example.com", "shop.example.com:*"]
    docs = mesh_documents(CanaryParams())
    docs[0]["spec"]["selector"] = {"istio": "egressgateway"}
    cfg = run(docs)
    assert "ingress.80" not in {ln["name"] for ln in cfg.listeners}
    assert any("does not select the local ingress" in w for w in cfg.warnings)


@pytest.mark.parametrize(("server_host", "domains"), [
    ("online-boutique/*", [["*"]]),                    # the VirtualService's namespace may bind
    ("./*", []),                                       # only the Gateway's own namespace (istio-system)
    ("other/*", []),
    ("*/shop.example.com", [["shop.example.com", "shop.example.com:*"]]),  # VS host "*" narrowed to the server's
])
def test_gateway_server_host_namespaces(server_host: str, domains: list[list[str]]) -> None:
    docs = mesh_documents(CanaryParams())
    docs[0]["metadata"]["namespace"] = "istio-system"
    docs[0]["spec"]["servers"][0]["hosts"] = [server_host]
    docs[1]["spec"]["gateways"] = ["istio-system/frontend-gateway"]
    vhosts = run(docs).routes[ingress_route_name(80)]["virtual_hosts"]
    assert [v["domains"] for v in vhosts] == domains  # none -> Envoy answers 404, as the lab shows before the VS


UNSUPPORTED = [
    (lambda d: d[4]["spec"]["http"][0].__setitem__("retries", {"attempts": 3}), "spec.http[0].retries"),
    (lambda d: d[4]["spec"]["http"][0].__setitem__("fault", {}), "spec.http[0].fault"),
    (lambda d: d[4]["spec"].__setitem__("tcp", []), "spec.tcp"),
    (lambda d: d[4]["spec"].__setitem__("exportTo", ["."]), "spec.exportTo"),
    (lambda d: d[4]["spec"]["http"][0].__setitem__("match", [{"sourceLabels": {"a": "b"}}]),
     "spec.http[0].match[0].sourceLabels"),
    (lambda d: d[4]["spec"]["http"][0]["route"][0]["destination"]["port"].__setitem__("name", "grpc"),
     "spec.http[0].route[0].destination.port.name"),
    (lambda d: d[3]["spec"].__setitem__("trafficPolicy", {"connectionPool": {}}), "spec.trafficPolicy.connectionPool"),
    (lambda d: d[3]["spec"]["subsets"][0].__setitem__("trafficPolicy", {"outlierDetection": {}}),
     "spec.subsets[0].trafficPolicy.outlierDetection"),
    (lambda d: d[0]["spec"]["servers"][0].__setitem__("tls", {"mode": "SIMPLE"}), "spec.servers[0].tls"),
    (lambda d: d[0]["spec"]["servers"][0]["port"].__setitem__("protocol", "HTTPS"), "spec.servers[0].port.protocol"),
    (lambda d: d[3].__setitem__("kind", "ServiceEntry"), "kind 'ServiceEntry' is not supported"),
    (lambda d: d[3].__setitem__("apiVersion", "networking.istio.io/v2"), "apiVersion"),
]


@pytest.mark.parametrize(("mutate", "path"), UNSUPPORTED, ids=[p for _m, p in UNSUPPORTED])
def test_unsupported_fields_are_rejected_by_path(mutate, path: str) -> None:
    docs = copy.deepcopy(mesh_documents(CanaryParams()))
    mutate(docs)
    with pytest.raises(InputError, match=path.replace("[", r"\[").replace("]", r"\]")):
        run(docs)


@pytest.mark.parametrize(("http", "problem"), [
    ([{"route": [dest("production", 80), dest("canary", 30)]}], "must sum to 100"),
    ([{"route": [dest("production"), dest("canary")]}], "is required when a route has several destinations"),
    ([{"route": [{"destination": {"host": "nosuchservice"}}]}], "not a service of the local mesh"),
    ([{"route": [{"destination": {"host": "recommendationservice", "port": {"number": 9}}}]}], "not a port of"),
    ([{"redirect": {"uri": "/x"}}], "redirect is not supported"),
    ([{"match": [{"uri": {"prefix": "/a", "exact": "/a"}}], "route": [dest("canary")]}], "exactly one of"),
    ([{"timeout": "soon", "route": [dest("canary")]}], "must be a duration"),
])
def test_invalid_virtual_services_are_rejected(http: list[dict[str, Any]], problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        run([dr(), vs(http)])


def test_mesh_wildcard_host_and_duplicate_virtual_services_are_rejected() -> None:
    with pytest.raises(InputError, match="wildcard host"):
        run([dr(), {**vs([{"route": [dest("canary")]}]), "spec": {"hosts": ["*"], "http": [
            {"route": [dest("canary")]}]}}])
    second = vs([{"route": [dest("canary")]}])
    second["metadata"] = {"name": "other", "namespace": NS}
    with pytest.raises(InputError, match="already routed by VirtualService"):
        run([dr(), vs([{"route": [dest("production")]}]), second])


def test_reweight_and_split_of_for_user_documents() -> None:
    docs = mesh_documents(CanaryParams())
    new = reweight(docs, REC, {"production": 50, "canary": 50}, NS)
    assert split_of(new, REC, NS) == ({"production": {"version": "production"}, "canary": {"version": "canary"}},
                                      {"production": 50, "canary": 50})
    assert split_of(docs, REC, NS)[1] == {"production": 80, "canary": 20}  # the input is not modified
    with pytest.raises(InputError, match="splits across subsets"):
        reweight(docs, REC, {"production": 50, "v3": 50}, NS)
    with pytest.raises(InputError, match="nothing to reweight"):
        reweight(docs[:3], REC, {"production": 50, "canary": 50}, NS)


def test_cluster_names_round_trip() -> None:
    assert cluster_name(8080, "canary", REC) == CANARY
    assert parse_cluster_name(CANARY) == (8080, "canary", REC)
    assert parse_cluster_name("outbound|80||frontend") == (80, "", "frontend")
    assert parse_cluster_name("BlackHoleCluster") is None


def test_the_served_split_is_the_catch_all_route_not_a_testers_header_route() -> None:
    docs = mesh_documents(CanaryParams())
    vs = next(d for d in docs if d["kind"] == "VirtualService" and d["metadata"]["name"] == "recommendationservice")
    split = vs["spec"]["http"][0]
    testers = {"match": [{"headers": {"x-tester": {"exact": "1"}}}],
               "route": [{"destination": {"host": "recommendationservice", "subset": "canary"}}]}
    vs["spec"]["http"] = [testers, split]
    route_config = run(docs).routes[mesh_route_name(services(CanaryParams())[2])]
    routes = subset_weights(route_config)
    assert [r["catch_all"] for r in routes] == [False, True]
    assert routes[0]["weights"] == {"canary": 100}
    assert served_split(route_config) == {"production": 80, "canary": 20}  # what status reports as served
