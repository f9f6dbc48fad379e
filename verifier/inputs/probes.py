"""Live probes: one request, one record -- gRPC ListRecommendations (``--target``) or a product page over HTTP
(``--url``). :mod:`verifier.inputs.sampling` runs them concurrently.

Each response becomes a :class:`verifier.inputs.records.Record` (the same format the Locust file writes),
classified by :mod:`verifier.inputs.classify` with the attribution of :mod:`verifier.inputs.attribution`.

The target must apply the split: a sidecar, an ingress gateway, the local mesh entry. A pod address or a
``kubectl port-forward`` to the service bypasses the VirtualService (one connection pins one pod).
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Sequence
from typing import Protocol
from urllib.parse import urlsplit

from splitproof.verifier.boutique import PRODUCT_IDS
from splitproof.verifier.errors import InputError, Unreachable
from splitproof.verifier.inputs.attribution import Attribution
from splitproof.verifier.inputs.classify import error_metadata, grpc_reply_outcome, product_page_outcome
from splitproof.verifier.inputs.records import STATUS_OK, Record, error_status

SOURCE = "verify-split"

PROXY_WARNING = (
    "The target must be a proxy that applies the split: the local mesh entry, a client's sidecar, or an ingress "
    "gateway with a VirtualService bound to it. A pod address or `kubectl port-forward` to the service bypasses "
    "the VirtualService (one connection pins one pod) and looks like a misroute."
)
URL_WARNING = (
    "The URL must reach the frontend through the mesh (ingress gateway or a frontend with its sidecar): the "
    "frontend's Envoy applies the recommendationservice split; a port-forward to a recommendation pod does not."
)


def page_text(body: bytes, charset: str | None) -> str:
    """A page's text, decoded by the charset its Content-Type names (``response.msg.get_content_charset()``) --
    UTF-8 when it names none or one Python does not know -- with undecodable bytes replaced, as the Locust file
    decodes a page that is not plain ASCII."""
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # an unknown charset name
        return body.decode("utf-8", errors="replace")


def product_ids() -> tuple[str, ...]:
    """Real product ids to request, one per call, rotating: the upstream catalog's 9 (verifier.boutique)."""
    return PRODUCT_IDS


def parse_target(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) -> (host, port); InputError when malformed."""
    host, sep, port_text = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InputError(f"--target must be HOST:PORT, got {text!r}")
    return host, int(port_text)


def parse_url(text: str) -> tuple[str, str, int, str]:
    """``http(s)://host[:port][/base]`` -> (scheme, host, port, base path without trailing slash)."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"--url must look like http://HOST[:PORT], got {text!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InputError(f"--url has a bad port: {text!r}") from None
    return parts.scheme, parts.hostname, port, parts.path.rstrip("/")


class Probe(Protocol):
    """One request -> one Record. ``check`` raises Unreachable when nothing answers; ``last_error`` explains."""

    target: str
    last_error: str

    def check(self, timeout: float) -> None: ...

    def __call__(self, i: int) -> Record: ...

    def close(self) -> None: ...


class GrpcProbe:
    """ListRecommendations with one real product id per call over one shared channel (HTTP/2 stream per call:
    Envoy draws the weighted cluster per call)."""

    def __init__(self, target: str, attribution: Attribution, timeout: float = 5.0,
                 products: Sequence[str] | None = None) -> None:
        import grpc

        from splitproof.protos import demo_pb2, demo_pb2_grpc

        parse_target(target)
        self.target = target
        self.attribution = attribution
        self.timeout = timeout
        self.products = tuple(products or product_ids())
        self.last_error = ""
        self._grpc = grpc
        self._request = demo_pb2.ListRecommendationsRequest
        self._channel = grpc.insecure_channel(target)
        self._stub = demo_pb2_grpc.RecommendationServiceStub(self._channel)

    def check(self, timeout: float) -> None:
        try:
            self._grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except self._grpc.FutureTimeoutError:
            raise Unreachable(f"target unreachable: cannot connect to {self.target} (gRPC) within {timeout:g}s") \
                from None

    def __call__(self, i: int) -> Record:
        request = self._request(user_id=SOURCE, product_ids=[self.products[i % len(self.products)]])
        start = time.perf_counter()
        try:
            response, call = self._stub.ListRecommendations.with_call(request, timeout=self.timeout)
        except self._grpc.RpcError as exc:
            latency = 1000 * (time.perf_counter() - start)
            code = exc.code() if hasattr(exc, "code") else None
            name = code.name if code is not None else "UNKNOWN"
            self.last_error = f"{name}: {exc.details() if hasattr(exc, 'details') else exc}"
            metadata = error_metadata(exc) if self.attribution.header is not None else None
            return grpc_reply_outcome(None, name, self.attribution, metadata).record(time.time(), latency, SOURCE)
        latency = 1000 * (time.perf_counter() - start)
        metadata = None
        if self.attribution.header is not None:
            metadata = {str(k): str(v) for k, v in (call.initial_metadata() or ())}
        outcome = grpc_reply_outcome(list(response.product_ids), None, self.attribution, metadata)
        return outcome.record(time.time(), latency, SOURCE)

    def close(self) -> None:
        self._channel.close()


