"""The frontend's backends: product details (catalog gRPC service or the built-in table), the
ListRecommendations client (the call Envoy splits), and in-memory carts."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

import grpc

from splitproof.protos import demo_pb2, demo_pb2_grpc
from splitproof.setup.boutique.catalog import PRODUCTS, find_product

RPC_TIMEOUT_S = 3.0
CATALOG_TTL_S = 5.0
MAX_SESSIONS = 10_000         # in-memory carts kept (least recently used dropped first)


class BackendError(Exception):
    """A backend call failed; the message says which call and why."""


def _rpc_error_text(exc: grpc.RpcError) -> str:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return f"rpc error: code = {code.name if code else 'UNKNOWN'} desc = {details}"


class CatalogView:
    """Product details for pages. Backed by the catalog gRPC service, or by the built-in table when ``stub`` is None.

    ``ListProducts`` is cached for ``ttl`` seconds; ``get`` of an id not in the cache calls ``GetProduct``.
    """

    def __init__(self, stub: demo_pb2_grpc.ProductCatalogServiceStub | None, ttl: float = CATALOG_TTL_S,
                 timeout: float = RPC_TIMEOUT_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._stub = stub
        self._ttl = ttl
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, demo_pb2.Product] = {}
        self._listing: list[demo_pb2.Product] = []
        self._expires = float("-inf")

    def list(self) -> list[demo_pb2.Product]:
        if self._stub is None:
            return list(PRODUCTS)
        with self._lock:
            if self._clock() < self._expires:
                return self._listing
            try:
                resp = self._stub.ListProducts(demo_pb2.Empty(), timeout=self._timeout)
            except grpc.RpcError as exc:
                raise BackendError(f"could not retrieve products: {_rpc_error_text(exc)}") from None
            self._listing = list(resp.products)
            self._cache = {p.id: p for p in self._listing}
            self._expires = self._clock() + self._ttl
            return self._listing

    def get(self, product_id: str) -> demo_pb2.Product:
        if self._stub is None:
            product = find_product(product_id)
            if product is None:
                raise BackendError(f"could not retrieve product: no product with ID {product_id}")
            return product
        try:
            self.list()
        except BackendError:
            pass  # fall through to GetProduct, which reports its own error
        with self._lock:
            cached = self._cache.get(product_id) if self._clock() < self._expires else None
        if cached is not None:
            return cached
        try:
            return self._stub.GetProduct(demo_pb2.GetProductRequest(id=product_id), timeout=self._timeout)
        except grpc.RpcError as exc:
            raise BackendError(f"could not retrieve product: {_rpc_error_text(exc)}") from None


class Recommendations:
    """The ListRecommendations client. ``stub`` None means no recommendation service is configured."""

    def __init__(self, stub: demo_pb2_grpc.RecommendationServiceStub | None, timeout: float = RPC_TIMEOUT_S) -> None:
        self._stub = stub
        self._timeout = timeout

    def list(self, user_id: str, product_ids: Sequence[str]) -> list[str]:
        if self._stub is None:
            raise BackendError("no recommendation service configured")
        request = demo_pb2.ListRecommendationsRequest(user_id=user_id, product_ids=list(product_ids))
        try:
            return list(self._stub.ListRecommendations(request, timeout=self._timeout).product_ids)
        except grpc.RpcError as exc:
            raise BackendError(f"failed to get product recommendations: {_rpc_error_text(exc)}") from None


class Carts:
    """In-memory carts per session: {product_id: quantity}, bounded to ``max_sessions`` (LRU)."""

    def __init__(self, max_sessions: int = MAX_SESSIONS) -> None:
        self._max = max_sessions
        self._lock = threading.Lock()
        self._carts: OrderedDict[str, dict[str, int]] = OrderedDict()

    def get(self, session: str) -> list[tuple[str, int]]:
        with self._lock:
            cart = self._carts.get(session)
            if cart is None:
                return []
            self._carts.move_to_end(session)
            return list(cart.items())

    def add(self, session: str, product_id: str, quantity: int) -> None:
        with self._lock:
            cart = self._carts.setdefault(session, {})
            self._carts.move_to_end(session)
            cart[product_id] = cart.get(product_id, 0) + quantity
            while len(self._carts) > self._max:
                self._carts.popitem(last=False)

    def empty(self, session: str) -> None:
        with self._lock:
            self._carts.pop(session, None)
