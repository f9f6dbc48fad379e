"""verify-split's command line: inputs, outputs, exit codes, and one-line errors for every user mistake.

Live sampling here runs against small in-process servers on 127.0.0.1 (a gRPC recommendation fake that splits
80/20 itself, a shop page server); tests/test_sampler_e2e.py does it through a real Envoy split.
"""

from __future__ import annotations

import http.client
import json
import random
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import grpc
import pytest
from conftest import REPO, free_port
from helpers import http_server, send_body

from splitproof.protos import demo_pb2, demo_pb2_grpc
from splitproof.verifier.cli import main
from splitproof.verifier.inputs.probes import page_text
from splitproof.verifier.inputs.records import Record, RecordWriter

SPLIT_80_20 = {"production": 0.8, "canary": 0.2}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def write_results(path: Path, shares: dict[str, float], n: int, *, seed: int = 1, errors: int = 0,
                  items: dict[str, int] | None = None) -> Path:
    rng = random.Random(seed)
    items = items or {"production": 5, "canary": 2}
    names, weights = list(shares), list(shares.values())
    with RecordWriter(path) as writer:
        for i in range(n):
            version = rng.choices(names, weights)[0]
            writer.write(Record(1764110000 + i / 100, "grpc", items.get(version, 3), version, "ok", 3.0))
        for i in range(errors):
            writer.write(Record(1764110100 + i, "grpc", None, None, "error:UNAVAILABLE", 1.0))
    return path


# ------------------------------------------------------------------------------------------------ --results


def test_results_pass_fail_inconclusive_exit_codes(tmp_path, capsys):
    good = write_results(tmp_path / "good.jsonl", SPLIT_80_20, 3000)
    rc, out, _ = run(capsys, "--expected", "20", "--results", str(good))
    assert rc == 0 and "PASS" in out and "exact binomial" in out and "production" in out and "98% CI" in out
    bad = write_results(tmp_path / "bad.jsonl", {"production": 0.5, "canary": 0.5}, 400)
    rc, out, _ = run(capsys, "--expected", "20", "--results", str(bad))
    assert rc == 1 and "FAIL" in out and "canary got" in out
    few = write_results(tmp_path / "few.jsonl", SPLIT_80_20, 60)
    rc, out, _ = run(capsys, "--expected", "20", "--results", str(few))
    assert rc == 3 and "INCONCLUSIVE" in out and "more samples needed" in out


def test_results_with_garbage_and_a_truncated_line_are_reported_and_counted(tmp_path, capsys):
    path = write_results(tmp_path / "r.jsonl", SPLIT_80_20, 3000, errors=2)
    with path.open("a") as fh:
        fh.write("this is not json\n")
        fh.write('{"v": 1, "t": 1.0, "channel": "smoke", "status": "ok"}\n')  # valid JSON, unknown channel
        fh.write('{"v":1,"t":1764110000.1,"channel":"grpc","items":5,"vers')  # killed mid-write
    rc, out, _ = run(capsys, "--expected", "20", "--results", str(path), "--json", str(tmp_path / "v.json"))
    assert rc == 0
    assert "2 malformed lines and a truncated last line" in out and "line 3003" in out
    data = json.loads((tmp_path / "v.json").read_text())
    assert data["unattributed"] == 5 and data["n"] == 3000
    assert data["unattributed_causes"] == {"error:UNAVAILABLE": 2, "malformed line": 2, "truncated line": 1}
    assert data["input"]["malformed"] == 2 and data["input"]["truncated"] == 1


