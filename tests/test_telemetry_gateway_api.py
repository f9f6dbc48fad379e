"""Telemetry attribution with Gateway API routing (issue 17), pure: the {version Service -> version} mapping built
from an HTTPRoute's backendRefs and the Services' selectors (``Service.from_httproute``), applied by every source --
Istio's ``destination_service_name`` instead of ``destination_version``, and the cluster host
(``outbound|8080||recommendationservice-canary...``) instead of the subset for Envoy stats and access logs."""

from __future__ import annotations

import pytest
from test_telemetry_accesslog import tally, text

from splitproof.setup.manifests import CanaryParams, mesh_documents
from splitproof.verifier.istio import parse_cluster
from splitproof.verifier.telemetry.clusters import Service
from splitproof.verifier.telemetry.envoysource import counts_between, service_clusters
from splitproof.verifier.telemetry.envoystats import EnvoySnapshot
from splitproof.verifier.telemetry.errors import TelemetryInputError
from splitproof.verifier.telemetry.promql import classify, envoy_requests, istio_requests

NS = "online-boutique"
DOCS = mesh_documents(CanaryParams(routing="gateway-api"))
ROUTE = next(d for d in DOCS if d["kind"] == "HTTPRoute")
SERVICES = [d for d in DOCS if d["kind"] == "Service"]
SVC = Service.from_httproute(ROUTE, SERVICES)
PROD_HOST = f"recommendationservice-production.{NS}.svc.cluster.local"
CANARY_HOST = f"recommendationservice-canary.{NS}.svc.cluster.local"


def test_the_mapping_comes_from_the_route_and_the_selectors():
    assert SVC.versions == ((NS, "recommendationservice-production", "production"),
                            (NS, "recommendationservice-canary", "canary"))
    assert SVC.version_service_hosts() == {PROD_HOST: "production", CANARY_HOST: "canary"}
    assert SVC.version_of_service("recommendationservice-canary", NS) == "canary"
    assert SVC.version_of_service("recommendationservice-canary", "other") is None
    assert "versions by Service: recommendationservice-production=production" in SVC.describe()
    unlabelled = [SERVICES[0], {**SERVICES[1], "spec": {"selector": {"app": "recommendationservice"}}}]
    with pytest.raises(TelemetryInputError, match="recommendationservice-canary has no 'version' label"):
        Service.from_httproute(ROUTE, unlabelled)


def test_cluster_version_is_the_one_attribution():
    assert SVC.cluster_version(parse_cluster(f"outbound|8080||{CANARY_HOST}")) == ("canary", None)
    assert SVC.cluster_version(parse_cluster(f"outbound|8080||{PROD_HOST};")) == ("production", None)
    whole = SVC.cluster_version(parse_cluster(f"outbound|8080||recommendationservice.{NS}.svc.cluster.local"))
    assert whole is not None and whole[0] is None and "no subset" in whole[1]
    assert SVC.cluster_version(parse_cluster(f"outbound|3550||productcatalogservice.{NS}.svc.cluster.local")) is None
    assert SVC.cluster_version(parse_cluster("inbound|8080||")) is None
    # without a mapping: the subset, as before
    plain = Service()
    assert plain.cluster_version(parse_cluster(f"outbound|8080|canary|{plain.fqdn}")) == ("canary", None)


def test_istio_metrics_by_destination_service_name():
    spec = istio_requests(SVC)
    assert spec.selector == ('istio_requests_total{reporter="source",destination_service_name=~'
                             '"recommendationservice-production|recommendationservice-canary",'
                             'destination_service_namespace=~"online-boutique"}')
    assert spec.version_label == "destination_service_name"
    series = {"__name__": "istio_requests_total", "destination_service_name": "recommendationservice-canary",
              "destination_service_namespace": NS, "destination_version": "unknown", "response_code": "200"}
    got = classify(spec, series)
    assert (got.role, got.version, got.cause) == ("count", "canary", None)   # destination_version ignored
    other = classify(spec, {**series, "destination_service_name": "recommendationservice-shadow"})
    assert other.version is None and "not a backend Service of the route" in other.cause
    assert istio_requests(Service()).version_label == "destination_version"   # subsets: unchanged


def test_envoy_metrics_by_cluster_host():
    spec = envoy_requests(SVC)
    assert "recommendationservice-canary\\\\.online-boutique" in spec.selector
    count = {"__name__": "envoy_cluster_upstream_rq_completed", "cluster_name": f"outbound|8080||{CANARY_HOST}"}
    assert classify(spec, count).version == "canary"
    other = {**count, "cluster_name": f"outbound|3550||productcatalogservice.{NS}.svc.cluster.local"}
    assert classify(spec, other).role == "skip"


def test_envoy_admin_snapshots_by_cluster_host():
    def snap(t: float, prod: int, canary: int) -> EnvoySnapshot:
        return EnvoySnapshot(t, 100.0 + t, {
            f"outbound|8080||{PROD_HOST}": {"upstream_rq_completed": prod, "upstream_rq_total": prod},
            f"outbound|8080||{CANARY_HOST}": {"upstream_rq_completed": canary, "upstream_rq_total": canary},
            f"outbound|3550||productcatalogservice.{NS}.svc.cluster.local": {"upstream_rq_completed": 7}}, "json")

    assert set(service_clusters(snap(0, 1, 1), SVC)) == {"production", "canary"}
    got = counts_between(snap(0, 10, 5), snap(10, 90, 25), SVC)
    assert dict(got.counts) == {"production": 80, "canary": 20}


def test_access_log_by_cluster_host():
    got = tally(text("", host=PROD_HOST), text("", host=CANARY_HOST), text("", host=PROD_HOST),
                text("", host=f"productcatalogservice.{NS}.svc.cluster.local"), service=SVC)
    assert dict(got.counts) == {"production": 2, "canary": 1}
    assert got.skipped.get("outbound lines for other services") == 1
