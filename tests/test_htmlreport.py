"""The HTML report: self-contained, has the verdict, the table and real charts, and renders in headless Chromium."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from splitproof.verifier.inputs.records import Record
from splitproof.verifier.reports.html import render_html, write_html
from splitproof.verifier.reports.timeline import Timeline, latency_bin
from splitproof.verifier.stats.fixed import judge


def simulated(n: int, canary: float, seed: int = 7) -> tuple[dict[str, int], int, Timeline]:
    rng = random.Random(seed)
    timeline = Timeline(max_points=100)
    counts = {"production": 0, "canary": 0}
    unattributed = 0
    for i in range(n):
        if i % 500 == 499:
            timeline.add(Record(1000.0 + i / 100, "http", None, None, "error:no_recommendations", 4.0))
            unattributed += 1
            continue
        version = "canary" if rng.random() < canary else "production"
        counts[version] += 1
        latency = rng.lognormvariate(1.0, 0.4) * (2 if version == "canary" else 1)
        timeline.add(Record(1000.0 + i / 100, "grpc", 2 if version == "canary" else 5, version, "ok", latency))
    return counts, unattributed, timeline


def test_timeline_memory_is_bounded_and_final_point_exact() -> None:
    counts, unattributed, timeline = simulated(30_000, 0.2)
    timeline.finish()
    assert len(timeline.checkpoints) <= timeline.max_points
    assert timeline.checkpoints[-1].n == sum(counts.values())
    assert timeline.checkpoints[-1].counts == counts
    assert timeline.n_unattributed == unattributed == timeline.errors["error:no_recommendations"]
    # checkpoints are in order and cover the run from its start
    ns = [p.n for p in timeline.checkpoints]
    assert ns == sorted(ns) and ns[0] <= 2 * timeline.stride


def test_latency_quantiles_follow_the_data() -> None:
    timeline = Timeline()
    for i in range(1000):
        timeline.add(Record(float(i), "grpc", 5, "production", "ok", 10.0 if i < 900 else 1000.0))
    p50 = timeline.latency_quantile("production", 0.5)
    p99 = timeline.latency_quantile("production", 0.99)
    assert p50 is not None and 10.0 <= p50 < 12.5
    assert p99 is not None and 1000.0 <= p99 < 1200.0
    assert latency_bin(0.0) == 0 and latency_bin(1e12) == latency_bin(1e13)


def test_report_is_self_contained_with_verdict_table_and_charts(tmp_path: Path) -> None:
    counts, unattributed, timeline = simulated(8_000, 0.2)
    verdict = judge(counts, unattributed, {"production": 0.8, "canary": 0.2})
    page = render_html(verdict, timeline, source="unit test")
    assert f"<h1>{verdict.outcome}</h1>" in page
    # no external resources: nothing fetched from anywhere
    assert not re.search(r"""(src|href)\s*=\s*["']https?:""", page)
    assert "<script" not in page
    # table rows carry the observed counts
    for version, count in counts.items():
        assert f"<td>{version}</td>" in page and f"{count:,}" in page
    # both charts are real matplotlib SVGs with drawn paths
    share = page.split('id="share-chart"', 1)[1].split("</figure>", 1)[0]
    assert share.count("<path") > 10 and "Clopper-Pearson" in share  # the fixed-n table's own interval
    latency = page.split('id="latency-chart"', 1)[1].split("</figure>", 1)[0]
    assert latency.count("<path") > 5
    assert "error:no_recommendations" in page


