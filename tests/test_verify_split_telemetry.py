"""verify-split on telemetry sources, end to end through its command line: a real Prometheus holding series
backfilled with promtool (exact, known counts two days back) and a live 1 s scrape for ``--watch``; an access log and
Envoy admin answers written the way the real ones are. The gate's verdicts, exit codes, the JSON ``telemetry`` field
(statuses and latency for the health judge), the HTML chart of the batches, the one-line errors."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import in_process
from promharness import Exposition, Prometheus, missing_prometheus, wait_until
from test_verdict_schema import DOCS, TELEMETRY

from splitproof.verifier.cli import main
from splitproof.verifier.reports.jsonout import VERDICT_SCHEMA

pytestmark = pytest.mark.skipif(missing_prometheus() is not None, reason=missing_prometheus() or "")

REQ = "istio_requests_total"
STEP = 15
T0 = (int(time.time()) // 3600) * 3600 - 2 * 86400
# Window A: 800 production / 200 canary (+ 5 unknown UH, and 40 canary 503s inside the canary's count); window B:
# 500/500; window C: nothing. Each 100 steps (25 min) long, idle edges between them.
A, B, C = (10, 110), (200, 300), (400, 500)


def _labels(reporter: str, version: str, code: str = "200", flags: str = "-", grpc: str = "0") -> dict[str, str]:
    return {"reporter": reporter, "destination_service_name": "recommendationservice",
            "destination_service_namespace": "online-boutique", "destination_version": version,
            "response_code": code, "grpc_response_status": grpc, "response_flags": flags, "pod": "frontend-0"}


def _series() -> list[tuple[dict[str, str], dict[int, int]]]:
    def spread(total: int, span: tuple[int, int]) -> dict[int, int]:
        steps = list(range(span[0] + 1, span[1]))
        out = {k: total // len(steps) for k in steps}
        out[steps[0]] += total - sum(out.values())
        return out

    def both(a: int, b: int) -> dict[int, int]:
        return {**spread(a, A), **spread(b, B)} if b else spread(a, A)

    return [(_labels("source", "production"), both(800, 500)),
            (_labels("source", "canary"), both(160, 500)),
            (_labels("source", "canary", "200", "-", "14"), both(40, 0)),
            (_labels("source", "unknown", "503", "UH", "-"), both(5, 0)),
            (_labels("destination", "canary"), both(300, 300))]  # the other reporter: never summed in


def _openmetrics() -> str:
    lines = ["# TYPE istio_requests counter"]
    for labels, incs in _series():
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        value = 0
        for k in range(0, 520):
            value += incs.get(k, 0)
            lines.append(f"{REQ}{{{inner}}} {value} {T0 + STEP * k}")
    return "\n".join([*lines, "# EOF"]) + "\n"


def _window(span: tuple[int, int]) -> list[str]:
    return ["--since", str(T0 + STEP * span[0] + 5), "--until", str(T0 + STEP * span[1] - 5)]


@pytest.fixture(scope="module")
def exposition() -> Iterator[Exposition]:
    exp = Exposition()
    yield exp
    exp.close()


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory, exposition: Exposition) -> Iterator[Prometheus]:
    server = Prometheus(tmp_path_factory.mktemp("prometheus"), exposition.address, _openmetrics())
    yield server
    server.stop()


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict, str]:
    code, out, err = in_process(main, capsys, *argv, "--json", "-", "--no-progress")
    return code, json.loads(out) if out.strip() else {}, err


def test_80_20_window_passes_with_exact_counts_and_statuses(prom: Prometheus, capsys: pytest.CaptureFixture[str],
                                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    html, junit, summary = tmp_path / "r.html", tmp_path / "j.xml", tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, doc, _err = _run(capsys, "--expected", "20", "--prometheus", prom.url, *_window(A),
                           "--max-unattributed", "2", "--html", str(html), "--junit", str(junit))
    assert "PASS" in summary.read_text() and 'name="canary share 20%' in junit.read_text()
    assert code == 0, doc["reason"]
    assert doc["outcome"] == "PASS" and doc["method"] == "fixed-n"
    tele = doc["telemetry"]
    assert set(doc) == DOCS[VERDICT_SCHEMA] | {"expected_source", "expected", "target", "telemetry"}
    assert set(tele) == DOCS[TELEMETRY] and all(set(r) == {"version", "response_code", "grpc_status", "flags",
                                                            "count"} for r in tele["by_status"])
    assert tele["counts"] == {"production": 800, "canary": 200}
    assert sum(tele["unattributed"].values()) == 5 and "UH" in next(iter(tele["unattributed"]))
    rows = {(r["version"], r["grpc_status"]): r["count"] for r in tele["by_status"]}
    assert rows[("canary", "14")] == 40 and rows[("canary", "0")] == 160  # errors count for the routed version
    assert doc["n"] == 1000 and doc["unattributed"] == 5
    assert any('reporter="source"' in n for n in doc["notes"])
    assert "share over time" in html.read_text().lower() or "<svg" in html.read_text()


def test_50_50_window_fails(prom: Prometheus, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc, _ = _run(capsys, "--expected", "20", "--prometheus", prom.url, *_window(B))
    assert code == 1 and doc["outcome"] == "FAIL"
    assert doc["telemetry"]["counts"] == {"production": 500, "canary": 500}


def test_destination_reporter_is_read_alone(prom: Prometheus, capsys: pytest.CaptureFixture[str]) -> None:
    _code, doc, _ = _run(capsys, "--expected", "20", "--prometheus", prom.url, *_window(A),
                         "--reporter", "destination")
    assert doc["telemetry"]["counts"] == {"canary": 300}


def test_empty_window_is_inconclusive_saying_so(prom: Prometheus, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc, _ = _run(capsys, "--expected", "20", "--prometheus", prom.url, *_window(C))
    assert code == 3 and doc["outcome"] == "INCONCLUSIVE" and doc["total"] == 0
    assert any("no requests of the service" in n for n in doc["notes"])


def test_sequential_on_a_window_decides_at_its_end(prom: Prometheus, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc, _ = _run(capsys, "--expected", "20", "--prometheus", prom.url, *_window(B), "--sequential")
    assert code == 1 and doc["method"] == "sequential"


def test_a_prometheus_error_is_one_line_exit_2(prom: Prometheus, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = in_process(main, capsys, "--expected", "20", "--prometheus", prom.url, "--since", "10m",
                                 "--promql", 'x{a="b"}', "--version-label", "bad-label")
    assert code == 2 and err.count("\n") == 1 and "version-label" in err
    code, _out, err = in_process(main, capsys, "--expected", "20", "--prometheus", prom.url + "/nothing",
                                 "--since", "10m")
    assert code == 2 and err.count("\n") == 1 and "404" in err


def test_prometheus_down_is_exit_4(capsys: pytest.CaptureFixture[str]) -> None:
    from helpers import free_port

    code, _out, err = in_process(main, capsys, "--expected", "20", "--prometheus",
                                 f"http://127.0.0.1:{free_port()}", "--since", "10m")
    assert code == 4 and err.count("\n") == 1


def test_token_from_env_is_sent_and_never_printed(prom: Prometheus, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPLITPROOF_TEST_TOKEN", "s3cret-token-value")
    code, out, err = in_process(main, capsys, "--expected", "20", "--prometheus", prom.url, *_window(A),
                                "--token-env", "SPLITPROOF_TEST_TOKEN", "--json", "-", "--max-unattributed", "2")
    assert code == 0 and "s3cret" not in out + err
    code, _out, err = in_process(main, capsys, "--expected", "20", "--prometheus", prom.url, *_window(A),
                                 "--token-env", "SPLITPROOF_UNSET_VARIABLE")
    assert code == 2 and "SPLITPROOF_UNSET_VARIABLE" in err


def test_watch_fails_a_live_misroute_at_a_poll_boundary(prom: Prometheus, exposition: Exposition,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    prod, canary = {**_labels("source", "production"), "pod": "live"}, {**_labels("source", "canary"), "pod": "live"}
    exposition.set(REQ, prod, 0)
    exposition.set(REQ, canary, 0)
    wait_until(lambda: prom.query(f'{REQ}{{pod="live"}}'), 30, "the live series")
    import threading

    stop = threading.Event()

    def traffic() -> None:  # 50/50 while the split says 20: a misroute
        while not stop.wait(0.2):
            exposition.add(REQ, prod, 50)
            exposition.add(REQ, canary, 50)

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    try:
        code, doc, _ = _run(capsys, "--expected", "20", "--prometheus", prom.url, "--watch", "--duration", "60")
    finally:
        stop.set()
        thread.join()
    assert code == 1 and doc["outcome"] == "FAIL" and doc["method"] == "sequential"
    assert doc["telemetry"]["batches"] >= 1 and doc["telemetry"]["interval_s"] == 1.0
    assert any("scrape interval" in n for n in doc["notes"])


@pytest.mark.parametrize("argv,needle", [
    (["--results", "x.jsonl", "--since", "10m"], "telemetry source"),
    (["--prometheus", "http://127.0.0.1:9"], "needs a window"),
    (["--prometheus", "http://127.0.0.1:9", "--watch", "--since", "10m"], "--watch counts from now"),
    (["--access-log", "-", "--watch"], "--watch applies"),
    (["--envoy-admin", "http://127.0.0.1:9", "--since", "1m"], "two snapshots"),
    (["--access-log", "-", "--promql", "x"], "only apply to --prometheus"),
    (["--prometheus", "http://127.0.0.1:9", "--since", "soon"], "not a time"),
    (["--prometheus", "http://127.0.0.1:9", "--since", "10m", "--class", "canary=2"], "--class/--header"),
])
def test_bad_telemetry_options_are_one_line_exit_2(argv: list[str], needle: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = in_process(main, capsys, "--expected", "20", *argv)
    assert code == 2 and needle in err and err.count("\n") == 1, err


def test_access_log_file_and_stdin(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    from test_telemetry_accesslog import text

    lines = [text("production", t=f"2025-11-25T22:10:{i % 60:02d}.000Z") for i in range(80)]
    lines += [text("canary", t="2025-11-25T22:10:30.000Z") for _ in range(15)]
    lines += [text("canary", t="2025-11-25T22:10:31.000Z", code="503", flags="URX", duration="40")
              for _ in range(5)]
    lines += [text("canary", t="2025-11-25T23:59:00.000Z") for _ in range(50)]  # outside the window
    lines += [text("", direction="inbound") for _ in range(7)]  # the server side: skipped
    log = tmp_path / "access.log"
    log.write_text("\n".join(lines) + "\n")
    window = ["--since", "2025-11-25T22:00:00Z", "--until", "2025-11-25T23:00:00Z"]
    code, doc, _ = _run(capsys, "--expected", "20", "--access-log", str(log), *window)
    tele = doc["telemetry"]
    assert tele["counts"] == {"production": 80, "canary": 20} and doc["outcome"] in ("PASS", "INCONCLUSIVE")
    assert code in (0, 3)
    assert {(r["version"], r["response_code"], r["flags"]): r["count"] for r in tele["by_status"]}[
        ("canary", "503", "URX")] == 5
    assert tele["latency"]["canary"]["cumulative"][-1] == 20
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(log.read_bytes())))
    _code, doc2, _ = _run(capsys, "--expected", "20", "--access-log", "-", *window)
    assert doc2["telemetry"]["counts"] == tele["counts"]


def test_promql_selector_of_ones_own(prom: Prometheus, capsys: pytest.CaptureFixture[str]) -> None:
    _code, doc, _ = _run(capsys, "--expected", "20", "--prometheus", prom.url, *_window(A), "--promql",
                      'istio_requests_total{reporter="source",pod="frontend-0"}', "--version-label",
                      "destination_version")
    assert doc["telemetry"]["counts"] == {"production": 800, "canary": 200}
    _code, doc, _ = _run(capsys, "--expected", "20", "--prometheus", prom.url, *_window(A), "--promql",
                      'istio_requests_total{reporter="source"}', "--version-label", "response_code")
    assert doc["telemetry"]["counts"] == {"200": 1000, "503": 5}  # whatever label the user names is the version
