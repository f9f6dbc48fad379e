"""What the Prometheus source selects and how a series becomes a version; Envoy stats in their three forms."""

from __future__ import annotations

import json

import pytest

from splitproof.verifier.istio import parse_cluster
from splitproof.verifier.telemetry.clusters import Service, explain_flags
from splitproof.verifier.telemetry.envoysource import counts_between, service_clusters
from splitproof.verifier.telemetry.envoystats import EnvoySnapshot, parse_snapshot
from splitproof.verifier.telemetry.errors import TelemetryInputError
from splitproof.verifier.telemetry.promql import classify, envoy_candidates, envoy_requests, istio_requests, promql
from splitproof.verifier.telemetry.promtext import ExpositionError, parse_line
from splitproof.verifier.telemetry.result import StatusKey

SVC = Service()
FQDN = "recommendationservice.online-boutique.svc.cluster.local"


def test_istio_selector_uses_one_reporter_and_the_service_labels() -> None:
    spec = istio_requests(SVC)
    assert spec.selector == ('istio_requests_total{reporter="source",destination_service_name='
                             '"recommendationservice",destination_service_namespace="online-boutique"}')
    fq = istio_requests(Service(FQDN), reporter="destination")
    assert fq.selector == f'istio_requests_total{{reporter="destination",destination_service="{FQDN}"}}'
    with pytest.raises(TelemetryInputError, match="never both"):
        istio_requests(SVC, reporter="both")
    for bad in ('reco"}', "Reco", "a_b"):
        with pytest.raises(TelemetryInputError):
            Service(bad)


def test_istio_series_classification() -> None:
    spec = istio_requests(SVC)
    ok = classify(spec, {"destination_version": "canary", "response_code": "200", "grpc_response_status": "0",
                         "response_flags": "-"})
    assert (ok.role, ok.version, ok.status) == ("count", "canary", StatusKey("200", "0", "-"))
    unknown = classify(spec, {"destination_version": "unknown", "response_code": "503", "response_flags": "UH"})
    assert unknown.version is None and unknown.cause == ("destination_version=unknown, response_flags "
                                                         "UH (no healthy upstream host)")
    missing = classify(spec, {"response_code": "200"})
    assert missing.version is None and missing.cause == "no destination_version label"
    assert explain_flags("URX,UF") == "URX,UF (upstream retry limit exceeded; upstream connection failure)"


@pytest.mark.parametrize("tag,name,label,host", [
    ("cluster_name", "envoy_cluster_upstream_rq_completed", "cluster_name", FQDN),
    ("envoy_cluster_name", "envoy_cluster_upstream_rq_completed", "envoy_cluster_name", FQDN),
    ("envoy-fqdn", "envoy_cluster_online_boutique_svc_cluster_local_upstream_rq_completed", "envoy_cluster_name",
     "recommendationservice"),
])
def test_envoy_specs(tag: str, name: str, label: str, host: str) -> None:
    spec = envoy_requests(SVC, tag)
    assert spec.count_metric == name and spec.version_label == label
    assert f'__name__=~"{name}|' in spec.selector and f"{label}=~" in spec.selector
    c = classify(spec, {"__name__": name, label: f"outbound|8080|canary|{host}"})
    assert (c.role, c.version) == ("count", "canary")
    code = "response_code" if tag == "cluster_name" else "envoy_response_code"
    s = classify(spec, {"__name__": spec.status_metric, label: f"outbound|8080|canary|{host}", code: "503"})
    assert (s.role, s.version, s.status) == ("status", "canary", StatusKey("503"))
    assert classify(spec, {"__name__": name, label: f"inbound|8080||{host}"}).role == "skip"
    assert classify(spec, {"__name__": name, label: "outbound|8080|canary|cartservice"}).role == "skip"
    whole = classify(spec, {"__name__": name, label: f"outbound|8080||{host}"})
    assert whole.version is None and "no subset" in (whole.cause or "")
    assert [s.version_label for s in envoy_candidates(SVC)] == ["cluster_name", "envoy_cluster_name",
                                                                "envoy_cluster_name"]


