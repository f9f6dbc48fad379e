"""Istio access-log lines (real formats: Istio's default TEXT and JSON encodings) -> per-subset counts.

Lines from a real Envoy are in test_telemetry_envoy.py; these cover what a sidecar's log holds beyond them:
inbound lines, TCP lines, gRPC, UH/NR failures, kubectl prefixes, the proxy's own log, broken lines."""

from __future__ import annotations

import io
import json

import pytest

from splitproof.verifier.telemetry.accesslog import AccessLogEntry, Rejected, parse_line
from splitproof.verifier.telemetry.clusters import Service
from splitproof.verifier.telemetry.errors import TelemetryInputError
from splitproof.verifier.telemetry.logsource import count_access_log, entries, read_lines, tally_lines
from splitproof.verifier.telemetry.result import StatusKey
from splitproof.verifier.telemetry.window import Window

FQDN = "recommendationservice.online-boutique.svc.cluster.local"
GRPC = '"POST /hipstershop.RecommendationService/ListRecommendations HTTP/2"'


def text(subset: str, t: str = "2025-11-25T22:10:00.123Z", code: str = "200", flags: str = "-",
         details: str = "via_upstream", host: str = FQDN, duration: str = "3", direction: str = "outbound",
         upstream_host: str = "10.0.1.7:8080") -> str:
    cluster = f"{direction}|8080|{subset}|{host}" if direction == "outbound" else "inbound|8080||"
    return (f'[{t}] {GRPC} {code} {flags} {details} - "-" 52 190 {duration} 2 "-" "grpc-go/1.58.0" '
            f'"c5f0a5b2-3b9e-4f61-9d0c-0b7f1e2d3c4a" "recommendationservice:8080" "{upstream_host}" {cluster} '
            f"10.0.2.3:50642 10.96.12.34:8080 10.0.2.3:44110 - default")


def js(subset: str, **over: object) -> str:
    doc = {"start_time": "2025-11-25T22:10:00.123Z", "method": "POST",
           "path": "/hipstershop.RecommendationService/ListRecommendations", "protocol": "HTTP/2",
           "response_code": 200, "response_flags": "-", "response_code_details": "via_upstream",
           "connection_termination_details": None, "bytes_received": 52, "bytes_sent": 190, "duration": 3,
           "upstream_service_time": "2", "x_forwarded_for": None, "user_agent": "grpc-go/1.58.0",
           "request_id": "c5f0a5b2", "authority": "recommendationservice:8080", "upstream_host": "10.0.1.7:8080",
           "upstream_cluster": f"outbound|8080|{subset}|{FQDN}", "upstream_local_address": "10.0.2.3:50642",
           "downstream_local_address": "10.96.12.34:8080", "downstream_remote_address": "10.0.2.3:44110",
           "requested_server_name": None, "route_name": "default", "upstream_transport_failure_reason": None}
    doc.update(over)
    return json.dumps(doc)


def lines_of(*texts: str) -> io.BytesIO:
    return io.BytesIO(("\n".join(texts) + "\n").encode())


def tally(*texts: str, window: Window | None = None, service: Service | None = None):  # type: ignore[no-untyped-def]
    return tally_lines(read_lines(lines_of(*texts)), service or Service(), window)


def test_text_and_json_lines_parse_to_the_same_entry() -> None:
    a, b = parse_line(text("canary")), parse_line(js("canary"))
    assert isinstance(a, AccessLogEntry) and isinstance(b, AccessLogEntry)
    assert (a.encoding, b.encoding) == ("text", "json")
    for field in ("start_time", "method", "path", "protocol", "response_code", "response_flags", "duration_ms",
                  "upstream_host", "upstream_cluster", "authority", "route_name"):
        assert getattr(a, field) == getattr(b, field), field
    assert a.cluster is not None and a.cluster.subset == "canary" and a.cluster.port == 8080
    assert a.status == StatusKey("200", "-", "-")


def test_istio_docs_sample_lines() -> None:
    """The outbound/inbound pair of Istio's access-log task (istio.io, Tasks > Observability > Envoy Access Logs)."""
    outbound = ('[2020-11-25T21:26:18.409Z] "GET /status/418 HTTP/1.1" 418 - via_upstream - "-" 0 135 5 2 "-" '
                '"curl/7.73.0-DEV" "84961386-6d84-929d-98bd-c5aee93b5c88" "httpbin:8000" "10.44.1.27:80" '
                "outbound|8000||httpbin.foo.svc.cluster.local 10.44.1.23:37652 10.0.45.184:8000 10.44.1.23:46520 "
                "- default")
    inbound = ('[2020-11-25T21:26:18.409Z] "GET /status/418 HTTP/1.1" 418 - via_upstream - "-" 0 135 4 4 "-" '
               '"curl/7.73.0-DEV" "84961386-6d84-929d-98bd-c5aee93b5c88" "httpbin:8000" "127.0.0.1:80" '
               "inbound|8000|| 127.0.0.1:41854 10.44.1.27:80 10.44.1.23:37652 "
               "outbound_.8000_._.httpbin.foo.svc.cluster.local default")
    got = tally(outbound, inbound, service=Service("httpbin", "foo"))
    assert got.counts == {} and sum(got.unattributed.values()) == 1  # no subset: the whole-service cluster
    (cause,) = got.unattributed
    assert "no subset" in cause
    assert got.skipped == {"inbound lines (server side: not the routing decision)": 1}
    assert got.by_status[(None, StatusKey("418"))] == 1


