"""The shop's HTTP frontend: what a browser (or the upstream Locust load generator) sees of Online Boutique.

Upstream behaviour kept where the split measurement depends on it:

- ``/product/{id}``: exactly ONE ``ListRecommendations(user_id=<session>, product_ids=[id])`` per page (that call is
  what Envoy splits), details for each recommended id, then only the **first 4** are shown, inside
  ``<section class="recommendations">`` ... ``<h2>You May Also Like</h2>``, one ``<div class="col-md-3">`` per item.
  An ad linking to a product is rendered outside that section. Recommendation call failing -> the page is still 200,
  without the section, and the failure is logged. Unknown product id -> 500.
- ``shop_session-id`` cookie (a UUID, set when missing) is the ``user_id``.
- Other routes: ``/``, ``/cart`` (GET/POST), ``/cart/empty``, ``/cart/checkout``, ``/setCurrency``, ``/logout``,
  ``/_healthz``, ``/robots.txt``. Static files are not served (404): pages reference upstream's image paths.

Not upstream: product details come from a short-TTL cache of ``ListProducts`` (throughput); an id missing from the
cache still goes to ``GetProduct`` (so an unknown id is NOT_FOUND -> 500). Prices are shown in USD (there is no
currency service); the chosen currency is only remembered in its cookie. Carts live in memory.
"""

from __future__ import annotations

import errno
import html
import http.cookies
import logging
import random
import threading
import time
import urllib.parse
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc

from splitproof.protos import demo_pb2, demo_pb2_grpc
from splitproof.setup.boutique.catalog import PRODUCTS, find_product
from splitproof.setup.errors import PortInUseError, SetupError
from splitproof.verifier.boutique import ITEM_OPEN, MAX_SHOWN, SECTION_CLOSE, SECTION_HEADING, SECTION_OPEN

DEFAULT_PORT = 8080
RPC_TIMEOUT_S = 3.0
CATALOG_TTL_S = 5.0
MAX_SESSIONS = 10_000         # in-memory carts kept (least recently used dropped first)
MAX_QUANTITY = 10
COOKIE_SESSION = "shop_session-id"
COOKIE_CURRENCY = "shop_currency"
COOKIE_MAX_AGE = 60 * 60 * 48
DEFAULT_CURRENCY = "USD"

log = logging.getLogger("boutique.frontend")


class BackendError(Exception):
    """A backend call failed; the message says which call and why."""


def _rpc_error_text(exc: grpc.RpcError) -> str:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return f"rpc error: code = {code.name if code else 'UNKNOWN'} desc = {details}"


