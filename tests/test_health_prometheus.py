"""Acceptance through Prometheus: the local mesh's Istio metrics scraped by a real Prometheus
(``LocalMesh(prometheus=True)``), a bad canary (5% of calls failing with INTERNAL and +40 ms) FAILs on both health
metrics with the split PASS, a healthy canary PASSes -- judged from ``istio_requests_total``'s
``grpc_response_status`` per version and ``istio_request_duration_milliseconds`` buckets, clients' view
(``reporter="source"``), the destination side shown next to it. Windows have idle edges (a scrape after every
request reached Prometheus). 50/50 split: the canary gets half the samples, so a few thousand calls decide."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from flakebudget import ALPHA_ARGS
from helpers import in_process
from promharness import missing_prometheus

from splitproof.protos import demo_pb2, demo_pb2_grpc
from splitproof.setup.manifests import CanaryParams
from splitproof.setup.mesh import LocalMesh
from splitproof.setup.mesh.faults import parse_instance_faults
from splitproof.setup.mesh.prometheus import scraped_after
from splitproof.setup.proc import wait_until
from splitproof.verifier.cli import main

pytestmark = pytest.mark.skipif(missing_prometheus() is not None, reason=missing_prometheus() or "")

REQUEST = demo_pb2.ListRecommendationsRequest(user_id="test", product_ids=["OLJCESPC7Z"])
HALF = {"production": 50, "canary": 50}
# A 50/50 split PASSes the fixed-n test (margin 5 pp) at TEST_ALPHA from ~6000 responses, but for ~1e-4 of the
# time (exact binomial sum): at 1500 it missed 13% of the time even at alpha 0.01, at 3000 9% at 1e-4.
CALLS = 6000


def _mesh(tmp_path_factory: pytest.TempPathFactory, **faults: str) -> Iterator[LocalMesh]:
    bad = {"canary": parse_instance_faults(**faults)} if faults else None  # type: ignore[arg-type]
    with LocalMesh(CanaryParams().with_weights(HALF), state_dir=tmp_path_factory.mktemp("mesh") / "state",
                   prometheus=True, faults=bad) as mesh:
        yield mesh


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    yield from _mesh(tmp_path_factory, error_rate="5", error_code="INTERNAL", delay_ms="40")


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    yield from _mesh(tmp_path_factory)


def source_requests(mesh: LocalMesh) -> float:
    q = urllib.parse.urlencode({"query": 'sum(istio_requests_total{reporter="source",'
                                         'destination_service_name="recommendationservice"})'})
    with urllib.request.urlopen(f"{mesh.prometheus_url}/api/v1/query?{q}", timeout=5) as resp:
        result = json.load(resp)["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def send_calls(mesh: LocalMesh, n: int) -> None:
    """``n`` ListRecommendations calls through the mesh's entry, 32 in flight."""
    with grpc.insecure_channel(mesh.grpc_entry) as channel:
        stub = demo_pb2_grpc.RecommendationServiceStub(channel)
        pending: list[grpc.Future] = []
        for _ in range(n):
            pending.append(stub.ListRecommendations.future(REQUEST, timeout=10))
            if len(pending) >= 32:
                pending.pop(0).exception()
        for fut in pending:
            fut.exception()


def window_of_traffic(mesh: LocalMesh, n: int) -> list[str]:
    """--since/--until around ``n`` calls: idle edges, every call in Prometheus' samples inside the window."""
    since = scraped_after(str(mesh.prometheus_url), time.time(), timeout=60)  # also waits for the first scrape
    before = source_requests(mesh)
    send_calls(mesh, n)
    wait_until(lambda: source_requests(mesh) >= before + n, 60, f"{n} requests in Prometheus", 0.1)
    until = scraped_after(str(mesh.prometheus_url), time.time())
    return ["--since", f"{since:.3f}", "--until", f"{until:.3f}"]


