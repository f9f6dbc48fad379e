"""Envoy's upstream_rq_time histograms from admin answers (verifier.telemetry.envoyhist): the three formats as a real
Envoy 1.3x prints them with ``histogram_buckets=cumulative`` (Istio's names and upstream Envoy's), their deltas, and
what is said when they cannot be used. tests/test_telemetry_envoy.py reads them from a real Envoy."""

from __future__ import annotations

import json
import math

import pytest

from splitproof.verifier.telemetry import envoyhist
from splitproof.verifier.telemetry.clusters import Service
from splitproof.verifier.telemetry.envoysource import counts_between, service_histograms
from splitproof.verifier.telemetry.envoystats import EnvoySnapshot, parse_snapshot
from splitproof.verifier.telemetry.errors import TelemetryQueryError
from splitproof.verifier.telemetry.latency import ISTIO_DURATION_BUCKETS_MS, LatencyHistogram

HOST = "recommendationservice.online-boutique.svc.cluster.local"
SVC = Service()
BOUNDS = ISTIO_DURATION_BUCKETS_MS


def cluster(subset: str) -> str:
    return f"outbound|8080|{subset}|{HOST}"


def cumulative(fast: int, slow: int) -> list[int]:
    """``fast`` requests under 0.5 ms, ``slow`` between 25 and 50 ms: the cumulative count at each bound."""
    return [fast if b < 50 else fast + slow for b in BOUNDS]


def json_answer(per: dict[str, tuple[int, int]], completed: dict[str, int], istio: bool = True,
                buckets: bool = True, uptime: int = 100) -> str:
    sep = ";." if istio else "."
    stats: list[dict] = [{"name": f"cluster.{cluster(s)}{sep}upstream_rq_completed", "value": n}
                         for s, n in completed.items()]
    stats.append({"name": "server.uptime", "value": uptime})
    if buckets:
        hist = [{"name": f"cluster.{cluster(s)}{sep}{stat}",
                 "buckets": [{"upper_bound": b, "interval": 0, "cumulative": c}
                             for b, c in zip(BOUNDS, cumulative(*fs), strict=True)]}
                for s, fs in per.items() for stat in ("upstream_rq_time", "external.upstream_rq_time")]
        stats.append({"histograms": hist})
    else:  # what an Envoy prints without histogram_buckets: quantiles
        stats.append({"histograms": {"supported_quantiles": [0, 50, 100], "computed_quantiles": [
            {"name": f"cluster.{cluster(s)}{sep}upstream_rq_time", "values": [{"interval": None, "cumulative": 1}]}
            for s in per]}})
    return json.dumps({"stats": stats})


def text_answer(per: dict[str, tuple[int, int]], istio: bool = True) -> str:
    sep = ";." if istio else "."
    lines = []
    for s, fs in per.items():
        cells = " ".join(f"B{b:g}(0,{c})" for b, c in zip(BOUNDS, cumulative(*fs), strict=True))
        lines.append(f"cluster.{cluster(s)}{sep}upstream_rq_completed: {sum(fs)}")
        lines.append(f"cluster.{cluster(s)}{sep}upstream_rq_time: {cells}")
    return "\n".join(lines) + "\n"


def prometheus_answer(per: dict[str, tuple[int, int]], over: int = 0) -> str:
    lines = ["# TYPE envoy_cluster_upstream_rq_time histogram"]
    for s, fs in per.items():
        for b, c in zip(BOUNDS, cumulative(*fs), strict=True):
            lines.append(f'envoy_cluster_upstream_rq_time_bucket{{cluster_name="{cluster(s)}",le="{b:g}"}} {c}')
        lines.append(f'envoy_cluster_upstream_rq_time_bucket{{cluster_name="{cluster(s)}",le="+Inf"}} '
                     f'{sum(fs) + over}')
        lines.append(f'envoy_cluster_upstream_rq_time_count{{cluster_name="{cluster(s)}"}} {sum(fs) + over}')
    lines.append("# TYPE envoy_cluster_upstream_rq_completed counter")
    lines += [f'envoy_cluster_upstream_rq_completed{{cluster_name="{cluster(s)}"}} {sum(fs) + over}'
              for s, fs in per.items()]
    return "\n".join(lines) + "\n"


def histograms(fmt: str, text: str) -> dict[str, LatencyHistogram]:
    """The histograms of a snapshot parsed from ``text`` (collected in the same pass as its counters)."""
    return dict(parse_snapshot(text, 1.0, fmt).histograms)


