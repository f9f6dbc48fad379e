"""docs/verdict-schema.md lists exactly the fields verify-split's JSON documents carry, object by object."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from helpers import http_server, send_body

from splitproof.verifier.cli import main
from splitproof.verifier.inputs.records import Record
from splitproof.verifier.reports.jsonout import PLAN_SCHEMA, VERDICT_SCHEMA

DOC = Path(__file__).resolve().parent.parent / "docs" / "verdict-schema.md"
CLI_EXTRAS = "verify-split adds"
TELEMETRY = "telemetry (with a telemetry source)"


def documented() -> dict[str, set[str]]:
    """Heading (or the paragraph before a table) -> the backticked names in the first column of its table."""
    tables: dict[str, set[str]] = {}
    heading = ""
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip().replace("`", "")
        elif line.startswith(CLI_EXTRAS):
            heading = CLI_EXTRAS
        elif m := re.match(r"\| `(\w+)` \|", line):
            tables.setdefault(heading, set()).add(m.group(1))
    return tables


DOCS = documented()


def write_results(path: Path, canary: float, n: int, bad_line: bool = False) -> Path:
    rng = random.Random(5)
    lines = []
    for i in range(n):
        version = "canary" if rng.random() < canary else "production"
        lines.append(Record(1000.0 + i, "grpc", 2 if version == "canary" else 5, version, "ok", 2.0).to_json())
    if bad_line:
        lines.append("{not json")
    path.write_text("\n".join(lines) + "\n")
    return path


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    main([*argv, "--json", "-", "--no-progress"])
    return json.loads(capsys.readouterr().out)


def check(data: dict, *, method: str, extras: set[str]) -> None:
    assert data["schema"] == VERDICT_SCHEMA and data["method"] == method
    assert set(data) == DOCS[VERDICT_SCHEMA] | extras
    assert extras <= DOCS[CLI_EXTRAS]
    for row in data["rows"]:
        assert set(row) == DOCS["rows[]"]
    assert set(data["unattributed_row"]) == DOCS["unattributed_row"]
    assert set(data["interval"]) == DOCS["interval"]
    assert set(data["parameters"]) == DOCS["parameters"]
    assert set(data["method_details"]) == DOCS[f"method_details ({method})"]


def test_a_fixed_n_replay_carries_the_documented_fields(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, "--expected", "20", "--results", str(write_results(tmp_path / "r.jsonl", 0.2, 1500, True)))
    check(data, method="fixed-n", extras={"expected_source", "expected", "input"})
    assert set(data["input"]) == DOCS["input (with --results)"]
    assert data["interval"]["kind"] == "clopper-pearson" and data["log_e_value"] is None
    assert data["unattributed_causes"] == {"malformed line": 1}


def test_a_sequential_replay_carries_the_documented_fields(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, "--expected", "20", "--sequential", "--results",
                    str(write_results(tmp_path / "r.jsonl", 0.5, 2000)))
    check(data, method="sequential", extras={"expected_source", "expected", "input"})
    assert data["outcome"] == "FAIL" and data["interval"]["kind"] == "confidence-sequence"
    assert data["log_e_value"] > 0 and data["parameters"]["power"] is None


class _Shop(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    rng = random.Random(2)

    def do_GET(self) -> None:  # noqa: N802
        items = 2 if self.rng.random() < 0.2 else 4
        cards = "".join('<div class="col-md-3">x</div>' for _ in range(items))
        send_body(self, 200, f'<html><section class="recommendations">{cards}</section></html>'.encode(), "text/html")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def shop() -> Iterator[str]:
    with http_server(_Shop) as url:
        yield url


def test_a_live_run_carries_the_documented_fields(shop: str, capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, "--expected", "20", "--url", shop, "--max-samples", "60", "--concurrency", "2")
    check(data, method="sequential", extras={"expected_source", "expected", "target"})
    assert data["target"] == shop and data["total"] == 60


def test_a_health_run_carries_the_documented_fields(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(3)
    lines = []
    for i in range(2500):
        version = "canary" if rng.random() < 0.2 else "production"
        failed = version == "canary" and rng.random() < 0.05
        lines.append(Record(1000.0 + i, "grpc", None if failed else (2 if version == "canary" else 5), version,
                            "error:INTERNAL" if failed else "ok", rng.uniform(2, 6), by="header").to_json())
    (tmp_path / "h.jsonl").write_text("\n".join(lines) + "\n")
    data = run_json(capsys, "--expected", "20", "--results", str(tmp_path / "h.jsonl"), "--health")
    check(data, method="fixed-n", extras={"expected_source", "expected", "input", "split", "health"})
    assert set(data["split"]) == DOCS["split (with --health)"]
    assert set(data["health"]) == DOCS["health (with --health)"] - {"destination"}  # that one: Prometheus only
    for metric in data["health"]["metrics"]:
        assert set(metric) == DOCS["health.metrics[]"]
        for row in metric["rows"]:
            assert set(row) == DOCS["health.metrics[].rows[]"]
    assert data["outcome"] == "FAIL" and data["exit_code"] == 1 and data["split"]["outcome"] == "PASS"
    assert data["health"]["metrics"][0]["rows"][0]["status"] == "worse"


def test_the_plan_carries_the_documented_fields(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, "--expected", "20", "--plan", "--rate", "100")
    assert data["schema"] == PLAN_SCHEMA and set(data) == DOCS[PLAN_SCHEMA]
    assert set(data["plan"]) == DOCS["plan"]


def test_every_documented_table_is_checked() -> None:
    checked = {VERDICT_SCHEMA, CLI_EXTRAS, "rows[]", "unattributed_row", "interval", "parameters",
               "method_details (fixed-n)", "method_details (sequential)", "input (with --results)", PLAN_SCHEMA,
               "plan", TELEMETRY, "split (with --health)", "health (with --health)", "health.metrics[]",
               "health.metrics[].rows[]"}  # TELEMETRY: tests/test_verify_split_telemetry.py
    assert set(DOCS) == checked