def test_results_multiway_weights_and_class_reattribution(tmp_path, capsys):
    shares = {"production": 0.6, "canary": 0.3, "shadow": 0.1}
    path = write_results(tmp_path / "r.jsonl", shares, 4000, items={"production": 5, "canary": 2, "shadow": 3})
    rc, out, _ = run(capsys, "--weights", "production=60,canary=30,shadow=10", "--results", str(path))
    assert rc == 0 and "shadow" in out
    # re-attribute from item counts: with --class the record's own version is ignored
    rc, out, _ = run(capsys, "--weights", "production=60,canary=30,shadow=10", "--results", str(path),
                     "--class", "production=5", "--class", "canary=2", "--class", "shadow=3", "--json", "-")
    assert rc == 0 and json.loads(out)["n"] == 4000
    rc, out, _ = run(capsys, "--weights", "production=60,canary=40", "--results", str(path), "--json", "-")
    assert rc == 1 and "'shadow'" in json.loads(out)["reason"]  # a version the split gives 0%


def test_sequential_replay_stops_at_the_verdict(tmp_path, capsys):
    path = write_results(tmp_path / "r.jsonl", {"production": 0.5, "canary": 0.5}, 5000)
    rc, out, _ = run(capsys, "--expected", "20", "--results", str(path), "--sequential", "--json", "-")
    data = json.loads(out)
    assert rc == 1 and data["method"] == "sequential" and data["total"] < 300
    assert data["input"]["stopped_early"] is True and any("replay stopped" in n for n in data["notes"])


def test_json_junit_and_github_step_summary(tmp_path, capsys, monkeypatch):
    path = write_results(tmp_path / "r.jsonl", SPLIT_80_20, 3000)
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    junit = tmp_path / "split.xml"
    rc, out, err = run(capsys, "--expected", "20", "--results", str(path), "--json", "-", "--junit", str(junit))
    assert rc == 0
    data = json.loads(out)  # stdout is pure JSON; the table went to stderr
    assert data["outcome"] == "PASS" and data["exit_code"] == 0 and "PASS" in err
    assert [r["version"] for r in data["rows"]] == ["production", "canary"]
    assert {"expected", "count", "share", "lo", "hi", "p_value", "p_equivalence", "status"} <= set(data["rows"][0])
    assert data["parameters"]["alpha"] == 0.01 and data["gof_method"] == "exact binomial"
    assert data["expected"] == SPLIT_80_20 and data["input"]["valid"] == 3000
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "3" and suite.get("failures") == "0"
    assert [c.get("name") for c in suite.iter("testcase")][-1] == "verdict"
    text = summary.read_text()
    assert text.startswith("# earlier step\n") and "verify-split: PASS" in text and "| canary | 20% |" in text

    bad = write_results(tmp_path / "bad.jsonl", {"production": 0.5, "canary": 0.5}, 500)
    rc, _, _ = run(capsys, "--expected", "20", "--results", str(bad), "--junit", str(junit))
    suite = ET.parse(junit).getroot().find("testsuite")
    assert rc == 1 and suite is not None and suite.get("failures") == "3"


def test_plan(capsys):
    rc, out, _ = run(capsys, "--expected", "20", "--plan", "--rate", "500")
    assert rc == 0 and "fixed-n sample size" in out and "1,032" in out and "time at 500/s" in out
    rc, out, _ = run(capsys, "--weights", "a=60,b=30,c=10", "--plan", "--json", "-", "--tolerance", "3")
    plan = json.loads(out)["plan"]
    assert rc == 0 and plan["tolerance"] == 0.03 and plan["n"] > 3000


def test_from_virtualservice_file_and_live(tmp_path, capsys, monkeypatch):
    from test_expected import FakeApiHandler, write_kubeconfig

    from splitproof.setup.manifests import CanaryParams, mesh_yaml

    path = write_results(tmp_path / "r.jsonl", {"production": 0.7, "canary": 0.3}, 3000)
    vs = tmp_path / "mesh.yaml"
    vs.write_text(mesh_yaml(CanaryParams(weights={"production": 70, "canary": 30})))
    rc, out, _ = run(capsys, "--from-virtualservice", str(vs), "--results", str(path), "--json", "-")
    assert rc == 0 and json.loads(out)["expected"] == {"production": 0.7, "canary": 0.3}

    with http_server(FakeApiHandler) as api:
        monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path, api)))
        rc, out, _ = run(capsys, "--from-virtualservice", "recommendationservice", "-n", "online-boutique",
                         "--results", str(path), "--json", "-")
        assert rc == 1  # the live VS says 80/20; these results are 70/30
        assert json.loads(out)["expected_source"].startswith("VirtualService recommendationservice")
        rc, _, err = run(capsys, "--from-virtualservice", "nope", "-n", "online-boutique", "--results", str(path))
        assert rc == 2 and "not found" in err
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path, f"http://127.0.0.1:{free_port()}")))
    rc, _, err = run(capsys, "--from-virtualservice", "recommendationservice", "-n", "online-boutique",
                     "--results", str(path))
    assert rc == 4 and "cannot reach the Kubernetes API" in err