MAX_PAGE_BYTES = 1 << 20  # a product page is ~10 KB; a bigger answer is an error response, never read whole


def describe_http_error(exc: BaseException, host: str, port: int) -> str:
    """A one-line, printable cause for a failed HTTP/1.1 exchange (never the raw bytes a server sent)."""
    if isinstance(exc, http.client.BadStatusLine):
        line = exc.line if isinstance(exc.line, str) else repr(exc.line)
        if line.startswith("\x00\x00") or not line.isprintable():
            return (f"{host}:{port} does not speak HTTP/1.1 (it answered with binary data: an HTTP/2 or gRPC "
                    f"port? --target HOST:PORT samples gRPC)")
        return f"{host}:{port} sent a malformed HTTP status line: {line[:80]!r}"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


class HttpProbe:
    """GET /product/{id} with keep-alive (one connection per worker thread); counts the recommendations section."""

    def __init__(self, url: str, attribution: Attribution, timeout: float = 5.0,
                 products: Sequence[str] | None = None) -> None:
        self.scheme, self.host, self.port, self.base = parse_url(url)
        self.target = url
        self.attribution = attribution
        self.timeout = timeout
        self.products = tuple(products or product_ids())
        self.last_error = ""
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            conn = cls(self.host, self.port, timeout=self.timeout)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def check(self, timeout: float) -> None:
        import socket

        try:
            with socket.create_connection((self.host, self.port), timeout=timeout):
                pass
        except OSError as exc:
            raise Unreachable(f"target unreachable: cannot connect to {self.host}:{self.port} ({self.target}): "
                              f"{exc.strerror or exc}") from None

    def __call__(self, i: int) -> Record:
        path = f"{self.base}/product/{self.products[i % len(self.products)]}"
        start = time.perf_counter()
        conn = self._connection()
        try:
            conn.request("GET", path, headers={"User-Agent": SOURCE, "Accept": "text/html"})
            response = conn.getresponse()
            body = response.read(MAX_PAGE_BYTES + 1) if (response.length or 0) <= MAX_PAGE_BYTES else b""
            headers = {k: v for k, v in response.getheaders()}
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            self.last_error = describe_http_error(exc, self.host, self.port)
            return Record(time.time(), "http", None, None, error_status("connection"),
                          1000 * (time.perf_counter() - start), SOURCE)
        if len(body) > MAX_PAGE_BYTES or (response.length or 0) > MAX_PAGE_BYTES:
            conn.close()  # the rest of the body is not read: the connection cannot be reused
            self.last_error = f"{path}: the page is larger than {MAX_PAGE_BYTES >> 20} MiB (not a product page?)"
            return Record(time.time(), "http", None, None, error_status("page_too_large"),
                          1000 * (time.perf_counter() - start), SOURCE)
        latency = 1000 * (time.perf_counter() - start)
        # a page without the section (its recommendation call failed) is an error, never "canary"
        outcome = product_page_outcome(status, page_text(body, response.msg.get_content_charset()), self.attribution,
                                       headers)
        if outcome.status != STATUS_OK:
            self.last_error = f"{outcome.failure} for {path}"
        return outcome.record(time.time(), latency, SOURCE)

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
