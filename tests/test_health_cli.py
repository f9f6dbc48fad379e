"""``verify-split --health`` over results files (fixed-n and ``--sequential`` replay), in this process: the gate's
exit code and reason, attribution of failed calls (header vs payload), the outputs' health rows, bad options."""

from __future__ import annotations

import json
import random
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from splitproof.verifier.cli import main
from splitproof.verifier.health import responses as judge_input
from splitproof.verifier.health.options import HealthOptions
from splitproof.verifier.health.responses import ResponseHealth
from splitproof.verifier.inputs import records as record_format
from splitproof.verifier.inputs.records import Record, parse_record
from splitproof.verifier.tally import Tally
from splitproof.verifier.verdict import Method


def write(path: Path, n: int, *, canary_errors: float = 0.0, canary_delay_ms: float = 0.0, share: float = 0.2,
          header: bool = True, seed: int = 1) -> Path:
    """A Locust-like results file: gRPC records, canary failures with INTERNAL, latencies ~4 ms."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        version = "canary" if rng.random() < share else "production"
        latency = rng.lognormvariate(1.4, 0.3) + (canary_delay_ms if version == "canary" else 0.0)
        if version == "canary" and rng.random() < canary_errors:
            rec = Record(1000 + i, "grpc", None, version if header else None, "error:INTERNAL", latency,
                         "RecommendationUser", "header" if header else None)
        else:
            rec = Record(1000 + i, "grpc", 2 if version == "canary" else 5, version, "ok", latency,
                         "RecommendationUser", "header" if header else None)
        lines.append(rec.to_json())
    path.write_text("\n".join(lines) + "\n")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict, str]:
    code = main([*argv, "--json", "-", "--no-progress"])
    out = capsys.readouterr()
    return code, json.loads(out.out), out.err


def test_a_canary_failing_5_percent_fails_on_health_with_the_split_pass(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, data, table = run(capsys, "--expected", "20", "--results", str(write(tmp_path / "r", 3000,
                                                                               canary_errors=0.05)), "--health")
    assert code == 1 and data["outcome"] == "FAIL" and data["split"]["outcome"] == "PASS"
    assert data["reason"].startswith("health FAIL: canary errors 4.") and "vs production 0.0%" in data["reason"]
    errors = data["health"]["metrics"][0]
    assert errors["outcome"] == "FAIL" and errors["rows"][0]["bad"] > 20 and data["health"]["attribution"] == "header"
    assert data["unattributed"] == 0  # a header names the version a failed call was routed to: it counts
    assert "canary health" in table and "gate FAIL" in table


def test_a_slower_canary_fails_on_latency(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, data, _ = run(capsys, "--expected", "20", "--results", str(write(tmp_path / "r", 2000,
                                                                           canary_delay_ms=40)), "--health")
    latency = data["health"]["metrics"][1]
    assert code == 1 and latency["outcome"] == "FAIL" and "slow (>" in data["reason"]
    assert latency["threshold_ms"] is not None and latency["threshold_ms"] < 20  # production's warm-up p95


def test_a_healthy_canary_passes_fixed_and_sequential(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(write(tmp_path / "r", 4000, share=0.5))
    code, data, _ = run(capsys, "--expected", "50", "--results", path, "--health")
    assert code == 0 and data["outcome"] == "PASS" and data["health"]["outcome"] == "PASS", data["reason"]
    code, data, _ = run(capsys, "--expected", "50", "--results", path, "--health", "--sequential")
    assert code == 0 and data["health"]["method"] == "sequential" and data["input"]["stopped_early"], data["reason"]


def test_sequential_replay_stops_at_the_health_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(write(tmp_path / "r", 20000, canary_errors=0.05))
    code, data, _ = run(capsys, "--expected", "20", "--results", path, "--health", "--sequential")
    assert code == 1 and data["health"]["outcome"] == "FAIL" and data["input"]["stopped_early"]
    assert data["total"] < 3000


def test_payload_attribution_cannot_judge_errors_and_says_so(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = str(write(tmp_path / "r", 3000, canary_errors=0.05, canary_delay_ms=40, header=False))
    code, data, _ = run(capsys, "--expected", "20", "--results", path, "--health")
    errors, latency = data["health"]["metrics"]
    assert errors["outcome"] is None and "errors cannot be attributed" in errors["reason"]
    assert latency["outcome"] == "FAIL" and code == 1  # what can be judged is judged
    assert data["health"]["attribution"].startswith("payload")


def test_the_html_report_has_the_health_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "r.html"
    code = main(["--expected", "20", "--results", str(write(tmp_path / "r", 1500, canary_errors=0.05)), "--health",
                 "--html", str(report)])
    capsys.readouterr()
    page = report.read_text()
    assert code == 1 and "<h1>FAIL</h1>" in page and "Canary health: FAIL" in page
    assert "id='health-error-chart'><svg" in page and "slow above" in page  # threshold on the latency chart


def test_junit_has_a_testcase_per_health_metric(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junit = tmp_path / "j.xml"
    summary = tmp_path / "summary.md"
    import os

    os.environ["GITHUB_STEP_SUMMARY"] = str(summary)
    try:
        main(["--expected", "20", "--results", str(write(tmp_path / "r", 3000, canary_errors=0.05)), "--health",
              "--junit", str(junit)])
    finally:
        del os.environ["GITHUB_STEP_SUMMARY"]
    capsys.readouterr()
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    health = [c for c in ET.parse(junit).getroot().iter("testcase") if c.get("classname") == "verify-split.health"]
    assert len(health) == 2
    assert health[0].find("failure") is not None and health[1].find("failure") is None
    assert cases["verdict"].find("failure").get("message").startswith("FAIL: health FAIL: canary errors")
    text = summary.read_text()
    assert "verify-split: FAIL" in text and "canary health: FAIL" in text


@pytest.mark.parametrize(("argv", "message"), [
    (["--health", "--max-error-increase", "0"], "--max-error-increase must be above 0"),
    (["--health", "--error-fail-margin", "2"], "--error-fail-margin must be from 0 to the PASS margin"),
    (["--health", "--latency-threshold-ms", "-5"], "--latency-threshold-ms must be a positive"),
    (["--health", "--latency-warmup", "3"], "--latency-warmup needs at least 20"),
    (["--latency-threshold-ms", "50"], "--latency-threshold-ms only applies with --health"),
    (["--health", "--weights", "production=100"], "--health needs a canary besides production"),
])
def test_bad_health_options_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                argv: list[str], message: str) -> None:
    path = str(write(tmp_path / "r", 50))
    base = ["--results", path] + ([] if "--weights" in argv else ["--expected", "20"])
    code = main([*base, *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err and "Traceback" not in err, err


def test_header_attributed_records_round_trip_on_the_fast_path() -> None:
    rec = Record(1.5, "grpc", None, "canary", "error:UNAVAILABLE", 3.0, "RecommendationUser", "header")
    line = rec.to_json()
    assert line.endswith(',"by":"header"}') and line == rec.to_json_reference()
    assert parse_record(line) == rec
    assert parse_record(line.replace('"by":"header"', '"by":"other"')).by == "other"  # the general path


def test_a_file_decides_attribution_from_its_first_successful_record() -> None:
    opts = HealthOptions(latency=False)
    health = ResponseHealth.for_expected(opts, {"production": 0.8, "canary": 0.2}, method=Method.FIXED_N,
                                         errors_attributable=None)
    tally = Tally({"production": 0.8, "canary": 0.2}, health_records=health)
    tally.record(Record(1, "grpc", None, "canary", "error:INTERNAL", 1.0, by="header"))  # held until a success
    tally.record(Record(2, "grpc", 5, "production", "ok", 1.0, by="header"))
    tally.record(Record(3, "grpc", None, None, "error:UNAVAILABLE", 1.0))  # no header: names no version
    tally.record(Record(4, "grpc", 2, "canary", "ok", 1.0))  # by payload in a header file: not an error sample
    verdict = tally.health_verdict()
    row = verdict.metric("errors").rows[0]
    assert (row.n, row.bad, row.baseline_n) == (1, 1, 1) and health.errors_attributable
    assert any("named no version" in n for n in verdict.notes) and any("by payload" in n for n in verdict.notes)
    assert tally.counts == {"canary": 2, "production": 1} and tally.unattributed == 1


def test_live_records_and_their_file_reach_the_same_health_verdict() -> None:
    # The Locust plugin judges the records it makes; verify-split judges the lines written for them, whose latency
    # is kept to the microsecond. Production's warm-up p95 (the slow threshold) and every slow/not-slow call must
    # come out the same: seen once as "canary slow (>5.72 ms)" live against "(>5.71 ms)" in the replay.
    rng = random.Random(7)
    records = []
    for i in range(3000):
        version = "canary" if rng.random() < 0.2 else "production"
        latency = 5.0 + rng.random() + (0.3 if version == "canary" else 0.0)  # full float precision, as measured
        records.append(Record(1000 + i, "grpc", 2 if version == "canary" else 5, version, "ok", latency,
                              "RecommendationUser", "header"))
    verdicts = []
    for fed in (records, [parse_record(rec.to_json()) for rec in records]):
        health = ResponseHealth.for_expected(HealthOptions(), {"production": 0.8, "canary": 0.2},
                                             method=Method.SEQUENTIAL, errors_attributable=True)
        tally = Tally({"production": 0.8, "canary": 0.2}, health_records=health)
        for rec in fed:
            tally.record(rec)
        verdicts.append(tally.health_verdict())
    live, replay = verdicts
    assert any(rec.latency_ms != parse_record(rec.to_json()).latency_ms for rec in records)
    assert live.metric("latency").criterion.threshold is not None
    assert live.metric("latency").criterion.threshold == replay.metric("latency").criterion.threshold
    assert live == replay
    assert judge_input.LATENCY_PLACES == record_format.LATENCY_PLACES  # the judge rounds as the file keeps