@pytest.mark.parametrize(("method", "named"), [("fixed-n", "Clopper-Pearson"), ("sequential", "confidence sequence")])
def test_the_chart_band_is_the_tables_interval(method: str, named: str) -> None:
    """The shaded band at the last checkpoint is exactly the interval of the verdict's table, for either method."""
    from splitproof.verifier.command.prepare import TimelineSink
    from splitproof.verifier.reports.charts import band
    from splitproof.verifier.tally import Tally

    sink = TimelineSink()
    tally = Tally({"production": 0.8, "canary": 0.2}, method=method, sinks=[sink])
    rng = random.Random(3)
    for i in range(3_000):
        version = "canary" if rng.random() < 0.2 else "production"
        tally.record(Record(1000.0 + i / 100, "grpc", 2 if version == "canary" else 5, version, "ok", 3.0))
        if tally.decided:
            break
    tally.close()
    verdict = tally.verdict()
    bands = band(sink.timeline, verdict)
    for row in verdict.rows:
        assert bands[row.version][-1] == (verdict.n, row.interval)
    page = render_html(verdict, sink.timeline)
    share = page.split('id="share-chart"', 1)[1].split("</figure>", 1)[0]
    assert named in share and named in verdict.interval_name


def test_fail_report_has_a_fail_banner() -> None:
    counts, unattributed, timeline = simulated(3_000, 0.5)
    verdict = judge(counts, unattributed, {"production": 0.8, "canary": 0.2})
    assert verdict.outcome == "FAIL"
    page = render_html(verdict, timeline)
    assert "<h1>FAIL</h1>" in page and "#cf222e" in page


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed (make test installs it when run as root)")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    from matplotlib import image

    counts, unattributed, timeline = simulated(8_000, 0.2)
    verdict = judge(counts, unattributed, {"production": 0.8, "canary": 0.2})
    assert verdict.outcome == "PASS"
    report = write_html(tmp_path / "report.html", verdict, timeline)
    shot = tmp_path / "shot.png"
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,1400",
    ]
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", report.as_uri()],
                   check=True, timeout=120, capture_output=True)
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", report.as_uri()],
                         check=True, timeout=120, capture_output=True, text=True).stdout
    assert "<h1>PASS</h1>" in dom and 'id="share-chart"' in dom and "<svg" in dom

    pixels = image.imread(str(shot))[:, :, :3]
    height, width = pixels.shape[:2]
    assert (height, width) == (1400, 1000)
    # the banner (top of page) is the PASS green #1a7f37
    banner = pixels[40:80, 40:400].reshape(-1, 3).mean(axis=0)
    assert abs(banner[0] - 0x1A / 255) < 0.08 and abs(banner[1] - 0x7F / 255) < 0.08
    # the chart area below the table holds plotted colour (blue/pink lines, shaded bands), not a blank page
    lower = pixels[height // 3:, :, :]
    coloured = ((lower.max(axis=2) - lower.min(axis=2)) > 0.15).sum()
    assert coloured > 2_000


def test_verify_split_html_flag_writes_the_report_from_a_results_file(tmp_path: Path) -> None:
    from splitproof.verifier.cli import main

    rng = random.Random(11)
    results = tmp_path / "run.jsonl"
    lines = []
    for i in range(3_000):
        version = "canary" if rng.random() < 0.5 else "production"
        lines.append(Record(1000.0 + i / 50, "grpc", 2 if version == "canary" else 5, version, "ok", 3.0).to_json())
    results.write_text("\n".join(lines) + "\n")
    out = tmp_path / "report.html"
    code = main(["--expected", "20", "--results", str(results), "--html", str(out), "--no-progress"])
    assert code == 1  # a 50/50 reality against 20 expected
    page = out.read_text()
    assert "<h1>FAIL</h1>" in page and page.count("<svg") == 2
    # an unwritable path is a one-line input error (exit 2), not a traceback
    assert main(["--expected", "20", "--results", str(results), "--html", str(tmp_path / "no" / "r.html")]) == 2


def test_confidence_level_keeps_the_digits_alpha_needs() -> None:
    from splitproof.verifier import fmt

    assert [fmt.level(1 - a) for a in (0.01, 0.001, 0.05, 0.025)] == ["99%", "99.9%", "95%", "97.5%"]