class RateLimitedLog:
    """Log a repeated warning at most once per ``interval`` seconds per key, saying how many were suppressed."""

    def __init__(self, logger: logging.Logger, interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str) -> bool:
        """Returns True when the message was emitted."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        extra = f" (+{suppressed} similar suppressed)" if suppressed else ""
        self._logger.warning("%s%s", message, extra)
        return True


# ---------------------------------------------------------------- backends


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


# ---------------------------------------------------------------- rendering (pure functions)


def format_money(money: demo_pb2.Money, quantity: int = 1) -> str:
    nanos_total = (money.units * 1_000_000_000 + money.nanos) * quantity
    units, nanos = divmod(nanos_total, 1_000_000_000)
    symbol = "$" if money.currency_code in ("", "USD") else money.currency_code + " "
    return f"{symbol}{units}.{nanos // 10_000_000:02d}"


def _total(items: Sequence[tuple[demo_pb2.Product, int]]) -> demo_pb2.Money:
    nanos = sum((p.price_usd.units * 1_000_000_000 + p.price_usd.nanos) * q for p, q in items)
    units, rest = divmod(nanos, 1_000_000_000)
    return demo_pb2.Money(currency_code="USD", units=units, nanos=rest)


@dataclass(frozen=True)
class PageContext:
    session_id: str
    currency: str
    cart_size: int


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _layout(title: str, body: str, ctx: PageContext) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"UTF-8\">\n"
        f"<title>{_e(title)} | Online Boutique</title>\n</head>\n<body>\n"
        "<header>\n<div class=\"navbar\">\n<a href=\"/\" class=\"navbar-brand\">Online Boutique</a>\n"
        "<form method=\"POST\" action=\"/setCurrency\" class=\"controls\">\n"
        f"<span class=\"currency\">{_e(ctx.currency)}</span>\n"
        "<input type=\"hidden\" name=\"currency_code\" value=\"USD\">\n</form>\n"
        f"<a href=\"/cart\" class=\"cart-link\">Cart ({ctx.cart_size})</a>\n</div>\n</header>\n"
        f"{body}\n"
        f"<footer class=\"py-5\">\n<p>session-id: {_e(ctx.session_id)}</p>\n</footer>\n</body>\n</html>\n"
    )


def render_recommendations(products: Sequence[demo_pb2.Product]) -> str:
    """The upstream recommendations section; empty string when there is nothing to show (as upstream)."""
    if not products:
        return ""
    items = "".join(
        f"{ITEM_OPEN}\n<div>\n"
        f"<a href=\"/product/{_e(p.id)}\">\n<img alt=\"\" src=\"{_e(p.picture)}\">\n</a>\n"
        f"<div>\n<h5>\n{_e(p.name)}\n</h5>\n</div>\n</div>\n</div>\n"
        for p in products
    )
    return (
        f"{SECTION_OPEN}\n<div class=\"container\">\n<div class=\"row\">\n"
        f"<div class=\"col-xl-10 offset-xl-1\">\n{SECTION_HEADING}\n<div class=\"row\">\n"
        f"{items}</div>\n</div>\n</div>\n</div>\n{SECTION_CLOSE}\n"
    )


def render_ad(product: demo_pb2.Product | None) -> str:
    """A text ad linking to a product -- outside the recommendations section, as upstream."""
    if product is None:
        return ""
    return (
        "<div class=\"ad\">\n<div class=\"container py-3 px-lg-5 py-lg-5\">\n<div role=\"alert\">\n"
        f"<strong>Ad</strong>\n<a href=\"/product/{_e(product.id)}\" rel=\"nofollow noopener noreferrer\" "
        f"target=\"_blank\">\n{_e(product.name)} for {_e(format_money(product.price_usd))}\n</a>\n"
        "</div>\n</div>\n</div>\n"
    )


def render_home(products: Sequence[demo_pb2.Product], ad: demo_pb2.Product | None, ctx: PageContext) -> str:
    cards = "".join(
        "<div class=\"col-md-4 hot-product-card\">\n"
        f"<a href=\"/product/{_e(p.id)}\">\n<img alt=\"\" src=\"{_e(p.picture)}\">\n</a>\n"
        f"<div class=\"hot-product-card-name\">{_e(p.name)}</div>\n"
        f"<div class=\"hot-product-card-price\">{_e(format_money(p.price_usd))}</div>\n</div>\n"
        for p in products
    )
    body = (
        "<main role=\"main\" class=\"home\">\n<div class=\"container-fluid\">\n<div class=\"row\">\n"
        f"<h3>Hot Products</h3>\n{cards}</div>\n</div>\n</main>\n{render_ad(ad)}"
    )
    return _layout("Home", body, ctx)


def render_product(product: demo_pb2.Product, recommendations: Sequence[demo_pb2.Product] | None,
                   ad: demo_pb2.Product | None, ctx: PageContext) -> str:
    options = "".join(f"<option>{q}</option>" for q in (1, 2, 3, 4, 5, 10))
    body = (
        "<main role=\"main\">\n<div class=\"h-product container\">\n<div class=\"row\">\n"
        f"<div class=\"col-md-6\">\n<img class=\"product-image\" alt=\"\" src=\"{_e(product.picture)}\" />\n</div>\n"
        "<div class=\"product-info col-md-5\">\n<div class=\"product-wrapper\">\n"
        f"<h2>{_e(product.name)}</h2>\n<p class=\"product-price\">{_e(format_money(product.price_usd))}</p>\n"
        f"<p>{_e(product.description)}</p>\n"
        "<form method=\"POST\" action=\"/cart\">\n"
        f"<input type=\"hidden\" name=\"product_id\" value=\"{_e(product.id)}\" />\n"
        f"<select name=\"quantity\" id=\"quantity\">{options}</select>\n"
        "<button type=\"submit\" class=\"cymbal-button-primary\">Add To Cart</button>\n</form>\n"
        "</div>\n</div>\n</div>\n</div>\n"
        f"<div>\n{render_recommendations(recommendations or [])}</div>\n"
        f"{render_ad(ad)}</main>\n"
    )
    return _layout(product.name, body, ctx)


def render_cart(items: Sequence[tuple[demo_pb2.Product, int]],
                recommendations: Sequence[demo_pb2.Product] | None, ctx: PageContext) -> str:
    if items:
        rows = "".join(
            "<div class=\"row cart-summary-item-row\">\n"
            f"<div class=\"col-md-4\"><a href=\"/product/{_e(p.id)}\">{_e(p.name)}</a></div>\n"
            f"<div class=\"col\">Quantity: {q}</div>\n"
            f"<div class=\"col text-right\">{_e(format_money(p.price_usd, q))}</div>\n</div>\n"
            for p, q in items
        )
        content = (
            f"<h3>Cart ({sum(q for _, q in items)})</h3>\n{rows}"
            f"<div class=\"row cart-summary-total-row\">Total: {_e(format_money(_total(items)))}</div>\n"
            "<form method=\"POST\" action=\"/cart/empty\"><button type=\"submit\">Empty Cart</button></form>\n"
            "<form method=\"POST\" action=\"/cart/checkout\"><button type=\"submit\">Place Order</button></form>\n"
        )
    else:
        content = "<h3>Your shopping cart is empty!</h3>\n<a href=\"/\">Continue Shopping</a>\n"
    body = (
        f"<main role=\"main\" class=\"cart-sections\">\n<section class=\"container\">\n{content}</section>\n"
        f"<div>\n{render_recommendations(recommendations or [])}</div>\n</main>\n"
    )
    return _layout("Cart", body, ctx)


def render_order(order_id: str, items: Sequence[tuple[demo_pb2.Product, int]],
                 recommendations: Sequence[demo_pb2.Product] | None, ctx: PageContext) -> str:
    body = (
        "<main role=\"main\" class=\"order\">\n<section class=\"container order-complete-section\">\n"
        "<h3>Your order is complete!</h3>\n"
        f"<p>Confirmation #: <span class=\"order-id\">{_e(order_id)}</span></p>\n"
        f"<p>Total paid: {_e(format_money(_total(items)))}</p>\n"
        "<a href=\"/\" class=\"cymbal-button-primary\">Continue Shopping</a>\n</section>\n"
        f"<div>\n{render_recommendations(recommendations or [])}</div>\n</main>\n"
    )
    return _layout("Order complete", body, ctx)


def render_error(status: int, reason: str, message: str, ctx: PageContext) -> str:
    body = (
        "<main role=\"main\">\n<div class=\"container\">\n<h3>Uh, oh!</h3>\n"
        "<p>Something has failed. Below are some details for debugging.</p>\n"
        f"<p><strong>HTTP Status:</strong> {status} {_e(reason)}</p>\n<pre>{_e(message)}</pre>\n</div>\n</main>\n"
    )
    return _layout("Error", body, ctx)


def pick_ad(products: Sequence[demo_pb2.Product], current: demo_pb2.Product | None,
            rng: random.Random | None = None) -> demo_pb2.Product | None:
    """An ad for another product, preferring one sharing a category with ``current`` (like upstream's adservice)."""
    others = [p for p in products if current is None or p.id != current.id]
    if not others:
        return None
    if current is not None:
        related = [p for p in others if set(p.categories) & set(current.categories)]
        others = related or others
    return (rng or random).choice(others)


# ---------------------------------------------------------------- the shop (routes -> pages)


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


# ---------------------------------------------------------------- HTTP plumbing


class FrontendHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"      # keep-alive
    disable_nagle_algorithm = True     # without it keep-alive traffic through Envoy crawls at ~25 req/s
    timeout = 600                      # idle keep-alive connections are closed after 10 minutes
    server_version = "boutique-frontend"
    sys_version = ""
    server: FrontendServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 -- stdlib signature
        log.debug("%s %s", self.address_string(), format % args)

    # -- request helpers

    def _cookies(self) -> http.cookies.SimpleCookie:
        jar: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
        try:
            jar.load(self.headers.get("Cookie", ""))
        except http.cookies.CookieError:
            pass
        return jar

    def _session(self) -> tuple[str, str, list[str]]:
        """(session id, currency, Set-Cookie values to send)."""
        jar = self._cookies()
        set_cookies: list[str] = []
        morsel = jar.get(COOKIE_SESSION)
        if morsel is not None and morsel.value:
            session = morsel.value
        else:
            session = str(uuid.uuid4())
            set_cookies.append(f"{COOKIE_SESSION}={session}; Max-Age={COOKIE_MAX_AGE}; Path=/")
        cur = jar.get(COOKIE_CURRENCY)
        currency = cur.value if cur is not None and valid_currency(cur.value) else DEFAULT_CURRENCY
        return session, currency, set_cookies

    def _form(self) -> dict[str, list[str]] | None:
        """The urlencoded body, or None when it cannot be read (the connection is then closed)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        if length < 0 or length > 1_000_000:
            return None
        raw = self.rfile.read(length) if length else b""
        return urllib.parse.parse_qs(raw.decode("utf-8", "replace"))

    def _send(self, resp: Response, set_cookies: Sequence[str] = (), head: bool = False) -> None:
        body = resp.body.encode("utf-8")
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(body)))
        for value in set_cookies:
            self.send_header("Set-Cookie", value)
        for name, value in resp.headers:
            self.send_header(name, value)
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    # -- dispatch

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        shop = self.server.shop
        session, currency, set_cookies = self._session()
        path = urllib.parse.urlsplit(self.path).path
        try:
            resp = self._route(shop, method, path, session, currency, set_cookies)
        except Exception as exc:  # never kill the connection thread on a bug; answer 500 and log it
            log.exception("unhandled error on %s %s", method, path)
            resp = shop.error(500, "Internal Server Error", f"internal error: {exc}", session, currency)
        if resp is None:
            return
        self._send(resp, set_cookies, head=(method == "HEAD"))

    def _route(self, shop: Shop, method: str, path: str, session: str, currency: str,
               set_cookies: list[str]) -> Response | None:
        read_only = method in ("GET", "HEAD")
        if path == "/_healthz":
            return Response(200, "ok", content_type="text/plain; charset=utf-8")
        if path == "/robots.txt":
            return Response(200, "User-agent: *\nDisallow: /", content_type="text/plain; charset=utf-8")
        if path == "/" and read_only:
            return shop.home(session, currency)
        if path.startswith("/product/") and read_only:
            product_id = urllib.parse.unquote(path[len("/product/"):])
            if product_id and "/" not in product_id:
                return shop.product(session, currency, product_id)
        if path == "/cart" and read_only:
            return shop.view_cart(session, currency)
        if path == "/logout" and method == "GET":
            expired = [f"{name}=; Max-Age=0; Path=/" for name in self._cookies()]
            set_cookies[:] = expired
            return Response(302, headers=(("Location", "/"),))
        if method == "POST" and path in ("/cart", "/cart/empty", "/cart/checkout", "/setCurrency"):
            form = self._form()
            if form is None:
                self.close_connection = True
                return Response(411 if "chunked" in self.headers.get("Transfer-Encoding", "").lower() else 400,
                                "request body must have a valid Content-Length",
                                content_type="text/plain; charset=utf-8")
            if path == "/cart":
                return shop.add_to_cart(session, currency, form)
            if path == "/cart/empty":
                return shop.empty_cart(session)
            if path == "/cart/checkout":
                return shop.checkout(session, currency)
            code = (form.get("currency_code") or [""])[0]
            if not valid_currency(code):
                return shop.error(422, "Unprocessable Entity", f"invalid currency code {code!r}", session, currency)
            set_cookies.append(f"{COOKIE_CURRENCY}={code}; Max-Age={COOKIE_MAX_AGE}; Path=/")
            return Response(302, headers=(("Location", self.headers.get("Referer") or "/"),))
        known = path in ("/", "/cart", "/logout") or path.startswith("/product/")
        if known:
            return Response(405, "method not allowed", headers=(("Allow", "GET, HEAD, POST"),),
                            content_type="text/plain; charset=utf-8")
        return Response(404, "404 page not found", content_type="text/plain; charset=utf-8")


class FrontendServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], shop: Shop, channels: Sequence[grpc.Channel] = ()) -> None:
        self.shop = shop
        self._channels = list(channels)
        super().__init__(address, FrontendHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def stop(self) -> None:
        """Stop accepting, close the listening socket and the backend channels. Safe to call twice."""
        self.shutdown()
        self.server_close()
        for channel in self._channels:
            channel.close()
        self._channels = []


def build_frontend(host: str = "127.0.0.1", port: int = 0, recommendation_addr: str | None = None,
                   catalog_addr: str | None = None, catalog_ttl: float = CATALOG_TTL_S) -> FrontendServer:
    """Bind the frontend (not yet serving). PortInUseError when the port is taken."""
    channels: list[grpc.Channel] = []
    catalog_stub = recs_stub = None
    if catalog_addr:
        channels.append(grpc.insecure_channel(catalog_addr))
        catalog_stub = demo_pb2_grpc.ProductCatalogServiceStub(channels[-1])
    if recommendation_addr:
        channels.append(grpc.insecure_channel(recommendation_addr))
        recs_stub = demo_pb2_grpc.RecommendationServiceStub(channels[-1])
    shop = Shop(CatalogView(catalog_stub, ttl=catalog_ttl), Recommendations(recs_stub))
    try:
        return FrontendServer((host, port), shop, channels)
    except OSError as exc:
        for channel in channels:
            channel.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(f"cannot bind {host}:{port}: {exc.strerror}") from None
        raise SetupError(f"cannot bind {host}:{port}: {exc.strerror or exc}") from None


def serve_frontend(host: str = "127.0.0.1", port: int = 0, recommendation_addr: str | None = None,
                   catalog_addr: str | None = None,
                   catalog_ttl: float = CATALOG_TTL_S) -> tuple[FrontendServer, int]:
    """Build and start the frontend in a background thread; returns (server, bound port). Stop with ``stop()``."""
    server = build_frontend(host, port, recommendation_addr, catalog_addr, catalog_ttl)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="frontend", daemon=True).start()
    return server, server.port
