"""The Prometheus client's edges against a scripted HTTP server on 127.0.0.1: credentials (sent, never shown --
also when the server echoes them), error envelopes, non-API answers, warnings, the size bound, redirects,
timeouts. The real-Prometheus behaviour is in test_telemetry_prometheus.py."""

from __future__ import annotations

import gzip
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from splitproof.verifier.telemetry.auth import auth_headers
from splitproof.verifier.telemetry.clusters import Service
from splitproof.verifier.telemetry.errors import (
    TelemetryInputError,
    TelemetryQueryError,
    TelemetryResponseTooLarge,
    TelemetryUnreachable,
)
from splitproof.verifier.telemetry.httpget import Endpoint, request
from splitproof.verifier.telemetry.prometheus import PrometheusClient
from splitproof.verifier.telemetry.promql import istio_requests
from splitproof.verifier.telemetry.promsource import count_window
from splitproof.verifier.telemetry.window import Window

TOKEN = "s3cr3t-t0ken-value-xyz"
Reply = tuple[int, str, bytes, dict[str, str]]


@dataclass
class Scripted:
    """``reply(path, form, headers) -> (status, content type, body, extra headers)``; every request is recorded."""

    reply: Callable[[str, dict[str, list[str]], dict[str, str]], Reply]
    seen: list[tuple[str, dict[str, list[str]], dict[str, str]]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def server() -> Iterator[Scripted]:
    script = Scripted(lambda *_: (200, "application/json", b"{}", {}))

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            path, _, query = self.path.partition("?")
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode() if length else query)
            headers = {k: v for k, v in self.headers.items()}
            script.seen.append((path, form, headers))
            status, ctype, body, extra = script.reply(path, form, headers)
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _serve  # noqa: N815 -- http.server's names

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    script.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield script
    httpd.shutdown()
    httpd.server_close()


def envelope(data: Any = None, **extra: Any) -> bytes:
    return json.dumps({"status": "success", "data": data, **extra}).encode()


def matrix(series: list[tuple[dict[str, str], list[tuple[float, str]]]]) -> Any:
    return {"resultType": "matrix", "result": [{"metric": m, "values": v} for m, v in series]}