def verify(capsys: pytest.CaptureFixture[str], mesh: LocalMesh, *argv: str) -> tuple[int, dict]:
    code, out, _err = in_process(main, capsys, "--expected", "50", *ALPHA_ARGS, "--prometheus",
                                 str(mesh.prometheus_url), "--health", "--latency-threshold-ms", "25", *argv, "--json",
                                 "-", "--no-progress")
    return code, json.loads(out)


def test_a_bad_canary_fails_on_errors_and_latency_with_the_split_pass(bad: LocalMesh,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = verify(capsys, bad, *window_of_traffic(bad, CALLS))
    assert code == 1 and doc["split"]["outcome"] == "PASS", doc["reason"]
    errors, latency = doc["health"]["metrics"]
    assert errors["outcome"] == "FAIL" and latency["outcome"] == "FAIL", doc["health"]["reason"]
    assert doc["reason"].startswith("health FAIL: canary errors") and latency["threshold_ms"] == 25
    assert errors["rows"][0]["baseline_bad"] == 0 and doc["health"]["attribution"].startswith("telemetry")
    dest = doc["health"]["destination"]  # the canary's own sidecar saw its failures too (INTERNAL: not retried)
    assert dest["canary"]["errors"] > 0 and dest["production"]["errors"] == 0


def test_a_healthy_canary_passes(healthy: LocalMesh, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = verify(capsys, healthy, *window_of_traffic(healthy, CALLS), "--latency-threshold-ms", "250")
    assert code == 0 and doc["health"]["outcome"] == "PASS", doc["reason"]


def test_envoy_admin_judges_the_canarys_latency_from_its_histograms(bad: LocalMesh, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """``--envoy-admin --health``: latency from the subsets' upstream_rq_time histograms FAILs the +40 ms canary.
    Its INTERNAL errors are gRPC statuses on HTTP 200 responses, which Envoy's ``upstream_rq_<code>`` counters do not
    tell apart: from the admin's counters the errors metric sees none (README says so)."""
    from splitproof.verifier.telemetry.clusters import Service
    from splitproof.verifier.telemetry.envoysource import EnvoyAdmin, service_histograms

    real = EnvoyAdmin.snapshot
    taken: list[int] = []

    def flushed(admin: EnvoyAdmin) -> int:
        return sum(h.count for h in service_histograms(real(admin, Service()), Service()).values())

    def snapshot(self: EnvoyAdmin, service: Service, clock=time.time):  # type: ignore[no-untyped-def]
        snap = real(self, service, clock)
        if not taken:  # the traffic, right after the first snapshot; then Envoy's next stats flush
            before = sum(h.count for h in service_histograms(snap, service).values())
            send_calls(bad, CALLS)
            wait_until(lambda: flushed(self) >= before + CALLS, 30, "the calls in Envoy's flushed histograms", 0.2)
            taken.append(CALLS)
        return snap

    monkeypatch.setattr(EnvoyAdmin, "snapshot", snapshot)
    code, out, _err = in_process(main, capsys, "--expected", "50", *ALPHA_ARGS, "--envoy-admin", str(bad.admin_url),
                                 "--duration", "0.1", "--health", "--latency-threshold-ms", "25", "--json", "-",
                                 "--no-progress")
    doc = json.loads(out)
    assert taken and doc["telemetry"]["source_kind"] == "envoy-admin"
    assert sum(doc["telemetry"]["counts"].values()) == CALLS
    metrics = {m["metric"]: m for m in doc["health"]["metrics"]}
    assert metrics["latency"]["outcome"] == "FAIL" and code == 1, doc["health"]["reason"]
    assert metrics["errors"]["rows"][0]["bad"] == 0  # blind to the canary's INTERNAL errors, and it says so:
    assert any("errors from HTTP statuses only" in n for n in doc["health"]["notes"]), doc["health"]["notes"]
    lat = doc["telemetry"]["latency"]
    assert {v: h["cumulative"][-1] for v, h in lat.items()} == doc["telemetry"]["counts"]
