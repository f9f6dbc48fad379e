"""The local mesh's real telemetry, read back by verify-split's passive sources -- one mesh + a real Prometheus for
the module (``LocalMesh(prometheus=True)``): the same gRPC traffic, counted from the callers' own results ("the
records"), must come out EXACTLY the same from Prometheus (Istio's metrics and Envoy's), from the TEXT access log and
from Envoy's admin counters, for windows with idle edges -- also across an Envoy and an instance restart.

Idle edges without sleeping: a window edge is a time ``t`` after every line of earlier traffic reached the exporter
(polled on its /metrics), and the edge is the time of the first Prometheus scrape after that.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from flakebudget import ALPHA_ARGS
from helpers import in_process, run_installed
from promharness import PROMTOOL, missing_prometheus

from splitproof.protos import demo_pb2, demo_pb2_grpc
from splitproof.setup.manifests import CanaryParams
from splitproof.setup.mesh import LocalMesh
from splitproof.setup.mesh.exporter import LogTail
from splitproof.setup.proc import wait_until
from splitproof.verifier.cli import main
from splitproof.verifier.telemetry import EnvoyAdmin, Service, count_access_log, counts_between
from splitproof.verifier.telemetry.promtext import parse
from splitproof.verifier.telemetry.window import Window

pytestmark = pytest.mark.skipif(missing_prometheus() is not None, reason=missing_prometheus() or "")

REQUEST = demo_pb2.ListRecommendationsRequest(user_id="test", product_ids=["OLJCESPC7Z"])
BY_COUNT = {5: "production", 2: "canary"}
SVC = Service()


def call(entry: str, n: int, window: int = 32) -> Counter[str]:
    """n unary calls over one channel: the version each reply came from (by its item count), or the error."""
    out: Counter[str] = Counter()
    with grpc.insecure_channel(entry) as channel:
        stub = demo_pb2_grpc.RecommendationServiceStub(channel)
        pending: list[grpc.Future] = []

        def settle(fut: grpc.Future) -> None:
            try:
                out[BY_COUNT.get(len(fut.result().product_ids), "other")] += 1
            except grpc.RpcError as exc:
                out[f"error:{exc.code().name}"] += 1

        for _ in range(n):
            pending.append(stub.ListRecommendations.future(REQUEST, timeout=10))
            if len(pending) >= window:
                settle(pending.pop(0))
        for fut in pending:
            settle(fut)
    return out


class Observer:
    """The mesh's exporter and Prometheus, read the way the test needs them."""

    def __init__(self, mesh: LocalMesh) -> None:
        self.mesh = mesh
        self.sent = 0  # source-side requests of the service the exporter must have seen
        self.latest: dict[str, float] = {}

    def exported(self) -> int:
        with urllib.request.urlopen(self.mesh.exporter_url + "/metrics", timeout=5) as resp:
            text = resp.read().decode()
        return int(sum(s.value for s in parse(text.splitlines()) if s.name == "istio_requests_total"
                       and s.labels.get("reporter") == "source"
                       and s.labels.get("destination_service_name") == SVC.name))

    def last_scrape(self) -> float:
        """The time both jobs (the exporter, Envoy's stats) were last scraped by: the older of their last scrapes
        (0 until both were). A mark waits for this to pass its time, then takes the newer one as the edge."""
        q = urllib.parse.urlencode({"query": 'up{job=~"istio-mesh|envoy-stats"}[30s]'})
        with urllib.request.urlopen(f"{self.mesh.prometheus_url}/api/v1/query?{q}", timeout=5) as resp:
            result = json.load(resp)["data"]["result"]
        self.latest = {r["metric"]["job"]: max(float(t) for t, _v in r["values"]) for r in result if r["values"]}
        return min(self.latest.values()) if len(self.latest) == 2 else 0.0

    def settle(self) -> None:
        """Every request so far is at the exporter (a SIGKILLed Envoy loses what it has not flushed yet, <= 100 ms
        of access-log lines -- as a killed sidecar loses the counter increments Prometheus has not scraped)."""
        wait_until(lambda: self.exported() >= self.sent, 30, f"{self.sent} requests at the exporter", 0.05)
        assert self.exported() == self.sent

    def mark(self) -> float:
        """An idle edge: the time of a Prometheus scrape that began after every request so far was exported."""
        self.settle()
        t = time.time()
        wait_until(lambda: self.last_scrape() > t, 30, "a scrape of both jobs after the mark", 0.1)
        return max(self.latest.values())  # every sample at or before the edge has all the traffic so far

    def traffic(self, n: int) -> Counter[str]:
        got = call(self.mesh.grpc_entry, n)
        self.sent += sum(got.values())  # every call that reached Envoy is one source-side request
        return got


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with LocalMesh(CanaryParams(), state_dir=tmp_path_factory.mktemp("mesh") / "state", prometheus=True) as m:
        yield m


