"""The frontend's HTTP server: cookies (``shop_session-id`` is the ``user_id``), routing, keep-alive with
TCP_NODELAY, binding (PortInUseError when taken), and the backend channels it closes on stop."""

from __future__ import annotations

import errno
import http.cookies
import logging
import threading
import urllib.parse
import uuid
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc

from splitproof.protos import demo_pb2_grpc
from splitproof.setup.boutique.frontend.backends import CATALOG_TTL_S, CatalogView, Recommendations
from splitproof.setup.boutique.frontend.shop import Response, Shop, valid_currency
from splitproof.setup.errors import PortInUseError, SetupError

DEFAULT_PORT = 8080
COOKIE_SESSION = "shop_session-id"
COOKIE_CURRENCY = "shop_currency"
COOKIE_MAX_AGE = 60 * 60 * 48
DEFAULT_CURRENCY = "USD"

log = logging.getLogger("boutique.frontend")


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