def test_istio_response_code_class_series_are_not_status_rows() -> None:
    spec = envoy_requests(SVC)
    c = classify(spec, {"__name__": "envoy_cluster_upstream_rq", "cluster_name": f"outbound|8080|canary|{FQDN}",
                        "response_code_class": "2xx"})
    assert c.role == "skip"


def test_user_promql() -> None:
    spec = promql('my_requests_total{app="reco", path=~"/a[0-9]+"}', "version")
    assert spec.selector.startswith("my_requests_total{")
    assert classify(spec, {"version": "v2"}).version == "v2"
    assert classify(spec, {"version": f"outbound|8080|canary|{FQDN}"}).version == "canary"
    for bad in ("rate(x[5m])", "x[5m]", "x + y", "", "sum(x)"):
        with pytest.raises(TelemetryInputError, match="series selector"):
            promql(bad)
    with pytest.raises(TelemetryInputError, match="label name"):
        promql("x", "not-a-label")


def test_cluster_names() -> None:
    c = parse_cluster(f"outbound|8080|canary|{FQDN};")
    assert c is not None and (c.direction, c.port, c.subset, c.host) == ("outbound", 8080, "canary", FQDN)
    for other in ("PassthroughCluster", "BlackHoleCluster", "-", "outbound|x|a|b", "inbound|8080|"):
        assert parse_cluster(other) is None


# ------------------------------------------------------------------------------------------------ Envoy stats


def _json(stats: dict[str, int], uptime: int) -> str:
    items = [{"name": k, "value": v} for k, v in stats.items()] + [{"name": "server.uptime", "value": uptime}]
    return json.dumps({"stats": [*items, {"histograms": {"supported_quantiles": [], "computed_quantiles": []}}]})


def test_stat_names_with_and_without_the_istio_delimiter() -> None:
    text = _json({f"cluster.outbound|8080|canary|{FQDN};.upstream_rq_completed": 5,
                  f"cluster.outbound|8080|canary|{FQDN};.external.upstream_rq_200": 5,
                  f"cluster.outbound|8080|production|{FQDN}.upstream_rq_completed": 9,
                  f"cluster.outbound|8080|production|{FQDN}.external.upstream_rq_200": 9,
                  f"cluster.outbound|8080|production|{FQDN}.upstream_rq_200": 9,
                  "cluster.xds-grpc.upstream_rq_total": 3}, 12)
    snap = parse_snapshot(text, 100.0)
    assert snap.format == "json" and snap.uptime == 12
    assert dict(service_clusters(snap, SVC)["canary"]) == {"upstream_rq_completed": 5}
    assert dict(service_clusters(snap, SVC)["production"]) == {"upstream_rq_completed": 9, "upstream_rq_200": 9}
    assert f"outbound|8080|production|{FQDN}.external" in snap.clusters  # never matches the host: not counted