def test_bearer_token_is_sent_and_redacted_from_an_echoing_error(server: Scripted, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    server.reply = lambda _p, _f, h: (400, "application/json", json.dumps(
        {"status": "error", "errorType": "bad_data", "error": f"rejected header {h.get('Authorization')}"}
    ).encode(), {})
    client = PrometheusClient.from_url(server.url, secret_headers=auth_headers(token_file=str(token_file)))
    with pytest.raises(TelemetryQueryError) as exc:
        client.query("up", 1_000_000)
    assert server.seen[0][2]["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in str(exc.value) and "<redacted>" in str(exc.value)
    assert "HTTP 400 bad_data" in str(exc.value) and "\n" not in str(exc.value)


def test_url_credentials_become_basic_auth_and_never_show(server: Scripted) -> None:
    server.reply = lambda *_: (401, "text/plain", b"who are you", {})
    url = server.url.replace("http://", "http://alice:pa55w0rd-long@")
    client = PrometheusClient.from_url(url)
    with pytest.raises(TelemetryQueryError, match="HTTP 401 Unauthorized") as exc:
        client.query("up", 1_000_000)
    assert server.seen[0][2]["Authorization"].startswith("Basic ")
    assert "pa55w0rd-long" not in str(exc.value) and "alice" not in client.url


def test_token_from_environment_and_header_file(tmp_path: Path) -> None:
    headers_file = tmp_path / "headers"
    headers_file.write_text("# tenant\nX-Scope-OrgID: tenant-a\n\n")
    got = auth_headers(token_env="PROM_TOKEN", header_file=str(headers_file), environ={"PROM_TOKEN": TOKEN})
    assert got == {"X-Scope-OrgID": "tenant-a", "Authorization": f"Bearer {TOKEN}"}
    with pytest.raises(TelemetryInputError, match="PROM_TOKEN.*not set") as exc:
        auth_headers(token_env="PROM_TOKEN", environ={})
    assert TOKEN not in str(exc.value)
    with pytest.raises(TelemetryInputError, match="no such file"):
        auth_headers(token_file=str(tmp_path / "missing"))
    (tmp_path / "bad").write_text("X-Evil: a\x00b\n")
    with pytest.raises(TelemetryInputError, match="line break"):
        auth_headers(header_file=str(tmp_path / "bad"))


def test_credentials_are_not_forwarded_on_a_redirect(server: Scripted) -> None:
    server.reply = lambda p, _f, _h: ((302, "text/plain", b"", {"Location": "/elsewhere"}) if p == "/api/v1/query"
                                      else (200, "application/json", envelope({"resultType": "vector",
                                                                               "result": []}), {}))
    client = PrometheusClient.from_url(server.url, secret_headers={"Authorization": f"Bearer {TOKEN}"})
    client.query("up", 1_000_000)
    assert [s[0] for s in server.seen] == ["/api/v1/query", "/elsewhere"]
    assert "Authorization" in server.seen[0][2] and "Authorization" not in server.seen[1][2]


@pytest.mark.parametrize("status,ctype,body,kind,text", [
    (422, "application/json", b'{"status":"error","errorType":"execution","error":"many-to-many matching"}',
     TelemetryQueryError, "HTTP 422 execution: many-to-many matching"),
    (503, "application/json", b'{"status":"error","errorType":"timeout","error":"query timed out in expression'
                              b' evaluation"}', TelemetryQueryError, "HTTP 503 timeout"),
    (503, "text/html", b"<html>upstream connect error</html>", TelemetryUnreachable, "HTTP 503 from the gateway"),
    (200, "text/html", b"<!doctype html><title>Grafana</title>", TelemetryQueryError, "not the Prometheus API"),
    (404, "text/plain", b"404 page not found", TelemetryQueryError, "give the server's base URL"),
])
def test_errors_are_one_line(server: Scripted, status: int, ctype: str, body: bytes, kind: type[Exception],
                             text: str) -> None:
    server.reply = lambda *_: (status, ctype, body, {})
    with pytest.raises(kind) as exc:
        PrometheusClient.from_url(server.url).query("up", 1_000_000)
    assert text in str(exc.value) and "\n" not in str(exc.value)


def test_warnings_are_surfaced_as_notes(server: Scripted) -> None:
    data = matrix([({"__name__": "istio_requests_total", "reporter": "source", "destination_version": "canary"},
                    [(1000.0, "5"), (1015.0, "9")])])
    server.reply = lambda *_: (200, "application/json", envelope(data, warnings=["store eu-1 unavailable"]), {})
    got = count_window(PrometheusClient.from_url(server.url), istio_requests(Service()), Window(1000, 1020))
    assert got.counts == {"canary": 4}
    assert "Prometheus warning: store eu-1 unavailable" in got.notes
    path, form, _ = server.seen[0]
    assert path == "/api/v1/query" and form["query"][0].endswith("[320000ms]") and form["time"] == ["1020.000"]
    assert 'reporter="source"' in form["query"][0]
    assert 'destination_service_name="recommendationservice"' in form["query"][0]


def test_too_many_samples_splits_the_chunk(server: Scripted) -> None:
    def reply(_p: str, form: dict[str, list[str]], _h: dict[str, str]) -> Reply:
        rng = int(form["query"][0].rsplit("[", 1)[1].rstrip("ms]"))
        if rng > 200_000:
            return 422, "application/json", json.dumps({"status": "error", "errorType": "execution", "error":
                                                        "query processing would load too many samples into "
                                                        "memory in query execution"}).encode(), {}
        end = float(form["time"][0])
        pts = [(t, str(int(t))) for t in range(int(end - rng / 1000), int(end) + 1) if t % 10 == 0]
        return 200, "application/json", envelope(matrix([({"destination_version": "v1"}, pts)])), {}

    server.reply = reply
    got = count_window(PrometheusClient.from_url(server.url), istio_requests(Service()), Window(10_000, 11_000))
    assert got.counts == {"v1": 1000}  # the counter's value is its timestamp: exactly until - since
    assert len(server.seen) > 2


def test_response_size_is_bounded_also_when_gzipped(server: Scripted) -> None:
    big = envelope({"resultType": "vector", "result": [], "pad": "x" * 500_000})
    server.reply = lambda *_: (200, "application/json", gzip.compress(big), {"Content-Encoding": "gzip"})
    endpoint = Endpoint.parse(server.url, max_bytes=100_000)
    with pytest.raises(TelemetryResponseTooLarge, match="exceeds 100,000 bytes"):
        request(endpoint, "/api/v1/query")
    assert len(gzip.compress(big)) < 100_000  # it was the decompressed size that counted


def test_a_silent_server_times_out_as_unreachable() -> None:
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        client = PrometheusClient.from_url(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=0.3)
        with pytest.raises(TelemetryUnreachable, match="0.3s|timed out"):
            client.query("up", 1_000_000)


def test_bad_urls_are_input_errors() -> None:
    for url in ("prometheus:9090", "ftp://x", "http://", "http://host:99999"):
        with pytest.raises(TelemetryInputError):
            PrometheusClient.from_url(url)