@pytest.mark.parametrize(("argv", "message"), [
    (["--expected", "150", "--results", "x"], "must be an integer from 0 to 100"),
    (["--expected", "twenty", "--results", "x"], "--expected"),
    (["--weights", "production=80,canary=30", "--results", "x"], "sum to 100"),
    (["--weights", "production=80,blue=20", "--target", "127.0.0.1:1"], "no response can be attributed to: blue"),
    (["--expected", "20", "--results", "MISSING"], "no such file"),
    (["--expected", "20", "--results", "."], "is a directory"),
    (["--expected", "20", "--results", "EMPTY"], "no valid records"),
    (["--expected", "20", "--results", "GARBAGE"], "no valid records"),
    (["--expected", "20", "--results", "x", "--header", "x-version"], "--header needs live sampling"),
    (["--expected", "20", "--results", "x", "--tolerance", "0"], "--tolerance"),
    (["--expected", "20", "--results", "x", "--alpha", "2"], "alpha"),
    (["--expected", "20", "--results", "x", "--max-unattributed", "150"], "--max-unattributed"),
    (["--expected", "20", "--target", "nocolon"], "HOST:PORT"),
    (["--expected", "20", "--url", "ftp://x"], "--url"),
    (["--expected", "20", "--target", "127.0.0.1:1", "--class", "canary"], "NAME=COUNT"),
    (["--expected", "20", "--target", "127.0.0.1:1", "--concurrency", "0"], "--concurrency"),
    (["--from-virtualservice", "BADYAML", "--results", "x"], "not valid YAML"),
    (["--from-virtualservice", "MISSING", "--results", "x"], "no such file"),
    (["--expected", "20", "--results", "GOOD", "--json", "/nonexistent-dir/v.json"], "could not write --json"),
    (["--expected", "20", "--results", "GOOD", "--save-results", "copy.jsonl"], "applies to live sampling"),
])
def test_user_mistakes_are_one_line_exit_2(tmp_path, capsys, argv, message):
    (tmp_path / "EMPTY").write_text("")
    (tmp_path / "GARBAGE").write_text("nope\n{]\n")
    (tmp_path / "BADYAML").write_text("kind: [unclosed\n")
    write_results(tmp_path / "GOOD", SPLIT_80_20, 50)
    subst = {"x": str(write_results(tmp_path / "x", SPLIT_80_20, 50)), "MISSING": str(tmp_path / "missing"),
             ".": str(tmp_path), "EMPTY": str(tmp_path / "EMPTY"), "GARBAGE": str(tmp_path / "GARBAGE"),
             "BADYAML": str(tmp_path / "BADYAML"), "GOOD": str(tmp_path / "GOOD")}
    rc, _, err = run(capsys, *[subst.get(a, a) for a in argv])
    assert rc == 2
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("warning")]
    assert len(lines) == 1 and lines[0].startswith("verify-split: error:") and message in lines[0], err


def test_argparse_usage_errors_exit_2(capsys):
    assert run(capsys, "--expected", "20")[0] == 2  # no observations
    assert run(capsys, "--expected", "20", "--weights", "a=100", "--plan")[0] == 2  # two splits
    assert run(capsys, "--expected", "20", "--plan", "--alpha", "abc")[0] == 2
    assert run(capsys, "--help")[0] == 0