def test_counts_by_subset_with_failures_kept_for_health() -> None:
    got = tally(text("production"), text("production", duration="12"), js("canary"),
                text("canary", code="200", flags="UH", details="no_healthy_upstream", upstream_host="-",
                     duration="0"),
                js("canary", response_code=503, response_flags="URX", duration=30))
    assert dict(got.counts) == {"production": 2, "canary": 3}  # errored requests count where they were routed
    assert got.by_status[("canary", StatusKey("200", "-", "UH"))] == 1
    assert got.by_status[("canary", StatusKey("503", "-", "URX"))] == 1
    assert got.latency["production"].count == 2 and got.latency["production"].at_most(10) == 1
    assert any("client-side (outbound) lines only" in n for n in got.notes)


def test_pre_1_25_cluster_with_stat_delimiter_and_kubectl_prefixes() -> None:
    got = tally(f"[pod/frontend-7d9f/istio-proxy] {js('canary', upstream_cluster=f'outbound|8080|canary|{FQDN};')}",
                f"2025-11-25T22:10:01.000000000Z {text('production')}",
                f"[pod/frontend-7d9f/istio-proxy] {text('canary')}")
    assert dict(got.counts) == {"canary": 2, "production": 1}


def test_everything_not_counted_is_reported() -> None:
    tcp = ('[2025-11-25T22:10:00.123Z] "- - -" 0 - - - "-" 1234 5678 1000 - "-" "-" "-" "-" "10.0.0.5:6379" '
           "outbound|6379||redis-cart.online-boutique.svc.cluster.local 10.0.2.3:50000 10.96.1.1:6379 "
           "10.0.2.3:49000 - -")
    nr = ('[2025-11-25T22:10:00.123Z] "GET / HTTP/1.1" 404 NR route_not_found - "-" 0 0 0 - "-" "curl/8.5.0" '
          '"id-1" "recommendationservice:8080" "-" - - 10.96.12.34:8080 10.0.2.3:44110 - -')
    envoy_default = ('[2025-11-25T22:10:00.123Z] "GET /x HTTP/1.1" 200 - 0 10 4 3 "-" "curl/8.5.0" "id-2" '
                     '"recommendationservice:8080" "10.0.1.7:8080"')
    got = tally(text("canary"), tcp, nr, envoy_default,
                "2025-11-25T22:09:00.000000Z\tinfo\tEnvoy proxy is ready",
                "[2025-11-25 22:09:00.000][15][warning][main] [source/server/server.cc:1059] no limit",
                text("production", host="cartservice.online-boutique.svc.cluster.local"),
                text("canary")[:-30],  # cut: names the service, so it may be one of its requests
                '{"start_time": "2025-11-25T22:10:00.123Z", "upstream_cluster": ',
                '{"level": "info", "msg": "not an access log"}', "")
    assert dict(got.counts) == {"canary": 1}
    assert dict(got.unattributed) == {"no upstream cluster (response_flags NR)": 1,
                                      "unparseable access-log line naming the service": 1}
    assert dict(got.skipped) == {
        "TCP connection lines": 1,
        "lines in Envoy's default format (no upstream cluster)": 1,
        "non-access-log lines (the proxy's own log)": 3,
        "outbound lines for other services": 1,
        "unparseable lines": 1,
    }
    assert any(n.startswith("first unparseable line: 4 ") for n in got.notes)


def test_window_uses_the_request_start_time() -> None:
    lines = [text("canary", t="2025-11-25T22:10:00.000Z"), text("canary", t="2025-11-25T22:10:10.000Z"),
             text("production", t="2025-11-25T22:10:20.000Z")]
    t0 = parse_line(lines[0]).start_time  # type: ignore[union-attr]
    got = tally(*lines, window=Window(t0, t0 + 20))
    assert dict(got.counts) == {"canary": 2}  # [since, until)
    assert got.skipped == {"lines of the service outside the window": 1}
    assert tally(*lines).window.since == t0


def test_overlong_lines_are_bounded_and_counted() -> None:
    stream = lines_of(text("canary"), "x" * 200_000, text("production"))
    got = tally_lines(read_lines(stream, max_line=4096), Service())
    assert dict(got.counts) == {"canary": 1, "production": 1}
    assert got.skipped == {"overlong lines": 1}


def test_undecodable_bytes_do_not_stop_the_read() -> None:
    stream = io.BytesIO(text("canary").encode() + b"\n\xff\xfe garbage\n" + text("canary").encode())
    got = tally_lines(read_lines(stream), Service())
    assert got.counts == {"canary": 2} and got.skipped["non-access-log lines (the proxy's own log)"] == 1


def test_files_and_entries(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "proxy.log"
    path.write_text(text("canary") + "\n" + js("production") + "\n")
    assert dict(count_access_log(str(path), Service()).counts) == {"canary": 1, "production": 1}
    with pytest.raises(TelemetryInputError, match="no such file"):
        count_access_log(str(tmp_path / "missing.log"), Service())
    with pytest.raises(TelemetryInputError, match="directory"):
        count_access_log(str(tmp_path), Service())
    got = list(entries(read_lines(lines_of(text("canary"), "junk"))))
    assert len(got) == 1 and got[0].upstream_cluster == f"outbound|8080|canary|{FQDN}"


def test_rejections_name_their_kind() -> None:
    assert parse_line("hello") == Rejected("other", "not an access-log line")
    bad = parse_line(js("canary", start_time=7))
    assert isinstance(bad, Rejected) and bad.kind == "malformed"
    assert isinstance(parse_line(js("canary", response_code="abc")), Rejected)
