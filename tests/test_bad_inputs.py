"""Bad input to the installed commands: one line, the documented exit code, nothing already measured lost --
never a traceback, a hang, unbounded memory or exit 1 (which CI reads as FAIL). README "Input bounds" lists them.

Each command runs as a real child process (the console scripts, as a user runs them) with a timeout that only
guards against the hangs these tests exist to catch.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from conftest import free_port, start_service
from helpers import http_server
from test_expected import write_kubeconfig

from splitproof.setup.manifests import CanaryParams, mesh_yaml
from splitproof.verifier.exitcodes import ExitCode

BIN = Path(sys.executable).parent
VERIFY, CANARY_SETUP = str(BIN / "verify-split"), str(BIN / "canary-setup")
GUARD_S = 60  # a hang guard, not a timing assertion

GOOD = '{"v":1,"t":1764110000.5,"channel":"grpc","items":5,"version":"production","status":"ok","latency_ms":3.0}'


def run(*argv: str, stdout: int | None = subprocess.PIPE, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=GUARD_S, **kw)


def one_error_line(result: subprocess.CompletedProcess[str], prog: str) -> str:
    """The single error line of ``result`` (and no traceback anywhere)."""
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith(f"{prog}: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def alias_bomb(where: str) -> str:
    """A VirtualService whose weight or subset is nine nested anchors of nine aliases (387M nodes expanded)."""
    anchors = ['    l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    anchors += [f"    l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    weight, subset = ("*l8", "production") if where == "weight" else ("80", "*l8")
    return "\n".join(["apiVersion: networking.istio.io/v1", "kind: VirtualService", "metadata:",
                      "  name: recommendationservice", "  annotations:", *anchors,
                      "spec:", "  hosts: [recommendationservice]", "  http:", "  - route:",
                      f"    - destination: {{host: recommendationservice, subset: {subset}}}",
                      f"      weight: {weight}",
                      "    - destination: {host: recommendationservice, subset: canary}",
                      "      weight: 20", ""])


def results_file(tmp_path: Path, *extra: str, n: int = 300) -> Path:
    path = tmp_path / "results.jsonl"
    path.write_text("\n".join([GOOD] * n + list(extra)) + "\n")
    return path


# ----------------------------------------------------------------------------------------------------- YAML


@pytest.mark.parametrize("where", ["weight", "subset"])
def test_an_alias_bomb_is_refused_by_both_commands(tmp_path: Path, where: str) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb(where))
    vs = run(VERIFY, "--from-virtualservice", str(bomb), "--results", str(results_file(tmp_path)))
    assert vs.returncode == 2 and "alias" in one_error_line(vs, "verify-split")
    route = run(VERIFY, "--from-httproute", str(bomb), "--results", str(results_file(tmp_path)))
    assert route.returncode == 2 and "alias" in one_error_line(route, "verify-split")
    up = run(CANARY_SETUP, "local", "up", "--manifests", str(bomb), "--state-dir", str(tmp_path / "state"))
    assert up.returncode == ExitCode.USAGE and "alias" in one_error_line(up, "canary-setup")
    lint = run(CANARY_SETUP, "lint", str(bomb))
    assert lint.returncode == ExitCode.USAGE and "alias" in one_error_line(lint, "canary-setup")


def test_yaml_larger_than_the_bound_is_refused_without_parsing_it(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    doc = mesh_yaml(CanaryParams())
    with open(big, "w") as fh:  # real Istio YAML, repeated past 8 MiB
        while fh.tell() < (8 << 20) + 1:
            fh.write(doc + "\n---\n")
    vs = run(VERIFY, "--from-virtualservice", str(big), "--results", str(results_file(tmp_path)))
    assert vs.returncode == 2 and "larger than 8 MiB" in one_error_line(vs, "verify-split")
    up = run(CANARY_SETUP, "local", "up", "--manifests", str(big), "--state-dir", str(tmp_path / "state"))
    assert up.returncode == ExitCode.USAGE and "larger than 8 MiB" in one_error_line(up, "canary-setup")


def test_binary_manifests_and_a_non_yaml_kubeconfig_are_one_line(tmp_path: Path) -> None:
    binary = tmp_path / "image.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    up = run(CANARY_SETUP, "local", "up", "--manifests", str(binary), "--state-dir", str(tmp_path / "state"))
    assert up.returncode == ExitCode.USAGE and "not valid YAML" in one_error_line(up, "canary-setup")
    results = str(results_file(tmp_path))
    for kubeconfig, message in ((binary, "not valid YAML"), (Path("/etc/hostname"), "not a kubeconfig")):
        if not kubeconfig.exists():
            continue
        vs = run(VERIFY, "--from-virtualservice", "recommendationservice", "-n", "online-boutique",
                 "--results", results, env={**os.environ, "KUBECONFIG": str(kubeconfig)})
        assert vs.returncode == 2 and message in one_error_line(vs, "verify-split")


# ---------------------------------------------------------------------------------------------------- FIFOs


def test_a_fifo_without_a_writer_is_refused_and_one_with_a_writer_is_read(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    vs = run(VERIFY, "--expected", "0", "--results", str(fifo))
    assert vs.returncode == 2 and "FIFO with no writer" in one_error_line(vs, "verify-split")
    vs = run(VERIFY, "--from-virtualservice", str(fifo), "--results", str(results_file(tmp_path)))
    assert vs.returncode == 2 and "FIFO with no writer" in one_error_line(vs, "verify-split")
    up = run(CANARY_SETUP, "local", "up", "--manifests", str(fifo), "--state-dir", str(tmp_path / "state"))
    assert up.returncode == ExitCode.USAGE and "FIFO with no writer" in one_error_line(up, "canary-setup")
    # A FIFO that gets a writer (`mkfifo f; producer > f & verify-split --results f`) is streamed as before.
    child = subprocess.Popen([VERIFY, "--expected", "0", "--results", str(fifo), "--json", "-"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with open(fifo, "w") as producer:  # blocks until verify-split opens the FIFO for reading
        producer.write("\n".join([GOOD] * 600) + "\n")
    out, err = child.communicate(timeout=GUARD_S)
    assert child.returncode == 0, err
    assert json.loads(out)["n"] == 600


# -------------------------------------------------------------------------------------------------- records


BAD_RECORDS = {  # line -> the reason verify-split gives; each was a traceback (exit 1) or accepted before
    '{"v":1,"t":1764110000.5,"channel":"grpc","items":' + "9" * 5000 + ',"version":"production","status":"ok",'
    '"latency_ms":3.0}': "too many digits",
    '{"v":1,"t":1' + "0" * 400 + ',"channel":"grpc","items":5,"version":"production","status":"ok",'
    '"latency_ms":3.0}': "out of range",
    '{"v":1,"t":1e400,"channel":"grpc","items":5,"version":"production","status":"ok","latency_ms":3.0}':
        "non-finite",
    '{"v":1,"t":1764110000.5,"channel":"grpc","items":5,"version":"production","status":"ok","latency_ms":-3}':
        "negative latency_ms",
    "x" * 100_000: "longer than 65,536 characters",
}


def test_bad_records_are_counted_malformed_lines(tmp_path: Path) -> None:
    result = run(VERIFY, "--expected", "0", "--results", str(results_file(tmp_path, *BAD_RECORDS)), "--json", "-")
    assert "Traceback" not in result.stderr, result.stderr
    verdict = json.loads(result.stdout)
    assert verdict["input"]["malformed"] == 5 and verdict["unattributed"] == 5 and verdict["n"] == 300
    for example, reason in zip(verdict["input"]["examples"], BAD_RECORDS.values(), strict=True):
        assert reason in example
    assert result.returncode in (0, 3) and verdict["outcome"] in ("PASS", "INCONCLUSIVE")  # judged, not crashed


def test_negative_latencies_never_reach_the_report(tmp_path: Path) -> None:
    bad = GOOD.replace('"latency_ms":3.0', '"latency_ms":-0.05')
    result = run(VERIFY, "--expected", "0", "--results", str(results_file(tmp_path, *[bad] * 50)),
                 "--html", str(tmp_path / "r.html"), "--json", "-")
    verdict = json.loads(result.stdout)
    assert verdict["input"]["malformed"] == 50 and "negative latency_ms" in verdict["input"]["examples"][0]


# ------------------------------------------------------------------------------------------ where output goes


def test_stdout_on_dev_full_loses_no_other_output(tmp_path: Path) -> None:
    results = str(results_file(tmp_path, n=600))
    outputs = {"--json": tmp_path / "v.json", "--junit": tmp_path / "v.xml", "--html": tmp_path / "v.html"}
    with open("/dev/full", "w") as full:
        result = run(VERIFY, "--expected", "0", "--results", results,
                     *[arg for flag, path in outputs.items() for arg in (flag, str(path))], stdout=full)
        line = one_error_line(result, "verify-split")
        assert result.returncode == 2 and "standard output" in line and "the verdict was PASS" in line
        assert all(path.stat().st_size > 0 for path in outputs.values())
        assert json.loads(outputs["--json"].read_text())["outcome"] == "PASS"
        # --json - on /dev/full: the table goes to stderr as always, the JSON cannot be written
        result = run(VERIFY, "--expected", "0", "--results", results, "--json", "-", stdout=full)
        assert result.returncode == 2 and "--json - on standard output" in one_error_line(result, "verify-split")
        assert "every version within" in result.stderr  # the table itself reached stderr
        result = run(CANARY_SETUP, "plan", stdout=full)
        assert result.returncode == 2 and "standard output" in one_error_line(result, "canary-setup")


def test_an_unwritable_output_file_still_writes_the_others(tmp_path: Path) -> None:
    result = run(VERIFY, "--expected", "0", "--results", str(results_file(tmp_path, n=600)),
                 "--json", str(tmp_path / "missing-dir" / "v.json"), "--junit", str(tmp_path / "v.xml"))
    line = one_error_line(result, "verify-split")
    assert result.returncode == 2 and "--json" in line and "written: the table, --junit" in line
    assert (tmp_path / "v.xml").stat().st_size > 0 and "every version within" in result.stdout


def _unwritable_dir(tmp_path: Path) -> Path:
    if os.geteuid() == 0:  # root writes through any mode bits: sysfs refuses new entries to everyone
        return Path("/sys/kernel/splitproof-state-test")
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    return ro / "state"


def test_a_read_only_state_dir_is_a_one_line_bad_option(tmp_path: Path) -> None:
    result = run(CANARY_SETUP, "local", "up", "--state-dir", str(_unwritable_dir(tmp_path)), "--ingress-port", "0",
                 "--grpc-port", "0")
    assert result.returncode == ExitCode.USAGE and "--state-dir" in one_error_line(result, "canary-setup")


def test_tolerance_errors_speak_the_unit_the_user_typed(tmp_path: Path) -> None:
    results = str(results_file(tmp_path))
    for flag, value, unit in (("--tolerance", "-5", "percentage points, got -5"),
                              ("--max-unattributed", "150", "percentage from 0 to below 100, got 150")):
        result = run(VERIFY, "--expected", "20", "--results", results, flag, value)
        assert result.returncode == 2 and unit in one_error_line(result, "verify-split")


# ------------------------------------------------------------------------------------------------ --url pages


class HugePages(BaseHTTPRequestHandler):
    """100 MB pages, with a Content-Length or streamed until the client goes (never built in memory)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 -- http.server's naming
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        if "declared" in self.server.mode:  # type: ignore[attr-defined]
            self.send_header("Content-Length", str(100 << 20))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        chunk = b"<div>" + b"x" * 65531
        try:
            for _ in range((100 << 20) // len(chunk)):
                self.wfile.write(chunk)
        except OSError:
            pass
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(params=["declared", "streamed"])
def huge_page_server(request: pytest.FixtureRequest) -> Iterator[str]:
    with http_server(HugePages, mode=request.param, daemon_threads=True) as url:
        yield url


def test_url_pages_are_read_to_a_bound(huge_page_server: str) -> None:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = run(VERIFY, "--expected", "20", "--url", huge_page_server, "--no-progress", "--concurrency", "2")
    peak_mib = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    line = one_error_line(result, "verify-split")
    assert result.returncode == 4 and "larger than 1 MiB" in line
    assert peak_mib < 400  # reading whole 100 MB pages took 1.55 GB


def test_url_at_a_grpc_port_says_it_is_not_http(request: pytest.FixtureRequest, logs: Path) -> None:
    catalog = start_service(request, logs, "catalog-for-url", "catalog", [])
    result = run(VERIFY, "--expected", "20", "--url", f"http://{catalog.addr}", "--no-progress")
    line = one_error_line(result, "verify-split")
    assert result.returncode == 4 and "does not speak HTTP/1.1" in line and "--target" in line
    assert line.isprintable() and "\\x00" not in line


def test_a_closed_port_is_unreachable_not_a_traceback() -> None:
    result = run(VERIFY, "--expected", "20", "--url", f"http://127.0.0.1:{free_port()}", "--connect-timeout", "1")
    assert result.returncode == 4 and "unreachable" in one_error_line(result, "verify-split")


# ------------------------------------------------------------------------------------------------ credentials


class EchoingProxy(BaseHTTPRequestHandler):
    """A Kubernetes API (or a proxy in front of it) that echoes the Authorization header in its reason phrase."""

    def do_GET(self) -> None:  # noqa: N802 -- http.server's naming
        auth = self.headers.get("Authorization", "")
        code = 500 if "virtualservices/boom" in self.path else 401
        body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                           "message": f"rejected {auth}", "reason": "Unauthorized"}).encode()
        self.send_response(code, f"Rejected (Authorization: {auth})")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_server_echoing_the_bearer_token_never_gets_it_printed(tmp_path: Path) -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2lnbmF0dXJlLXNlY3JldA"
    with http_server(EchoingProxy) as url:
        env = {**os.environ, "KUBECONFIG": str(write_kubeconfig(tmp_path, url, token))}
        results = str(results_file(tmp_path))
        for name, code in (("recommendationservice", 2), ("boom", 4)):
            result = run(VERIFY, "--from-virtualservice", name, "-n", "online-boutique", "--results", results,
                         env=env)
            line = one_error_line(result, "verify-split")
            assert result.returncode == code and "Rejected" in line, result.stderr
            assert token not in result.stderr + result.stdout and "signature" not in result.stderr
            assert "<redacted>" in line
