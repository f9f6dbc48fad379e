"""The shop's routes -> pages, independent of the HTTP server: upstream getRecommendations (one
ListRecommendations per page, the first 4 shown), carts, checkout, errors as upstream's error page."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from splitproof.protos import demo_pb2
from splitproof.setup.boutique.frontend.backends import BackendError, Carts, CatalogView, Recommendations
from splitproof.setup.boutique.frontend.pages import (
    PageContext,
    pick_ad,
    render_cart,
    render_error,
    render_home,
    render_order,
    render_product,
)
from splitproof.setup.boutique.frontend.ratelog import RateLimitedLog
from splitproof.verifier.boutique import MAX_SHOWN

MAX_QUANTITY = 10

log = logging.getLogger("boutique.frontend")


@dataclass
class Response:
    status: int
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "text/html; charset=utf-8"


class Shop:
    """Route logic, independent of the HTTP server plumbing."""

    def __init__(self, catalog: CatalogView, recommendations: Recommendations, carts: Carts | None = None) -> None:
        self.catalog = catalog
        self.recommendations = recommendations
        self.carts = carts or Carts()
        self._warn = RateLimitedLog(log)

    def _recommended(self, session: str, product_ids: Sequence[str]) -> list[demo_pb2.Product] | None:
        """Upstream getRecommendations: one ListRecommendations, details per id, first 4; None (logged) on error."""
        try:
            ids = self.recommendations.list(session, product_ids)
            products = [self.catalog.get(pid) for pid in ids]
        except BackendError as exc:
            self._warn.warning("recommendations", f"failed to get product recommendations: {exc}")
            return None
        return products[:MAX_SHOWN]

    def _ctx(self, session: str, currency: str) -> PageContext:
        return PageContext(session, currency, sum(q for _, q in self.carts.get(session)))

    def error(self, status: int, reason: str, message: str, session: str, currency: str) -> Response:
        log.error("request error: %s %s: %s", status, reason, message)
        return Response(status, render_error(status, reason, message, self._ctx(session, currency)))

    def home(self, session: str, currency: str) -> Response:
        try:
            products = self.catalog.list()
        except BackendError as exc:
            return self.error(500, "Internal Server Error", str(exc), session, currency)
        return Response(200, render_home(products, pick_ad(products, None), self._ctx(session, currency)))

    def product(self, session: str, currency: str, product_id: str) -> Response:
        try:
            product = self.catalog.get(product_id)
        except BackendError as exc:
            return self.error(500, "Internal Server Error", str(exc), session, currency)
        recommended = self._recommended(session, [product_id])
        try:
            ad = pick_ad(self.catalog.list(), product)
        except BackendError:
            ad = None
        return Response(200, render_product(product, recommended, ad, self._ctx(session, currency)))

    def _cart_items(self, session: str) -> list[tuple[demo_pb2.Product, int]]:
        return [(self.catalog.get(pid), q) for pid, q in self.carts.get(session)]

    def view_cart(self, session: str, currency: str) -> Response:
        ids = [pid for pid, _ in self.carts.get(session)]
        recommended = self._recommended(session, ids)
        try:
            items = self._cart_items(session)
        except BackendError as exc:
            return self.error(500, "Internal Server Error", str(exc), session, currency)
        return Response(200, render_cart(items, recommended, self._ctx(session, currency)))

    def add_to_cart(self, session: str, currency: str, form: dict[str, list[str]]) -> Response:
        product_id = (form.get("product_id") or [""])[0]
        try:
            quantity = int((form.get("quantity") or [""])[0])
        except ValueError:
            quantity = 0
        if not product_id or not 1 <= quantity <= MAX_QUANTITY:
            return self.error(422, "Unprocessable Entity",
                              f"invalid cart item: product_id={product_id!r} quantity must be 1..{MAX_QUANTITY}",
                              session, currency)
        try:
            product = self.catalog.get(product_id)
        except BackendError as exc:
            return self.error(500, "Internal Server Error", str(exc), session, currency)
        self.carts.add(session, product.id, quantity)
        return Response(302, headers=(("Location", "/cart"),))

    def empty_cart(self, session: str) -> Response:
        self.carts.empty(session)
        return Response(302, headers=(("Location", "/"),))

    def checkout(self, session: str, currency: str) -> Response:
        try:
            items = self._cart_items(session)
        except BackendError as exc:
            return self.error(500, "Internal Server Error", str(exc), session, currency)
        self.carts.empty(session)
        recommended = self._recommended(session, [])
        return Response(200, render_order(str(uuid.uuid4()), items, recommended, self._ctx(session, currency)))


def valid_currency(code: str) -> bool:
    return len(code) == 3 and code.isascii() and code.isalpha() and code.isupper()