def test_the_installed_command_never_shows_a_traceback(tmp_path):
    garbage = tmp_path / "g.jsonl"
    garbage.write_bytes(b"\xff\xfe\x00binary\n")
    for argv, code in ((["--expected", "150", "--plan"], 2), (["--expected", "20", "--results", str(garbage)], 2),
                       (["--expected", "20", "--target", f"127.0.0.1:{free_port()}", "--connect-timeout", "0.5"], 4)):
        proc = subprocess.run([sys.executable, "-m", "splitproof.verifier.cli", *argv], cwd=REPO, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == code, proc.stderr
        assert "Traceback" not in proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith("verify-split: error:")


# ------------------------------------------------------------------------------- live against in-process fakes


class SplittingRecommendations(demo_pb2_grpc.RecommendationServiceServicer):
    """Answers 5 ids (production) or 2 (canary) at random with the given canary share -- or always fails."""

    def __init__(self, canary: float, fail: bool = False) -> None:
        self.canary, self.fail = canary, fail
        self.header: str | None = None  # set: also name the version in this response metadata key
        self.rng = random.Random(5)
        self.lock = threading.Lock()
        self.requested: list[str] = []

    def ListRecommendations(self, request, context):  # noqa: N802 -- gRPC naming
        if self.fail:
            context.abort(grpc.StatusCode.UNAVAILABLE, "no healthy upstream")
        with self.lock:
            self.requested.extend(request.product_ids)
            n = 2 if self.rng.random() < self.canary else 5
        if self.header:  # what Istio's headers.response.set on each route destination adds
            context.send_initial_metadata(((self.header, "blue" if n == 2 else "green"),))
            n = 3  # the item count no longer tells the versions apart
        return demo_pb2.ListRecommendationsResponse(product_ids=[f"P{i}" for i in range(n)])


@pytest.fixture
def grpc_fake() -> Iterator[tuple[str, SplittingRecommendations]]:
    servicer = SplittingRecommendations(0.2)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    demo_pb2_grpc.add_RecommendationServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(grace=None).wait(5)


def test_live_grpc_sequential_pass_fail_and_max_samples(grpc_fake, capsys, tmp_path):
    target, servicer = grpc_fake
    saved = tmp_path / "saved.jsonl"
    rc, out, err = run(capsys, "--expected", "20", "--target", target, "--json", "-", "--save-results", str(saved))
    data = json.loads(out)
    assert rc == 0 and data["outcome"] == "PASS" and data["method"] == "sequential"
    assert "must be a proxy that applies the split" in err
    assert len(set(servicer.requested)) == 9  # rotating real product ids
    assert len(saved.read_text().splitlines()) == data["total"]
    servicer.canary = 0.5
    rc, out, _ = run(capsys, "--expected", "20", "--target", target, "--json", "-")
    assert rc == 1 and json.loads(out)["total"] < 400
    servicer.canary = 0.2
    rc, out, _ = run(capsys, "--expected", "20", "--target", target, "--json", "-", "--max-samples", "100")
    data = json.loads(out)
    assert rc == 3 and data["total"] == 100 and any("--max-samples" in n for n in data["notes"])
    rc, out, _ = run(capsys, "--expected", "20", "--target", target, "--fixed", "--max-samples", "300", "--json", "-")
    assert json.loads(out)["method"] == "fixed-n" and json.loads(out)["total"] == 300 and rc in (0, 3)


def test_live_attribution_by_response_header(grpc_fake, capsys):
    target, servicer = grpc_fake
    servicer.header = "x-version"
    rc, out, _ = run(capsys, "--weights", "green=80,blue=20", "--target", target, "--header", "X-Version",
                     "--json", "-")
    data = json.loads(out)
    assert rc == 0 and {r["version"]: r["count"] > 0 for r in data["rows"]} == {"green": True, "blue": True}
    rc, out, _ = run(capsys, "--weights", "green=80,blue=20", "--target", target, "--json", "-")
    assert rc == 2  # by item count, green/blue cannot be attributed at all: an input error, not a FAIL


def test_live_progress_shows_shares_and_intervals():
    import io

    from rich.console import Console

    from splitproof.verifier.command.progress import LiveProgress
    from splitproof.verifier.expected import from_canary_percent
    from splitproof.verifier.tally import Tally

    tally = Tally(from_canary_percent(20), method="sequential", max_samples=1000)
    console = Console(file=io.StringIO(), force_terminal=True, width=160)
    with LiveProgress(console, tally, 1000, "sampling", enabled=True) as progress:
        for i in range(200):
            tally.observe("canary" if i % 5 == 0 else "production")
        tally.observe(None, "error:UNAVAILABLE")
        progress.update(force=True)
        status = progress.progress.tasks[0].fields["status"]
        assert progress.progress.tasks[0].completed == 201
    assert "canary 20.0% [" in status and "production 80.0% [" in status and "unattributed 1" in status


def test_live_target_that_always_fails_or_is_closed_exits_4(grpc_fake, capsys):
    target, servicer = grpc_fake
    servicer.fail = True
    rc, _, err = run(capsys, "--expected", "20", "--target", target)
    assert rc == 4 and "no successful response" in err and "UNAVAILABLE" in err
    rc, _, err = run(capsys, "--expected", "20", "--target", f"127.0.0.1:{free_port()}", "--connect-timeout", "0.3")
    assert rc == 4 and "cannot connect" in err


class ShopPage(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True
    rng = random.Random(9)
    plan: list[str] = []
    charset: str | None = None  # pages encoded in it and named in their Content-Type (None: ASCII, no charset)

    def do_GET(self) -> None:  # noqa: N802
        kind = ShopPage.plan.pop(0) if ShopPage.plan else ("canary" if ShopPage.rng.random() < 0.2 else "production")
        if kind == "error":
            body, code = b"<html>oops</html>", 500
        else:
            items = {"production": 4, "canary": 2, "nosection": 0, "odd": 3}[kind]
            cards = "".join(f'<div class="col-md-3"><a href="/product/X{i}">x</a></div>' for i in range(items))
            section = "" if kind == "nosection" else \
                f'<section class="recommendations"><h2>You May Also Like</h2>{cards}</section>'
            body = f'<html><div class="ad"><a href="/product/AD">ad</a></div>{section}</html>'.encode(
                ShopPage.charset or "ascii")
            code = 200
        send_body(self, code, body, f"text/html; charset={ShopPage.charset}" if ShopPage.charset else "text/html")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def shop_pages() -> Iterator[str]:
    """ShopPage served on 127.0.0.1 (its plan and charset put back after the test)."""
    with http_server(ShopPage) as url:
        try:
            yield url
        finally:
            ShopPage.plan, ShopPage.charset = [], None


def test_live_url_counts_inside_the_section_and_reports_unattributed(capsys, shop_pages: str) -> None:
    ShopPage.plan = ["error", "nosection", "odd"]
    rc, out, _ = run(capsys, "--expected", "20", "--url", shop_pages, "--fixed", "--max-samples", "200",
                     "--concurrency", "2", "--json", "-", "--max-unattributed", "5")
    data = json.loads(out)
    assert data["total"] == 200 and data["unattributed"] == 3
    assert data["unattributed_causes"] == {"error:http_500": 1, "error:no_recommendations": 1,
                                           "http reply with 3 items": 1}
    assert data["n"] == 197 and rc in (0, 3)


@pytest.mark.parametrize("charset", ["utf-16", "utf-32"])
def test_live_url_pages_are_decoded_by_their_charset(capsys, shop_pages: str, charset: str) -> None:
    """A page in the charset its Content-Type names is counted as its text (read as UTF-8, a UTF-16 page has no
    section: every response was error:no_recommendations)."""
    ShopPage.charset = charset
    rc, out, _ = run(capsys, "--expected", "20", "--url", shop_pages, "--fixed", "--max-samples", "60",
                     "--concurrency", "2", "--json", "-")
    data = json.loads(out)
    assert data["total"] == data["n"] == 60 and data["unattributed"] == 0, data["unattributed_causes"]


@pytest.mark.parametrize(("content_type", "body", "text"), [
    ("text/html; charset=utf-16", "<p>\u20ac</p>".encode("utf-16"), "<p>\u20ac</p>"),
    ('text/html; Charset="ISO-8859-1"', b"<p>\xe9</p>", "<p>\u00e9</p>"),
    ("text/html", "<p>\u20ac</p>".encode(), "<p>\u20ac</p>"),              # none named: UTF-8
    (None, b"<p>\xff</p>", "<p>\ufffd</p>"),                               # undecodable: replaced
    ("text/html; charset=no-such-charset", "<p>\u20ac</p>".encode(), "<p>\u20ac</p>"),
])
def test_page_text_decodes_by_the_named_charset(content_type: str | None, body: bytes, text: str) -> None:
    msg = http.client.HTTPMessage()  # what the probe's response holds its headers in
    if content_type is not None:
        msg["Content-Type"] = content_type
    assert page_text(body, msg.get_content_charset()) == text


def test_a_margin_narrowed_to_half_a_small_share_is_said(capsys):
    rc, out, err = run(capsys, "--expected", "3", "--plan")
    text = " ".join(err.split())
    assert rc == 0 and "margin narrower than --tolerance 5 pp: canary ±1.5 pp (half the expected share" in text
    assert "2," in out  # the plan's fixed n for a 3% canary at ±1.5 pp: over two thousand responses
    rc, out, err = run(capsys, "--expected", "3", "--tolerance", "1.5", "--plan")
    assert rc == 0 and "margin narrower" not in err


# ------------------------------------------------------------------------------- errors before the heavy imports


@pytest.mark.parametrize("argv", [
    ["--expected", "20", "--results", "/nonexistent/r.jsonl"],
    ["--expected", "120", "--results", "-"],
    ["--expected", "20", "--results", "-", "--tolerance", "0"],
    ["--weights", "production=80,canary=30", "--results", "-"],
    ["--expected", "20", "--results", "-", "--class", "canary"],
    ["--expected", "20", "--results", "-", "--max-samples", "0"],
])
def test_input_errors_answer_before_scipy_numpy_rich_are_imported(argv: list[str]) -> None:
    import subprocess
    import sys

    code = ("import sys\nfrom splitproof.verifier.cli import main\nrc = main(sys.argv[1:])\n"
            "heavy = sorted(m for m in ('scipy', 'numpy', 'rich') if m in sys.modules)\n"
            "print(rc, heavy)\n")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL, cwd="/")
    assert out.stdout.strip() == "2 []", (out.stdout, out.stderr)
    assert out.stderr.startswith("verify-split: error: ") and out.stderr.count("\n") == 1


def test_a_sequential_replay_from_a_pipe_decides_while_the_writer_is_still_writing(tmp_path: Path) -> None:
    """The bulk reader takes what a pipe has (read1), not a whole block: a gross misroute streamed into
    ``--results -`` FAILs while the producer still holds the pipe open."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-m", "splitproof.verifier.cli", "--expected", "20", "--sequential",
                              "--results", "-", "--json", str(tmp_path / "v.json")],
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd="/")
    try:
        assert child.stdin is not None
        lines = [Record(1.5 + i, "grpc", 5 if i % 2 else 2, "production" if i % 2 else "canary", "ok", 1.0)
                 .to_json() for i in range(500)]  # < a pipe buffer
        child.stdin.write(("\n".join(lines) + "\n").encode())
        child.stdin.flush()
        code = child.wait(timeout=120)  # the pipe stays open: only the verdict can end the read
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert code == 1, child.stderr.read() if child.stderr else ""
    verdict = json.loads((tmp_path / "v.json").read_text())
    assert verdict["input"]["stopped_early"] is True
