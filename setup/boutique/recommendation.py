"""recommendationservice: upstream behaviour, with ``max_responses`` configurable so the canary is the same code.

Per call: ListProducts on the catalog, drop the requested ids, return ``random.sample`` of
``min(max_responses, remaining)`` ids. ``user_id`` is ignored. Catalog unreachable -> UNAVAILABLE with a message.

A canary that can be bad (:class:`Faults`, not upstream): every call first waits ``extra_latency_s`` (never past
the caller's deadline), then fails with ``error_code`` with probability ``error_rate`` -- independent draws, from a
seeded generator when ``seed`` is given, so a test knows exactly which calls fail.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import grpc

from splitproof.protos import demo_pb2, demo_pb2_grpc
from splitproof.setup.boutique.grpcutil import add_health, bind_and_start, new_grpc_server

SERVICE_NAME = "hipstershop.RecommendationService"
DEFAULT_PORT = 8080
DEFAULT_MAX_RESPONSES = 5
CATALOG_TIMEOUT_S = 3.0  # deadline of the per-call ListProducts (shortened to the caller's remaining deadline)

MAX_EXTRA_LATENCY_MS = 60_000

log = logging.getLogger("boutique.recommendation")


@dataclass(frozen=True)
class Faults:
    """Injected misbehaviour of one instance: a share of failed calls and added latency."""

    error_rate: float = 0.0                                  # fraction of calls that fail
    error_code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    extra_latency_s: float = 0.0
    seed: int | None = None

    @property
    def active(self) -> bool:
        return self.error_rate > 0 or self.extra_latency_s > 0

    def describe(self) -> str:
        if not self.active:
            return "none"
        parts = []
        if self.error_rate > 0:
            parts.append(f"{100 * self.error_rate:g}% of calls fail with {self.error_code.name}")
        if self.extra_latency_s > 0:
            parts.append(f"+{1000 * self.extra_latency_s:g} ms per call")
        seeded = f" (seed {self.seed})" if self.seed is not None else ""
        return ", ".join(parts) + seeded


def parse_status_code(value: str | int) -> grpc.StatusCode:
    """A gRPC status by name (``UNAVAILABLE``, case-insensitive) or number (``14``); never OK."""
    text = str(value).strip()
    code = None
    if text.isdigit():
        code = next((c for c in grpc.StatusCode if c.value[0] == int(text)), None)
    else:
        code = getattr(grpc.StatusCode, text.upper(), None)
    if not isinstance(code, grpc.StatusCode):
        names = ", ".join(c.name for c in grpc.StatusCode if c is not grpc.StatusCode.OK)
        raise ValueError(f"unknown gRPC status {value!r} (one of {names}, or its number)")
    if code is grpc.StatusCode.OK:
        raise ValueError("the injected error code cannot be OK")
    return code


def parse_faults(error_rate_percent: str | float | None = None, error_code: str | int | None = None,
                 extra_latency_ms: str | float | None = None, seed: str | int | None = None) -> Faults:
    """Faults from option values (strings allowed); ValueError with a one-line message when invalid."""
    def number(value: str | float, what: str, lo: float, hi: float) -> float:
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be a number, got {value!r}") from None
        if not lo <= x <= hi:  # also rejects nan
            raise ValueError(f"{what} must be from {lo:g} to {hi:g}, got {value}")
        return x

    rate = 0.0 if error_rate_percent is None else number(error_rate_percent, "--error-rate", 0, 100) / 100
    delay = 0.0 if extra_latency_ms is None else number(extra_latency_ms, "--extra-latency-ms", 0,
                                                       MAX_EXTRA_LATENCY_MS) / 1000
    code = grpc.StatusCode.UNAVAILABLE if error_code is None else parse_status_code(error_code)
    fault_seed = None
    if seed is not None:
        try:
            fault_seed = int(seed)
        except (TypeError, ValueError):
            raise ValueError(f"--fault-seed must be an integer, got {seed!r}") from None
    return Faults(rate, code, delay, fault_seed)


class FaultInjector:
    """Decides, call by call and thread-safely, whether a call fails (independent draws)."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._rng = random.Random(faults.seed)
        self._lock = threading.Lock()

    def fails(self) -> bool:
        if self.faults.error_rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < self.faults.error_rate


