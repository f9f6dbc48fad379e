"""Live sampling: gRPC ListRecommendations (``--target``) or product pages over HTTP (``--url``).

Each response becomes a :class:`verifier.records.Record` (the same format the Locust file writes), attributed
with :mod:`verifier.attribution`. Worker threads issue requests; the calling thread consumes the records, so the
sequential gate and the progress display need no locks. Bounded by ``max_samples`` and ``duration``; stops as
soon as the consumer says so (the gate decided).

The target must apply the split: a sidecar, an ingress gateway, the local mesh entry. A pod address or a
``kubectl port-forward`` to the service bypasses the VirtualService (one connection pins one pod).
"""

from __future__ import annotations

import http.client
import itertools
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from splitproof.verifier.attribution import Attribution
from splitproof.verifier.boutique import PRODUCT_IDS
from splitproof.verifier.errors import InputError, Unreachable
from splitproof.verifier.outcome import grpc_reply_outcome, product_page_outcome
from splitproof.verifier.records import STATUS_OK, Record, error_status

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


def product_ids() -> tuple[str, ...]:
    """Real product ids to request, one per call, rotating: the upstream catalog's 9 (setup.boutique.catalog)."""
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
            return grpc_reply_outcome(None, name, self.attribution).record(time.time(), latency, SOURCE)
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
        outcome = product_page_outcome(status, body.decode("utf-8", errors="replace"), self.attribution, headers)
        if outcome.status != STATUS_OK:
            self.last_error = f"{outcome.failure} for {path}"
        return outcome.record(time.time(), latency, SOURCE)

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


@dataclass(frozen=True)
class SamplingResult:
    stop_reason: str  # "decided" | "max-samples" | "duration"
    observed: int     # records handed to the consumer
    discarded: int    # responses that completed after the stop (not observed)
    elapsed: float


_DONE = object()


def sample(probe: Probe, *, concurrency: int, max_samples: int | None, duration: float | None,
           on_record: Callable[[Record], bool], stop: threading.Event | None = None) -> SamplingResult:
    """Run ``concurrency`` workers calling ``probe`` until ``on_record`` returns True, ``max_samples`` records were
    observed, ``duration`` seconds passed or ``stop`` is set. ``on_record`` runs in the calling thread; an
    exception from it (or KeyboardInterrupt) stops the workers and propagates."""
    stop = stop or threading.Event()
    results: queue.Queue[object] = queue.Queue()
    tickets = itertools.count()
    ticket_lock = threading.Lock()

    def worker() -> None:
        try:
            while not stop.is_set():
                with ticket_lock:
                    i = next(tickets)
                if max_samples is not None and i >= max_samples:
                    break
                try:
                    results.put(probe(i))
                except Exception as exc:  # a probe bug must not hang the run: report it as an error response
                    probe.last_error = f"{type(exc).__name__}: {exc}"
                    results.put(Record(time.time(), "grpc", None, None, error_status("client"), 0.0, SOURCE))
        finally:
            results.put(_DONE)

    started = time.monotonic()
    deadline = started + duration if duration else None
    threads = [threading.Thread(target=worker, name=f"verify-split-{k}", daemon=True) for k in range(concurrency)]
    for thread in threads:
        thread.start()
    observed = discarded = finished = 0
    reason = "max-samples"
    try:
        while finished < len(threads):
            wait = 0.1
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - time.monotonic()))
            try:
                item = results.get(timeout=wait) if wait > 0 else results.get_nowait()
            except queue.Empty:
                item = None
            if item is _DONE:
                finished += 1
                continue
            if deadline is not None and time.monotonic() >= deadline and not stop.is_set():
                stop.set()
                reason = "duration"
            if item is None:
                continue
            if stop.is_set():
                discarded += 1
                continue
            assert isinstance(item, Record)
            observed += 1
            if on_record(item):
                stop.set()
                reason = "decided"
            elif max_samples is not None and observed >= max_samples:
                stop.set()
                reason = "max-samples"
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=probe_timeout(probe) + 1.0)
    return SamplingResult(reason, observed, discarded, time.monotonic() - started)


def probe_timeout(probe: Probe) -> float:
    return float(getattr(probe, "timeout", 5.0))
