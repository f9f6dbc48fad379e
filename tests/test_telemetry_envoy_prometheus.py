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
from splitproof.verifier.telemetry.envoysource import EnvoyAdmin, service_histograms
from splitproof.verifier.telemetry.prometheus import PrometheusClient
from splitproof.verifier.telemetry.promql import envoy_candidates, envoy_requests
from splitproof.verifier.telemetry.promsource import count_window
from splitproof.verifier.telemetry.result import StatusKey
from splitproof.verifier.telemetry.window import Window

pytestmark = pytest.mark.skipif(missing_prometheus() is not None, reason=missing_prometheus() or "")
SVC = Service()
FLUSH_S = 0.5


@pytest.fixture(scope="module")
def meshes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Mesh]]:
    made: dict[str, Mesh] = {}
    try:
        for flavor in ("istio", "upstream"):
            # histograms reach /stats/prometheus at each stats flush: every 0.5 s here (Envoy's default 5 s)
            made[flavor] = Mesh(tmp_path_factory.mktemp(f"envoy-prom-{flavor}"), flavor, flush_interval="0.5s")
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
    # a scrape after the traffic, and after the stats flush that put its request times into the histograms
    wait_until(lambda: _scraped_after(prom, mark + FLUSH_S + 0.1), 20, "a scrape after the traffic and a flush")
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
    assert auto.latency == {}  # asked for by own_latency only
    for flavor, tag in (("istio", "cluster_name"), ("upstream", "envoy-fqdn")):
        # upstream_rq_time through Prometheus: the same per-subset histograms as the proxy's own admin prints
        # (every request is in both: the window began before the first request and ends after the last flush)
        own = count_window(client, envoy_candidates(SVC), window, own_latency=True)
        direct = service_histograms(EnvoyAdmin.from_url(meshes[flavor].admin).snapshot(SVC), SVC)
        if flavor == "istio":
            assert {v: h.cumulative for v, h in own.latency.items()} == {
                v: h.cumulative for v, h in direct.items() if v}
        got = count_window(client, envoy_requests(SVC, tag), window, own_latency=True)
        assert set(got.latency) == {"production", "canary"}, flavor  # shadow: no upstream, no request time
        assert {v: h.cumulative for v, h in got.latency.items()} == {v: h.cumulative for v, h in direct.items()
                                                                     if v}, flavor
        assert got.latency["production"].count >= sent[flavor]["production"], flavor  # each reached production
