"""recommendationservice: upstream behaviour, with ``max_responses`` configurable so the canary is the same code.

Per call: ListProducts on the catalog, drop the requested ids, return ``random.sample`` of
``min(max_responses, remaining)`` ids. ``user_id`` is ignored. Catalog unreachable -> UNAVAILABLE with a message.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterable, Sequence

import grpc

from splitproof.protos import demo_pb2, demo_pb2_grpc
from splitproof.setup.boutique.grpcutil import add_health, bind_and_start, new_grpc_server

SERVICE_NAME = "hipstershop.RecommendationService"
DEFAULT_PORT = 8080
DEFAULT_MAX_RESPONSES = 5
CATALOG_TIMEOUT_S = 3.0  # deadline of the per-call ListProducts (shortened to the caller's remaining deadline)

log = logging.getLogger("boutique.recommendation")


def recommend(catalog_ids: Sequence[str], requested: Iterable[str], max_responses: int,
              rng: random.Random | None = None) -> list[str]:
    """Upstream's choice: a uniform random sample, without the requested ids, of at most ``max_responses`` ids."""
    excluded = set(requested)
    remaining = [pid for pid in dict.fromkeys(catalog_ids) if pid not in excluded]
    return (rng or random).sample(remaining, min(max_responses, len(remaining)))


class RecommendationServicer(demo_pb2_grpc.RecommendationServiceServicer):
    def __init__(self, catalog: demo_pb2_grpc.ProductCatalogServiceStub, catalog_addr: str,
                 max_responses: int = DEFAULT_MAX_RESPONSES, catalog_timeout: float = CATALOG_TIMEOUT_S) -> None:
        self._catalog = catalog
        self._catalog_addr = catalog_addr
        self._max = max_responses
        self._timeout = catalog_timeout

    def ListRecommendations(self, request: demo_pb2.ListRecommendationsRequest,
                            context: grpc.ServicerContext) -> demo_pb2.ListRecommendationsResponse:
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
                         catalog_timeout: float = CATALOG_TIMEOUT_S) -> tuple[grpc.Server, int]:
    """Build and start the recommendation server; returns (server, bound port).

    The catalog channel is created once and closed when the server stops (``server.stop(grace)``).
    """
    if max_responses < 0:
        raise ValueError(f"max_responses must be >= 0, got {max_responses}")
    channel = grpc.insecure_channel(catalog_addr)
    stub = demo_pb2_grpc.ProductCatalogServiceStub(channel)
    server = new_grpc_server()
    servicer = RecommendationServicer(stub, catalog_addr, max_responses, catalog_timeout)
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
