"""Envoy's own counters through a real Prometheus: two real Envoys (Istio-style stats tags, and upstream Envoy's
defaults) scraped at 1 s from ``/stats/prometheus``; ``--metric envoy`` counts equal the requests each one routed."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from envoyharness import Mesh
from promharness import Prometheus, missing_prometheus, wait_until

from splitproof.verifier.telemetry.clusters import Service
from splitproof.verifier.telemetry.prometheus import PrometheusClient
from splitproof.verifier.telemetry.promql import envoy_candidates, envoy_requests
from splitproof.verifier.telemetry.promsource import count_window
from splitproof.verifier.telemetry.result import StatusKey
from splitproof.verifier.telemetry.window import Window

pytestmark = pytest.mark.skipif(missing_prometheus() is not None, reason=missing_prometheus() or "")
SVC = Service()


@pytest.fixture(scope="module")
def meshes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Mesh]]:
    made: dict[str, Mesh] = {}
    try:
        for flavor in ("istio", "upstream"):
            made[flavor] = Mesh(tmp_path_factory.mktemp(f"envoy-prom-{flavor}"), flavor)
        yield made
    finally:
        for m in made.values():
            m.close()


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory, meshes: dict[str, Mesh]) -> Iterator[Prometheus]:
    targets = [m.admin.removeprefix("http://") for m in meshes.values()]
    server = Prometheus(tmp_path_factory.mktemp("prom-envoy"), targets, metrics_path="/stats/prometheus")
    yield server
    server.stop()


def _scraped_after(prom: Prometheus, t: float) -> bool:
    rows = prom.query('timestamp(envoy_server_uptime{job="splitproof-test"})')
    return len(rows) == 2 and all(float(r["value"][1]) > t for r in rows)


def test_envoy_counters_through_prometheus_equal_requests_routed(prom: Prometheus, meshes: dict[str, Mesh],
                                                                  tmp_path: Path) -> None:
    wait_until(lambda: _scraped_after(prom, 0), 30, "a scrape of both Envoys")
    since = time.time()
    wait_until(lambda: _scraped_after(prom, since), 20, "a scrape after the window start")
    sent: dict[str, Counter[str]] = {f: m.send(80) + m.send(20, "/fail") for f, m in meshes.items()}
    mark = time.time()
    wait_until(lambda: _scraped_after(prom, mark), 20, "a scrape after the traffic")
    until = time.time()
    client = PrometheusClient.from_url(prom.url)
    window = Window(since, until)
    for flavor, tag in (("istio", "cluster_name"), ("upstream", "envoy-fqdn")):
        got = count_window(client, envoy_requests(SVC, tag), window)
        assert dict(got.counts) == dict(sent[flavor]), flavor
        assert got.by_status[("shadow", StatusKey("503"))] == sent[flavor]["shadow"]
        assert sum(got.by_status.values()) == sum(sent[flavor].values())  # final responses, once each
    auto = count_window(client, envoy_candidates(SVC), window)
    assert dict(auto.counts) == dict(sent["istio"]) and "cluster_name" in auto.source
