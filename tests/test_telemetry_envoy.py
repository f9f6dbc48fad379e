"""Real Envoy, real traffic: the access-log and admin-stats sources count exactly the requests that were sent.

Envoy routes 75/20/5 (production/canary/shadow) with ``weighted_clusters``; the shadow subset has no endpoint
(Envoy answers 503 UH), the canary fails ``/fail`` with 503 (Envoy retries once, then URX). The client's own view of
every response is the truth the telemetry is compared with.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from envoyharness import HOST, SLOW_S, Mesh

from splitproof.setup.proc import wait_until
from splitproof.verifier.telemetry.clusters import Service
from splitproof.verifier.telemetry.envoysource import EnvoyAdmin, counts_between, service_histograms, watch
from splitproof.verifier.telemetry.envoystats import detect_format
from splitproof.verifier.telemetry.errors import TelemetryQueryError
from splitproof.verifier.telemetry.logsource import count_access_log
from splitproof.verifier.telemetry.result import StatusKey
from splitproof.verifier.telemetry.window import Window

SVC = Service()


@pytest.fixture(scope="module", params=["istio", "upstream"])
def mesh(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    m = Mesh(tmp_path_factory.mktemp(f"envoy-{request.param}"), request.param)
    yield m
    m.close()


@pytest.fixture(scope="module")
def traffic(mesh: Mesh) -> dict[str, object]:
    """Snapshots in all three formats around 150 requests (30 of them to /fail), and the client's truth."""
    admins = {fmt: EnvoyAdmin.from_url(mesh.admin, fmt=fmt) for fmt in ("json", "text", "prometheus")}
    before = {fmt: a.snapshot(SVC) for fmt, a in admins.items()}
    sent = mesh.send(120) + mesh.send(30, "/fail")
    after = {fmt: a.snapshot(SVC) for fmt, a in admins.items()}
    mesh.wait_logged(150)
    return {"before": before, "after": after, "sent": sent}


def test_all_three_subsets_got_traffic(traffic: dict) -> None:
    sent = traffic["sent"]
    assert set(sent) == {"production", "canary", "shadow"} and sum(sent.values()) == 150


@pytest.mark.parametrize("fmt", ["json", "text", "prometheus"])
def test_admin_stats_delta_equals_requests_sent(traffic: dict, fmt: str) -> None:
    before, after, sent = traffic["before"][fmt], traffic["after"][fmt], traffic["sent"]
    assert before.format == fmt
    got = counts_between(before, after, SVC)
    assert dict(got.counts) == dict(sent)
    assert got.unattributed == {}
    assert got.by_status[("shadow", StatusKey("503"))] == sent["shadow"]  # Envoy's local UH reply
    canary_503 = got.by_status.get(("canary", StatusKey("503")), 0)
    assert canary_503 > 0 and got.by_status[("canary", StatusKey("200"))] == sent["canary"] - canary_503
    assert any("canary:" in n and "retried attempts" in n for n in got.notes)
    assert any("shadow:" in n and "no-healthy-upstream" in n for n in got.notes)


def test_upstream_rq_total_counts_attempts_not_requests(traffic: dict) -> None:
    """Why the count is upstream_rq_completed: retries inflate upstream_rq_total, UH requests are not in it."""
    got = counts_between(traffic["before"]["json"], traffic["after"]["json"], SVC, counter="upstream_rq_total")
    sent = traffic["sent"]
    assert got.counts["canary"] > sent["canary"]
    assert got.counts["shadow"] == 0 < sent["shadow"]


@pytest.mark.parametrize("which", ["text", "json"])
def test_access_log_counts_equal_requests_sent(mesh: Mesh, traffic: dict, which: str) -> None:
    path = mesh.text_log if which == "text" else mesh.json_log
    got = count_access_log(str(path), SVC)
    sent = traffic["sent"]
    assert dict(got.counts) == dict(sent)
    assert got.unattributed == {} and got.skipped == {}
    assert got.by_status[("shadow", StatusKey("503", "-", "UH"))] == sent["shadow"]
    assert got.by_status.get(("canary", StatusKey("503", "-", "URX")), 0) > 0
    assert {v: h.count for v, h in got.latency.items()} == {v: n for v, n in sent.items()}


def test_access_log_window_filters_by_start_time(mesh: Mesh, traffic: dict) -> None:
    whole = count_access_log(str(mesh.text_log), SVC)
    assert whole.window.since <= whole.window.until
    early = count_access_log(str(mesh.text_log), SVC, Window(whole.window.since - 60, whole.window.since))
    assert early.empty and early.skipped["lines of the service outside the window"] == 150
    other = count_access_log(str(mesh.json_log), Service("cartservice"))
    assert other.empty and other.skipped["outbound lines for other services"] == 150


def test_the_formats_are_detected(traffic: dict, mesh: Mesh) -> None:
    import urllib.request

    for path, want in (("/stats?format=json", "json"), ("/stats", "text"), ("/stats/prometheus", "prometheus")):
        with urllib.request.urlopen(mesh.admin + path, timeout=5) as resp:
            assert detect_format(resp.read(200_000).decode()) == want