@pytest.fixture(scope="module")
def obs(mesh: LocalMesh) -> Observer:
    o = Observer(mesh)
    wait_until(lambda: o.last_scrape() > 0, 60, "Prometheus' first scrape of the exporter", 0.1)
    return o


def verify(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    """verify-split at the suite's TEST_ALPHA (tests/flakebudget.py): a correct split is falsely FAILed about once in
    ten thousand runs, not once in a hundred (an honest gate's false alarms happen at its alpha; several verdicts per
    run here)."""
    code, out, _err = in_process(main, capsys, "--expected", "20", *ALPHA_ARGS, *argv, "--json", "-", "--no-progress")
    return code, json.loads(out)


def window_args(since: float, until: float) -> list[str]:
    return ["--since", f"{since:.3f}", "--until", f"{until:.3f}"]


def test_80_20_traffic_passes_with_the_records_counts_from_every_source(
        mesh: LocalMesh, obs: Observer, capsys: pytest.CaptureFixture[str]) -> None:
    admin = EnvoyAdmin.from_url(mesh.admin_url)
    since = obs.mark()
    before = admin.snapshot(SVC)
    records = obs.traffic(4000)  # PASS at TEST_ALPHA misses ~1e-4 of the time from 4000 on
    until = obs.mark()
    after = admin.snapshot(SVC)
    assert set(records) == {"production", "canary"}, records
    want = dict(records)
    code, doc = verify(capsys, "--prometheus", mesh.prometheus_url, *window_args(since, until))
    assert doc["telemetry"]["counts"] == want and doc["unattributed"] == 0
    assert code == 0 and doc["outcome"] == "PASS", doc["reason"]
    rows = doc["telemetry"]["by_status"]
    assert {(r["version"], r["response_code"], r["grpc_status"]) for r in rows} <= {
        ("production", "200", "0"), ("canary", "200", "0")}
    assert sum(h["cumulative"][-1] for h in doc["telemetry"]["latency"].values()) == sum(want.values())
    _code, dest = verify(capsys, "--prometheus", mesh.prometheus_url, *window_args(since, until),
                         "--reporter", "destination")
    assert dest["telemetry"]["counts"] == want  # no retries: each request reached a server once
    _code, envoy = verify(capsys, "--prometheus", mesh.prometheus_url, *window_args(since, until),
                          "--metric", "envoy")
    assert envoy["telemetry"]["counts"] == want  # Envoy's own per-subset counters, via /stats/prometheus
    log = mesh.access_log_dir / "access-mesh.recommendationservice.log"
    assert dict(count_access_log(str(log), SVC, Window(since, until)).counts) == want
    code, doc = verify(capsys, "--access-log", str(log), *window_args(since, until))
    assert doc["telemetry"]["counts"] == want and code == 0
    assert dict(counts_between(before, after, SVC).counts) == want


def test_envoy_admin_source_through_the_command_line(mesh: LocalMesh, obs: Observer, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """``--envoy-admin URL --duration S``: the traffic between its two snapshots, exactly (the traffic is sent right
    after the first snapshot, so the test needs no timing)."""
    from splitproof.verifier.telemetry.envoysource import EnvoyAdmin as Admin

    obs.mark()
    got: list[Counter[str]] = []
    real = Admin.snapshot

    def snapshot(self: Admin, service: Service, clock=time.time):  # type: ignore[no-untyped-def]
        snap = real(self, service, clock)
        if not got:
            got.append(obs.traffic(600))
            obs.settle()  # every access-log line written: Envoy counted each request before logging it
        return snap

    monkeypatch.setattr(Admin, "snapshot", snapshot)
    code, doc = verify(capsys, "--envoy-admin", mesh.admin_url, "--duration", "0.1")
    assert doc["telemetry"]["counts"] == dict(got[0]) and doc["telemetry"]["source_kind"] == "envoy-admin"
    assert code in (0, 3), (doc["reason"], doc["telemetry"], doc["notes"])  # FAILed once in a fresh-clone run


def test_50_50_traffic_fails(mesh: LocalMesh, obs: Observer, capsys: pytest.CaptureFixture[str]) -> None:
    mesh.set_weights(50)
    try:
        since = obs.mark()
        records = obs.traffic(1500)
        until = obs.mark()
    finally:
        mesh.set_weights(20)
    code, doc = verify(capsys, "--prometheus", mesh.prometheus_url, *window_args(since, until))
    assert doc["telemetry"]["counts"] == dict(records)
    assert code == 1 and doc["outcome"] == "FAIL"


def test_watch_fails_a_live_misroute_at_a_poll_boundary(mesh: LocalMesh, obs: Observer,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import threading

    obs.mark()
    mesh.set_weights(50)
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            obs.traffic(50)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        code, doc = verify(capsys, "--prometheus", mesh.prometheus_url, "--watch", "--duration", "60")
        envoy_code, envoy_doc = verify(capsys, "--prometheus", mesh.prometheus_url, "--watch", "--duration", "60",
                                       "--metric", "envoy")  # upstream Envoy's tag spelling, found before watching
    finally:
        stop.set()
        thread.join()
        mesh.set_weights(20)
    assert code == 1 and doc["outcome"] == "FAIL" and doc["method"] == "sequential", doc["reason"]
    tele = doc["telemetry"]
    assert tele["interval_s"] == 1.0 and tele["batches"] >= 1 and tele["window"]["until"] > tele["window"]["since"]
    assert sum(h["cumulative"][-1] for h in tele["latency"].values()) == sum(tele["counts"].values())
    assert envoy_code == 1 and envoy_doc["n"] > 0, envoy_doc["reason"]


def test_counts_stay_exact_across_an_envoy_and_an_instance_restart(
        mesh: LocalMesh, obs: Observer, capsys: pytest.CaptureFixture[str]) -> None:
    since = obs.mark()
    records = obs.traffic(400)
    obs.mark()  # Envoy's counters so far are scraped: its SIGKILL loses nothing Prometheus had not seen
    envoy = next(p for p in mesh.status().processes if p["name"] == "envoy")
    restarts = envoy["restarts"]
    os.kill(envoy["pid"], signal.SIGKILL)  # Envoy's own counters restart from 0: a counter reset
    wait_until(lambda: any(p["name"] == "envoy" and p["alive"] and p["restarts"] == restarts + 1
                           for p in mesh.status().processes), 30, "Envoy to be restarted", 0.05)
    mesh.wait_ready()
    records += obs.traffic(400)
    obs.settle()
    canary = next(p for p in mesh.status().processes if p["name"].startswith("recommendationservice-canary"))
    os.kill(canary["pid"], signal.SIGKILL)
    wait_until(lambda: any(p["name"] == canary["name"] and p["restarts"] >= 1 for p in mesh.status().processes),
               30, "the canary's crash to be seen", 0.05)
    mesh.wait_ready()
    records += obs.traffic(400)
    until = obs.mark()
    assert set(records) == {"production", "canary"}, records  # no call failed: the restarts were waited for
    code, doc = verify(capsys, "--prometheus", mesh.prometheus_url, *window_args(since, until))
    assert doc["telemetry"]["counts"] == dict(records) and code in (0, 3)
    _code, envoy_doc = verify(capsys, "--prometheus", mesh.prometheus_url, *window_args(since, until),
                              "--metric", "envoy")
    assert envoy_doc["telemetry"]["counts"] == dict(records)  # across Envoy's own counter reset
    assert any("counter reset" in n for n in envoy_doc["notes"]), envoy_doc["notes"]


def test_an_idle_window_is_inconclusive_saying_so(mesh: LocalMesh, obs: Observer,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    since = obs.mark()
    until = obs.mark()
    code, doc = verify(capsys, "--prometheus", mesh.prometheus_url, *window_args(since, until))
    assert code == 3 and doc["total"] == 0 and any("no requests" in n for n in doc["notes"])


def test_the_exporter_output_is_valid_exposition_with_istio_labels(mesh: LocalMesh, obs: Observer) -> None:
    with urllib.request.urlopen(mesh.exporter_url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    done = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    problems = [line for line in done.stderr.splitlines() if line.strip()
                and 'use base unit "seconds" instead of "milliseconds"' not in line]  # Istio's own unit
    assert problems == [] and done.returncode in (0, 3), done.stderr
    samples = list(parse(text.splitlines()))
    reqs = [s for s in samples if s.name == "istio_requests_total"]
    assert {s.labels["reporter"] for s in reqs} == {"source", "destination"}
    from splitproof.setup.mesh.exporter import LABELS

    assert all(set(s.labels) == set(LABELS) for s in reqs)
    buckets = {s.labels["le"] for s in samples if s.name == "istio_request_duration_milliseconds_bucket"}
    assert {"0.5", "1", "5", "10", "3600000", "+Inf"} <= buckets
    st = mesh.status()
    assert st.prometheus_url == mesh.prometheus_url and any(p["name"] == "prometheus" for p in st.processes)


def test_the_tail_counts_each_line_once_across_rotation_and_restart(tmp_path: Path) -> None:
    log, offsets = tmp_path / "requests.jsonl", tmp_path / "offset.json"
    seen: list[bytes] = []
    tail = LogTail(log, offsets)
    assert tail.read() == []
    with open(log, "ab") as f:
        f.write(b"1\n2\n3")  # a partial last line is not read until complete
    seen += tail.read()
    with open(log, "ab") as f:
        f.write(b"\n4\n")
    seen += tail.read()
    tail.close()
    tail = LogTail(log, offsets)  # a restarted reader resumes where the last one stopped
    with open(log, "ab") as f:
        f.write(b"5\n")
    seen += tail.read()
    with open(log, "ab") as f:
        f.write(b"6\n")
    os.rename(log, tmp_path / "requests.jsonl.1")  # rotated: the rest of the old file, then the new one
    with open(log, "ab") as f:
        f.write(b"7\n")
    seen += tail.read()
    assert seen == [b"1", b"2", b"3", b"4", b"5", b"6", b"7"]


def test_up_prometheus_without_the_binary_is_exit_5(tmp_path: Path) -> None:
    done = run_installed("canary-setup", "local", "up", "--prometheus", "--state-dir", str(tmp_path / "s"),
                         "--ingress-port", "0", "--grpc-port", "0",
                         env={**os.environ, "SPLITPROOF_PROMETHEUS": str(tmp_path / "no-prometheus")})
    assert done.returncode == 5 and "prometheus" in done.stderr and done.stderr.count("\n") == 1, done.stderr