def test_text_and_prometheus_forms() -> None:
    text = (f"cluster.outbound|8080|canary|{FQDN}.upstream_rq_completed: 4\n"
            f"cluster.outbound|8080|canary|{FQDN}.upstream_rq_time: P0(nan,1) P25(nan,1.025)\nserver.uptime: 7\n")
    snap = parse_snapshot(text, 1.0)
    assert snap.format == "text" and snap.uptime == 7
    assert dict(service_clusters(snap, SVC)["canary"]) == {"upstream_rq_completed": 4}
    istio = ("# TYPE envoy_cluster_upstream_rq_completed counter\n"
             f'envoy_cluster_upstream_rq_completed{{cluster_name="outbound|8080|canary|{FQDN}"}} 6\n'
             f'envoy_cluster_upstream_rq{{cluster_name="outbound|8080|canary|{FQDN}",response_code="503"}} 1\n'
             f'envoy_cluster_upstream_rq{{cluster_name="outbound|8080|canary|{FQDN}",response_code_class="5xx"}} 1\n'
             f'envoy_cluster_retry_upstream_rq{{cluster_name="outbound|8080|canary|{FQDN}",response_code="503"}} 1\n'
             "envoy_server_uptime{} 9\n")
    snap = parse_snapshot(istio, 1.0)
    assert snap.format == "prometheus" and snap.uptime == 9
    assert dict(service_clusters(snap, SVC)["canary"]) == {"upstream_rq_completed": 6, "upstream_rq_503": 1,
                                                           "upstream_rq_5xx": 1}
    upstream = ('envoy_cluster_online_boutique_svc_cluster_local_upstream_rq_completed{envoy_cluster_name='
                '"outbound|8080|canary|recommendationservice"} 3\n'
                'envoy_cluster_online_boutique_svc_cluster_local_upstream_rq{envoy_response_code="200",'
                'envoy_cluster_name="outbound|8080|canary|recommendationservice"} 3\n'
                'envoy_cluster_online_boutique_svc_cluster_local_external_upstream_rq{envoy_response_code="200",'
                'envoy_cluster_name="outbound|8080|canary|recommendationservice"} 3\n')
    snap = parse_snapshot(upstream, 1.0)
    assert dict(service_clusters(snap, SVC)["canary"]) == {"upstream_rq_completed": 3, "upstream_rq_200": 3}


def _snap(t: float, uptime: float | None, **subsets: int) -> EnvoySnapshot:
    return EnvoySnapshot(t, uptime, {f"outbound|8080|{s}|{FQDN}": {"upstream_rq_completed": n, "upstream_rq_200": n}
                                     for s, n in subsets.items()}, "json")


def test_deltas_restarts_and_new_subsets() -> None:
    got = counts_between(_snap(10, 100, production=50, canary=10), _snap(20, 110, production=58, canary=12), SVC)
    assert dict(got.counts) == {"production": 8, "canary": 2} and got.window.seconds == 10
    assert got.by_status[("canary", StatusKey("200"))] == 2
    new = counts_between(_snap(10, 100, production=50), _snap(20, 110, production=51, canary=3), SVC)
    assert dict(new.counts) == {"production": 1, "canary": 3}
    restarted = counts_between(_snap(10, 100, production=50, canary=10), _snap(20, 4, production=60, canary=12),
                               SVC)
    assert dict(restarted.counts) == {"production": 60, "canary": 12}
    assert any("Envoy restarted" in n and "uptime" in n for n in restarted.notes)
    # a restart the uptime cannot show (both 0 s) is still caught by a counter that went down
    fast = counts_between(_snap(10, 0, production=50, canary=10), _snap(10.5, 0, production=3, canary=12), SVC)
    assert dict(fast.counts) == {"production": 3, "canary": 12}
    whole = counts_between(_snap(1, 1, **{"": 5}), _snap(2, 2, **{"": 9}), SVC)
    assert whole.counts == {} and sum(whole.unattributed.values()) == 4


def test_restart_seen_through_the_start_time() -> None:
    # both counters grew, uptime too -- but the process started 30 s after the first snapshot's process
    got = counts_between(_snap(100, 50, production=5), _snap(200, 70, production=9), SVC)
    assert dict(got.counts) == {"production": 9} and any("restarted" in n for n in got.notes)


def test_promtext_lines() -> None:
    s = parse_line('m{a="x\\"y\\\\z",b="1"} 2.5 1700000000000')
    assert s is not None and s.labels == {"a": 'x"y\\z', "b": "1"} and s.value == 2.5
    assert parse_line("# HELP m help") is None and parse_line("") is None
    assert parse_line("m 3").labels == {}  # type: ignore[union-attr]
    for bad in ("{a=1} 2", 'm{a="1" 2', "m", "m{a=\"1\"} x"):
        with pytest.raises(ExpositionError):
            parse_line(bad)