def test_restart_between_snapshots_counts_from_zero(mesh: Mesh, traffic: dict, tmp_path: Path) -> None:
    before = EnvoyAdmin.from_url(mesh.admin).snapshot(SVC)
    mesh.restart()
    sent = mesh.send(20)
    after = EnvoyAdmin.from_url(mesh.admin).snapshot(SVC)
    got = counts_between(before, after, SVC)
    assert {v: n for v, n in got.counts.items() if n} == dict(sent)
    assert any("Envoy restarted" in n for n in got.notes)


def test_watch_batches_equal_requests_sent_between_polls(mesh: Mesh) -> None:
    admin = EnvoyAdmin.from_url(mesh.admin)
    plan = [30, 0, 12]
    sent: list[Counter[str]] = []
    now = [1_000.0]  # the watch's clock: it moves only when the watch sleeps, so the schedule is deterministic

    def sleep(seconds: float) -> None:  # traffic arrives while the watch waits for its next poll
        sent.append(mesh.send(plan[len(sent)]))
        now[0] += seconds

    batches = list(watch(admin, SVC, 5.0, duration=15.0, clock=lambda: now[0], sleep=sleep))
    assert len(batches) == 3
    assert [(b.window.since, b.window.until) for b in batches] == [(1000, 1005), (1005, 1010), (1010, 1015)]
    for batch, want in zip(batches, sent, strict=True):
        assert {v: n for v, n in batch.counts.items() if n} == dict(want)


def test_missing_cluster_stats_say_how_to_enable_them(mesh: Mesh) -> None:
    admin = EnvoyAdmin.from_url(mesh.admin)
    snap = admin.snapshot(Service("paymentservice"))
    with pytest.raises(TelemetryQueryError, match="proxyStatsMatcher"):
        counts_between(snap, snap, Service("paymentservice"))


def test_prometheus_form_of_the_cluster_name(mesh: Mesh) -> None:
    import urllib.request

    with urllib.request.urlopen(mesh.admin + "/stats/prometheus", timeout=5) as resp:
        text = resp.read().decode()
    if mesh.flavor == "istio":
        assert f'envoy_cluster_upstream_rq_completed{{cluster_name="outbound|8080|canary|{HOST}"}}' in text
    else:  # upstream Envoy's default extractor stops at the first dot of the FQDN cluster name
        assert ('envoy_cluster_online_boutique_svc_cluster_local_upstream_rq_completed'
                '{envoy_cluster_name="outbound|8080|canary|recommendationservice"}') in text



@pytest.fixture(params=["istio", "upstream"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Mesh]:
    """An Envoy no request has reached yet: its histograms start empty, whatever Envoy flushed before (flushing
    every 0.5 s; the tests poll for the flush either way)."""
    m = Mesh(tmp_path, request.param, flush_interval="0.5s")
    yield m
    m.close()


def _flushed(admin: EnvoyAdmin, n: int):  # type: ignore[no-untyped-def]
    """The first snapshot whose upstream_rq_time histograms hold ``n`` requests (Envoy merges histograms into what
    its admin prints at each stats flush, every 5 s by default)."""
    def ready():  # type: ignore[no-untyped-def]
        snap = admin.snapshot(SVC)
        return snap if sum(h.count for h in service_histograms(snap, SVC).values()) >= n else None

    return wait_until(ready, 30, f"{n} requests in Envoy's flushed histograms", 0.2)


def test_latency_histograms_per_subset_count_the_upstream_responses(fresh: Mesh) -> None:
    """Per version, in each of the three formats, the upstream_rq_time delta holds exactly the requests that version
    answered (the shadow subset's local 503 UH replies reached no upstream), and every /slow one above 25 ms."""
    admins = {fmt: EnvoyAdmin.from_url(fresh.admin, fmt=fmt) for fmt in ("json", "text", "prometheus")}
    first = {fmt: admin.snapshot(SVC) for fmt, admin in admins.items()}
    assert all(service_histograms(snap, SVC) == {} for snap in first.values())
    fast, slow = fresh.send(40), fresh.send(60, "/slow")
    served = {v: fast[v] + slow[v] for v in ("production", "canary")}
    assert slow["production"] and slow["canary"]  # (none to the canary: 0.8**60, 1.5e-6)
    for fmt, admin in admins.items():
        got = counts_between(first[fmt], _flushed(admin, sum(served.values())), SVC)
        assert set(got.latency) == {"production", "canary"}, fmt  # shadow: no upstream, no histogram
        for version, h in got.latency.items():
            assert h.count == served[version], (fmt, version, h)
            assert h.count - h.at_most(25) >= slow[version], (fmt, version, h)  # each /slow took >= SLOW_S
            assert h.bounds[-1] == float("inf")
        assert any("last stats flush" in n for n in got.notes)
    assert SLOW_S * 1000 > 25


def test_a_restart_takes_the_new_histograms_whole(fresh: Mesh) -> None:
    admin = EnvoyAdmin.from_url(fresh.admin)
    early = fresh.send(40)  # more than after the restart: the counters go down, which tells a restart apart
    before = _flushed(admin, early["production"] + early["canary"])
    fresh.restart()
    sent = fresh.send(12)
    after = _flushed(EnvoyAdmin.from_url(fresh.admin), sent["production"] + sent["canary"])  # (a new admin port)
    got = counts_between(before, after, SVC)
    assert any("Envoy restarted" in n for n in got.notes)
    assert {v: h.count for v, h in got.latency.items()} == {v: sent[v] for v in ("production", "canary") if sent[v]}
