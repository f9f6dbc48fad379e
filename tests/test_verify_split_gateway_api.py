"""verify-split --from-httproute with a telemetry source (issue 17): the requests are attributed by the version
Service the route sent them to -- Istio's ``destination_service_name`` in a real Prometheus (promtool-loaded TSDB,
tests/promharness.py), the cluster host ``outbound|8080||recommendationservice-<version>...`` in an access log."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import in_process
from promharness import Exposition, Prometheus, missing_prometheus
from test_telemetry_accesslog import text

from splitproof.setup.manifests import CanaryParams, mesh_yaml
from splitproof.verifier.cli import main

NS = "online-boutique"
STEP = 15
T0 = (int(time.time()) // 3600) * 3600 - 2 * 86400
SPAN = (10, 110)


def _labels(service: str, code: str = "200") -> dict[str, str]:
    # what a frontend sidecar reports for an HTTPRoute-routed call: the version Service, no subset
    return {"reporter": "source", "destination_service_name": service, "destination_service_namespace": NS,
            "destination_version": "unknown", "response_code": code, "grpc_response_status": "0",
            "response_flags": "-", "pod": "frontend-0"}


def _openmetrics(prod: int, canary: int) -> str:
    lines = ["# TYPE istio_requests counter"]
    steps = list(range(SPAN[0] + 1, SPAN[1]))
    for labels, total in ((_labels("recommendationservice-production"), prod),
                          (_labels("recommendationservice-canary"), canary),
                          (_labels("productcatalogservice"), 999)):
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        value = 0
        for k in range(0, SPAN[1] + 10):
            if k in steps:
                value += total // len(steps) + (total % len(steps) if k == steps[0] else 0)
            lines.append(f"istio_requests_total{{{inner}}} {value} {T0 + STEP * k}")
    return "\n".join([*lines, "# EOF"]) + "\n"


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    if missing_prometheus() is not None:
        pytest.skip(missing_prometheus() or "")
    exposition = Exposition()
    server = Prometheus(tmp_path_factory.mktemp("prometheus"), exposition.address, _openmetrics(800, 200))
    yield server
    server.stop()
    exposition.close()


def _manifest(tmp_path: Path) -> Path:
    path = tmp_path / "route.yaml"
    path.write_text(mesh_yaml(CanaryParams(routing="gateway-api")))
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict, str]:
    code, out, err = in_process(main, capsys, *argv, "--json", "-", "--no-progress")
    return code, json.loads(out) if out.strip() else {}, err


def test_prometheus_counts_by_destination_service_name(prom, tmp_path, capsys):
    window = ["--since", str(T0 + STEP * SPAN[0] + 5), "--until", str(T0 + STEP * SPAN[1] - 5)]
    code, doc, err = _run(capsys, "--from-httproute", str(_manifest(tmp_path)), "--prometheus", prom.url, *window)
    assert code == 0, (doc.get("reason"), err)
    assert doc["expected"] == {"production": 0.8, "canary": 0.2}
    assert doc["telemetry"]["counts"] == {"production": 800, "canary": 200}   # the catalog's 999 not selected
    assert doc["unattributed"] == 0 and doc["outcome"] == "PASS"
    print(f"gateway-api Prometheus window: counts {doc['telemetry']['counts']}, p={doc['gof_p_value']}")


def test_access_log_by_cluster_host(tmp_path, capsys):
    host = f"{{}}.{NS}.svc.cluster.local"
    lines = [text("", t=f"2025-11-25T22:10:{i % 60:02d}.000Z", host=host.format("recommendationservice-production"))
             for i in range(400)]
    lines += [text("", t="2025-11-25T22:10:30.000Z", host=host.format("recommendationservice-canary"))
              for _ in range(100)]
    log = tmp_path / "access.log"
    log.write_text("\n".join(lines) + "\n")
    code, doc, _ = _run(capsys, "--from-httproute", str(_manifest(tmp_path)), "--access-log", str(log),
                        "--since", "2025-11-25T22:00:00Z", "--until", "2025-11-25T23:00:00Z")
    assert doc["telemetry"]["counts"] == {"production": 400, "canary": 100} and code in (0, 3), doc["reason"]
    # without the route, the same log has no subset: everything unattributed (the mapping is what attributes it)
    code, doc, _ = _run(capsys, "--expected", "20", "--access-log", str(log),
                        "--since", "2025-11-25T22:00:00Z", "--until", "2025-11-25T23:00:00Z")
    assert doc["telemetry"]["counts"] == {}