def test_the_three_formats_give_the_same_histograms() -> None:
    per = {"production": (30, 1), "canary": (5, 2)}
    by_format = {"json": histograms("json", json_answer(per, {})), "text": histograms("text", text_answer(per)),
                 "prometheus": histograms("prometheus", prometheus_answer(per))}
    for fmt, got in by_format.items():
        assert set(got) == {cluster("production"), cluster("canary")}, fmt  # not the external.* twin
        canary = got[cluster("canary")]
        assert canary.bounds == (*BOUNDS, math.inf) and canary.count == 7 and canary.at_most(25) == 5, fmt


def test_upstream_envoy_names_split_at_the_last_dot() -> None:
    """Without Istio's ``;`` the name is split at its last dot: ``...cluster.local.external.upstream_rq_time`` reads
    as a cluster ``...local.external``, which is no cluster of the service."""
    for got in (histograms("json", json_answer({"canary": (3, 1)}, {}, istio=False)),
                histograms("text", text_answer({"canary": (3, 1)}, istio=False))):
        assert got[cluster("canary")].count == 4
        snap = EnvoySnapshot(1.0, None, {}, "json", histograms=got)
        assert set(service_histograms(snap, SVC)) == {"canary"}


def test_prometheus_keeps_the_requests_beyond_the_last_bound() -> None:
    h = histograms("prometheus", prometheus_answer({"canary": (3, 1)}, over=2))[cluster("canary")]
    assert h.count == 6 and h.at_most(3600000) == 4


def test_quantiles_only_give_no_histograms_and_the_result_says_so() -> None:
    text = json_answer({"canary": (3, 1)}, {"canary": 4}, buckets=False)
    assert histograms("json", text) == {}
    snap = parse_snapshot(text, 1.0, "json")
    got = counts_between(snap, snap, SVC)
    assert got.latency == {} and any("no latency" in n and "histogram_buckets" in n for n in got.notes)


def test_delta_between_snapshots_per_version() -> None:
    def snap(per: dict[str, tuple[int, int]], t: float):  # type: ignore[no-untyped-def]
        text = json_answer(per, {s: sum(fs) for s, fs in per.items()}, uptime=100 + int(t))  # one process
        return parse_snapshot(text, t, "json")

    before = snap({"production": (10, 0), "canary": (2, 0)}, 1.0)
    after = snap({"production": (50, 4), "canary": (8, 3)}, 61.0)
    got = counts_between(before, after, SVC)
    assert {v: (h.count, h.count - h.at_most(25)) for v, h in got.latency.items()} == {
        "production": (44, 4), "canary": (9, 3)}
    assert dict(got.counts) == {"production": 44, "canary": 9}


def test_delta_refuses_what_cannot_be_subtracted() -> None:
    a = LatencyHistogram((1.0, math.inf), (3, 5))
    assert envoyhist.delta(None, a) == a
    assert envoyhist.delta(LatencyHistogram((1.0, math.inf), (1, 2)), a) == LatencyHistogram((1.0, math.inf), (2, 3))
    assert envoyhist.delta(LatencyHistogram((1.0, math.inf), (4, 4)), a) is None  # a bucket went down
    assert envoyhist.delta(LatencyHistogram((2.0, math.inf), (1, 1)), a) is None  # other bounds


def test_bad_answers_are_query_errors() -> None:
    with pytest.raises(TelemetryQueryError):
        histograms("json", "{not json")
    with pytest.raises(TelemetryQueryError):
        histograms("prometheus", 'envoy_cluster_upstream_rq_time_bucket{cluster_name="x",le="abc"} 1\n')
    assert histograms("json", json.dumps({"stats": [{"histograms": [{"name": 3}, "x", {"buckets": 1}]}]})) == {}


def test_watch_batches_add_their_histograms_unless_the_buckets_changed() -> None:
    from splitproof.verifier.command.telemetry import sum_batches
    from splitproof.verifier.telemetry.result import CountsBuilder
    from splitproof.verifier.telemetry.window import Window

    def batch(t: float, h: LatencyHistogram):  # type: ignore[no-untyped-def]
        b = CountsBuilder()
        b.add("canary", h.count)
        return b.build(Window(t, t + 5), "Envoy admin", {"canary": h}, empty_note=False)

    one, two = LatencyHistogram((1.0, math.inf), (2, 3)), LatencyHistogram((1.0, math.inf), (1, 4))
    assert sum_batches([batch(0, one), batch(5, two)]).latency["canary"] == LatencyHistogram((1.0, math.inf), (3, 7))
    other = LatencyHistogram((5.0, math.inf), (4, 4))  # a proxy restarted with other buckets
    got = sum_batches([batch(0, one), batch(5, other), batch(10, other)])
    assert got.latency["canary"] == LatencyHistogram((5.0, math.inf), (8, 8)) and dict(got.counts) == {"canary": 11}
    assert [n for n in got.notes if "buckets changed" in n] == [
        "canary: the latency buckets changed between batches: the later batches' kept"]
