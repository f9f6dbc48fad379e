"""Counts read from a real Prometheus equal the counts that were exposed -- exactly.

Two kinds of data in one Prometheus (module scope): series backfilled with promtool (exact known increments over
2 h at 15 s resolution: counter resets, series that begin mid-window, ``unknown`` versions, the other reporter,
other services), and a live 1 s scrape of an exposition server this test drives.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from promharness import Exposition, Prometheus, missing_prometheus, wait_until

from splitproof.verifier.telemetry.clusters import Service
from splitproof.verifier.telemetry.errors import TelemetryQueryError, TelemetryUnreachable
from splitproof.verifier.telemetry.prometheus import PrometheusClient
from splitproof.verifier.telemetry.promql import envoy_candidates, istio_duration_buckets, istio_requests, promql
from splitproof.verifier.telemetry.promsource import count_window, latency_window, watch
from splitproof.verifier.telemetry.result import StatusKey
from splitproof.verifier.telemetry.window import Window

pytestmark = pytest.mark.skipif(missing_prometheus() is not None, reason=missing_prometheus() or "")

SVC = Service()
STEP = 15
STEPS = 480  # 2 h
T0 = (int(time.time()) // 3600) * 3600 - 2 * 86400  # two days back: far from the head block, inside retention
REQ = "istio_requests_total"
BUCKETS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000,
           3600000, math.inf)


def _labels(reporter: str, version: str, pod: str, code: str = "200", flags: str = "-",
            service: str = "recommendationservice") -> dict[str, str]:
    return {"reporter": reporter, "destination_service_name": service,
            "destination_service_namespace": "online-boutique",
            "destination_service": f"{service}.online-boutique.svc.cluster.local", "destination_version": version,
            "response_code": code, "grpc_response_status": "0" if code == "200" else "14", "response_flags": flags,
            "pod": pod}


class Backfill:
    """Known series: per step k (timestamp T0 + 15 k) an increment; ``first`` step the series appears at (its first
    sample is the requests since it was created); ``reset`` a step at which the counter restarted from 0."""

    def __init__(self) -> None:
        rng = random.Random(13)
        self.series: list[tuple[str, dict[str, str], dict[int, int], int | None]] = []

        def add(name: str, labels: dict[str, str], first: int, rate: int, reset: int | None = None) -> None:
            incs = {k: rng.randint(0, rate) for k in range(first, STEPS)}
            self.series.append((name, labels, incs, reset))

        add(REQ, _labels("source", "production", "p1"), 0, 8)
        add(REQ, _labels("source", "production", "p2"), 0, 8, reset=240)  # a restarted proxy
        add(REQ, _labels("source", "canary", "c1"), 120, 3)  # a canary pod created mid-window
        add(REQ, _labels("source", "canary", "c1", "503", "URX"), 200, 1)
        add(REQ, _labels("source", "unknown", "p1", "503", "UH"), 300, 2)
        add(REQ, _labels("destination", "production", "p1"), 0, 8)  # the other reporter: never summed in
        add(REQ, _labels("destination", "canary", "c1"), 120, 3)
        add(REQ, _labels("source", "v1", "x1", service="cartservice"), 0, 5)  # another service
        for version, pod, first in (("production", "p1", 0), ("canary", "c1", 120)):
            lab = _labels("source", version, pod)
            per = {k: [rng.randint(0, 3) for _ in BUCKETS] for k in range(first, STEPS)}
            for i, le in enumerate(BUCKETS):  # cumulative over le: bucket i holds the first i+1 classes
                incs = {k: sum(v[: i + 1]) for k, v in per.items()}
                self.series.append(("istio_request_duration_milliseconds_bucket",
                                    {**lab, "le": "+Inf" if le == math.inf else f"{le:g}"}, incs, None))

    def openmetrics(self) -> str:
        lines = [f"# TYPE {REQ[:-len('_total')]} counter"]
        for kind in (REQ, "istio_request_duration_milliseconds_bucket"):
            for name, labels, incs, reset in self.series:
                if name != kind:
                    continue
                value = 0
                inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
                for k in sorted(incs):
                    value = incs[k] if k == reset else value + incs[k]
                    lines.append(f"{name}{{{inner}}} {value} {T0 + STEP * k}")
        return "\n".join([*lines, "# EOF"]) + "\n"

    def truth(self, since: float, until: float, name: str = REQ) -> Counter[tuple[str, ...]]:
        """Requests per (version, code, flags) of the service, reporter source, with sample time in (since, until]."""
        out: Counter[tuple[str, ...]] = Counter()
        for n, labels, incs, _reset in self.series:
            if n != name or labels["reporter"] != "source" or labels["destination_service_name"] != SVC.name:
                continue
            key = (labels["destination_version"], labels["response_code"], labels["response_flags"],
                   labels.get("le", ""))
            out[key] += sum(v for k, v in incs.items() if since < T0 + STEP * k <= until)
        return out


BACKFILL = Backfill()


@pytest.fixture(scope="module")
def exposition() -> Iterator[Exposition]:
    exp = Exposition()
    yield exp
    exp.close()


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory, exposition: Exposition) -> Iterator[Prometheus]:
    server = Prometheus(tmp_path_factory.mktemp("prometheus"), exposition.address, BACKFILL.openmetrics())
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(prom: Prometheus) -> PrometheusClient:
    return PrometheusClient.from_url(prom.url, timeout=10)


def _by_version(truth: Counter[tuple[str, ...]]) -> tuple[dict[str, int], int]:
    counts: Counter[str] = Counter()
    unknown = 0
    for (version, _code, _flags, _le), n in truth.items():
        if version == "unknown":
            unknown += n
        else:
            counts[version] += n
    return dict(counts), unknown


# --------------------------------------------------------------------------------------------------- backfill


@pytest.mark.parametrize("since_step,until_step", [(37.2, 430.5), (0, 479), (-40, 479), (250, 251), (130, 300)])
def test_backfilled_counts_are_exact(client: PrometheusClient, since_step: float, until_step: float) -> None:
    window = Window(T0 + STEP * since_step, T0 + STEP * until_step)
    got = count_window(client, istio_requests(SVC), window)
    want, unknown = _by_version(BACKFILL.truth(window.since, window.until))
    assert {v: n for v, n in got.counts.items() if n or v in want} == want
    assert sum(got.unattributed.values()) == unknown
    if unknown:
        (cause,) = got.unattributed
        assert "unknown" in cause and "UH (no healthy upstream host)" in cause
    truth = BACKFILL.truth(window.since, window.until)
    assert got.by_status.get(("canary", StatusKey("503", "14", "URX")), 0) == truth[("canary", "503", "URX", "")]
    assert all(isinstance(n, int) for n in got.counts.values())
    assert any('reporter="source"' in n for n in got.notes)
    if window.since < T0 + STEP * 240 < window.until:
        assert any("counter reset" in n for n in got.notes)


def test_chunked_and_bisected_reads_give_the_same_counts(prom: Prometheus) -> None:
    window = Window(T0 + 100, T0 + STEP * 470)
    want = count_window(PrometheusClient.from_url(prom.url), istio_requests(SVC), window)
    chunked = count_window(PrometheusClient.from_url(prom.url), istio_requests(SVC), window, chunk=600)
    tiny = PrometheusClient.from_url(prom.url, max_bytes=120_000)  # forces the reader to split its chunks
    bisected = count_window(tiny, istio_requests(SVC), window, chunk=7200)
    assert chunked.counts == want.counts == bisected.counts
    assert chunked.unattributed == want.unattributed == bisected.unattributed


def test_series_born_inside_the_window_counts_from_zero(client: PrometheusClient) -> None:
    window = Window(T0 + STEP * 100, T0 + STEP * 200)  # the canary pod appears at step 120
    got = count_window(client, istio_requests(SVC), window)
    truth = BACKFILL.truth(window.since, window.until)
    assert got.counts["canary"] == truth[("canary", "200", "-", "")] + truth[("canary", "503", "URX", "")]
    assert truth[("canary", "200", "-", "")] > 0 and truth[("canary", "503", "URX", "")] > 0  # both born inside
    assert any("2 series began inside the window" in n for n in got.notes)


def test_destination_reporter_is_counted_alone(client: PrometheusClient) -> None:
    window = Window(T0, T0 + STEP * 479)
    got = count_window(client, istio_requests(SVC, reporter="destination"), window)
    want = sum(v for n, labels, incs, _ in BACKFILL.series
               if n == REQ and labels["reporter"] == "destination" and labels["destination_version"] == "canary"
               for k, v in incs.items() if T0 < T0 + STEP * k <= window.until)
    assert got.counts["canary"] == want


def test_a_selector_mixing_reporters_is_refused(client: PrometheusClient) -> None:
    spec = promql('istio_requests_total{destination_service_name="recommendationservice"}')
    with pytest.raises(TelemetryQueryError, match="mixes reporters"):
        count_window(client, spec, Window(T0, T0 + 3600))


def test_latency_histograms_are_exact(client: PrometheusClient) -> None:
    window = Window(T0 + STEP * 50.5, T0 + STEP * 400)
    hist = latency_window(client, istio_duration_buckets(SVC), window)
    truth = BACKFILL.truth(window.since, window.until, "istio_request_duration_milliseconds_bucket")
    for version in ("production", "canary"):
        want = tuple(truth[(version, "200", "-", "+Inf" if le == math.inf else f"{le:g}")] for le in BUCKETS)
        assert hist[version].cumulative == want
        assert hist[version].bounds == BUCKETS


def test_empty_window_gives_zero_counts_with_a_note(client: PrometheusClient) -> None:
    got = count_window(client, istio_requests(SVC), Window(T0 - 86400, T0 - 80000))
    assert got.empty and got.counts == {} and got.unattributed == {}
    assert any("no requests" in n for n in got.notes)


def test_envoy_candidates_with_no_series_say_so(client: PrometheusClient) -> None:
    got = count_window(client, envoy_candidates(SVC), Window(T0, T0 + 600))
    assert got.empty and any("no series for any of" in n for n in got.notes)


def test_a_prometheus_error_is_one_line(client: PrometheusClient) -> None:
    with pytest.raises(TelemetryQueryError) as exc:
        count_window(client, promql('istio_requests_total{reporter=~"("}'), Window(T0, T0 + 600))
    message = str(exc.value)
    assert "\n" not in message and "HTTP 400 bad_data" in message and "parse error" in message
    assert exc.value.status == 400


def test_prometheus_down_is_unreachable(tmp_path: Path) -> None:
    from conftest import free_port

    client = PrometheusClient.from_url(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(TelemetryUnreachable, match="cannot reach") as exc:
        count_window(client, istio_requests(SVC), Window(T0, T0 + 60))
    assert "\n" not in str(exc.value)


# ------------------------------------------------------------------------------------------------- live scrape


def _wait_ingested(prom: Prometheus, labels: dict[str, str], value: float, after: float) -> float:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))

    def seen() -> float | None:
        latest = prom.latest_sample(f'{REQ}{{{inner},job="splitproof-test"}}')
        return latest[0] if latest and latest[1] == value and latest[0] > after else None

    return float(wait_until(seen, 20, f"a scrape of {inner} = {value}"))


def _idle_mark(prom: Prometheus, labels: dict[str, str], value: float) -> float:
    """A time after which no change has been made yet, once a scrape later than it is stored: an idle edge."""
    mark = time.time()
    _wait_ingested(prom, labels, value, mark)
    return mark


def test_live_scrape_counts_equal_what_was_exposed(prom: Prometheus, exposition: Exposition,
                                                   client: PrometheusClient) -> None:
    a, b, c = (_labels("source", "production", "live-a"), _labels("source", "canary", "live-b"),
               _labels("source", "production", "live-c"))
    for labels, v in ((a, 100), (b, 30), (c, 50)):
        exposition.set(REQ, labels, v)
    _wait_ingested(prom, c, 50, 0)
    since = _idle_mark(prom, c, 50)
    exposition.add(REQ, a, 40)
    exposition.add(REQ, b, 10)
    exposition.add(REQ, c, 5)
    t = _wait_ingested(prom, c, 55, since)
    exposition.set(REQ, c, 7)  # the proxy restarted: its counter is back near 0
    t = _wait_ingested(prom, c, 7, t)
    d = _labels("source", "canary", "live-d", "503", "-")  # a new canary pod's series, inside the window
    u = _labels("source", "unknown", "live-a", "503", "UH")
    exposition.set(REQ, d, 3)
    exposition.set(REQ, u, 2)
    exposition.set(REQ, _labels("destination", "canary", "live-b"), 999)
    exposition.add(REQ, a, 5)
    t = _wait_ingested(prom, d, 3, t)
    _wait_ingested(prom, a, 145, since)
    until = _idle_mark(prom, a, 145)
    got = count_window(client, istio_requests(SVC), Window(since, until))
    assert dict(got.counts) == {"production": 40 + 5 + 5 + 7, "canary": 10 + 3}
    assert dict(got.unattributed) == {"destination_version=unknown, response_flags UH (no healthy upstream host)": 2}
    assert got.by_status[("canary", StatusKey("503", "14", "-"))] == 3
    assert any("1 counter reset" in n for n in got.notes) and any("series began" in n for n in got.notes)


def test_watch_batches_add_up_to_what_was_exposed(prom: Prometheus, exposition: Exposition,
                                                  client: PrometheusClient) -> None:
    e = _labels("source", "canary", "watch-e")
    f = _labels("source", "production", "watch-f")
    exposition.set(REQ, e, 10)
    exposition.set(REQ, f, 20)
    _wait_ingested(prom, f, 20, 0)
    start = _idle_mark(prom, f, 20)
    plan = [(e, 4), (f, 16), (e, 1), (f, 4)]
    want: Counter[str] = Counter({"canary": 5, "production": 20})
    got: Counter[str] = Counter()
    batches = []
    for batch in watch(client, istio_requests(SVC), 1.0, start=start, duration=30):
        batches.append(batch)
        got.update(batch.counts)
        if plan:
            labels, n = plan.pop(0)
            exposition.add(REQ, labels, n)
        elif got == want:
            break
    assert got == want
    assert all(b.window.until > b.window.since for b in batches)
    assert [b.window.since for b in batches[1:]] == [b.window.until for b in batches[:-1]]


def test_scrape_intervals(client: PrometheusClient) -> None:
    # target discovery can lag the server's readiness by a moment
    assert wait_until(client.scrape_intervals, 20, "an active target") == {"splitproof-test": 1.0}