def recommend(catalog_ids: Sequence[str], requested: Iterable[str], max_responses: int,
              rng: random.Random | None = None) -> list[str]:
    """Upstream's choice: a uniform random sample, without the requested ids, of at most ``max_responses`` ids."""
    excluded = set(requested)
    remaining = [pid for pid in dict.fromkeys(catalog_ids) if pid not in excluded]
    return (rng or random).sample(remaining, min(max_responses, len(remaining)))


class RecommendationServicer(demo_pb2_grpc.RecommendationServiceServicer):
    def __init__(self, catalog: demo_pb2_grpc.ProductCatalogServiceStub, catalog_addr: str,
                 max_responses: int = DEFAULT_MAX_RESPONSES, catalog_timeout: float = CATALOG_TIMEOUT_S,
                 faults: Faults | None = None) -> None:
        self._catalog = catalog
        self._catalog_addr = catalog_addr
        self._max = max_responses
        self._timeout = catalog_timeout
        self._faults = FaultInjector(faults or Faults())

    def _inject(self, context: grpc.ServicerContext) -> None:
        faults = self._faults.faults
        if faults.extra_latency_s > 0:
            remaining = context.time_remaining()
            if remaining is not None and remaining <= faults.extra_latency_s:
                # The call would outlive its deadline: wait it out, then say so, rather than racing the caller's
                # own timer with an answer that lands a hair inside the (propagated, slightly shorter) deadline.
                time.sleep(max(0.0, remaining))
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                              f"injected latency of {1000 * faults.extra_latency_s:g} ms exceeds the deadline")
            time.sleep(faults.extra_latency_s)
        if self._faults.fails():
            context.abort(faults.error_code, f"injected fault: {100 * faults.error_rate:g}% of calls fail")

    def ListRecommendations(self, request: demo_pb2.ListRecommendationsRequest,
                            context: grpc.ServicerContext) -> demo_pb2.ListRecommendationsResponse:
        self._inject(context)
        remaining = context.time_remaining()
        timeout = self._timeout if remaining is None else max(0.001, min(self._timeout, remaining))
        try:
            listing = self._catalog.ListProducts(demo_pb2.Empty(), timeout=timeout)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            details = exc.details() if hasattr(exc, "details") else str(exc)
            message = (f"product catalog at {self._catalog_addr} unavailable: "
                       f"{code.name if code else 'error'}: {details}")
            log.warning("ListRecommendations: %s", message)
            context.abort(grpc.StatusCode.UNAVAILABLE, message)
        ids = recommend([p.id for p in listing.products], request.product_ids, self._max)
        return demo_pb2.ListRecommendationsResponse(product_ids=ids)


def serve_recommendation(catalog_addr: str, host: str = "127.0.0.1", port: int = 0,
                         max_responses: int = DEFAULT_MAX_RESPONSES,
                         catalog_timeout: float = CATALOG_TIMEOUT_S,
                         faults: Faults | None = None) -> tuple[grpc.Server, int]:
    """Build and start the recommendation server; returns (server, bound port).

    The catalog channel is created once and closed when the server stops (``server.stop(grace)``).
    """
    if max_responses < 0:
        raise ValueError(f"max_responses must be >= 0, got {max_responses}")
    channel = grpc.insecure_channel(catalog_addr)
    stub = demo_pb2_grpc.ProductCatalogServiceStub(channel)
    server = new_grpc_server()
    servicer = RecommendationServicer(stub, catalog_addr, max_responses, catalog_timeout, faults)
    demo_pb2_grpc.add_RecommendationServiceServicer_to_server(servicer, server)
    add_health(server, SERVICE_NAME)
    try:
        bound = bind_and_start(server, host, port)
    except BaseException:
        channel.close()
        raise
    _close_with(server, channel)
    return server, bound


def _close_with(server: grpc.Server, channel: grpc.Channel) -> None:
    """Close ``channel`` once ``server`` has stopped (grpc.Server has no stop hook)."""
    def closer() -> None:
        server.wait_for_termination()
        channel.close()

    threading.Thread(target=closer, name="close-catalog-channel", daemon=True).start()
