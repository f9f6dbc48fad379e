"""Local boutique services: real processes on 127.0.0.1 ephemeral ports, always stopped by finalizers."""

from __future__ import annotations

import http.client
import http.cookies
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from helpers import decoys_hit, start_service

from splitproof.protos import demo_pb2, demo_pb2_grpc
from splitproof.setup import net, proc
from splitproof.setup.boutique.catalog import PRODUCT_IDS, PRODUCTS
from splitproof.setup.boutique.frontend.pages import format_money
from splitproof.setup.boutique.frontend.ratelog import RateLimitedLog
from splitproof.setup.boutique.frontend.server import FrontendHandler
from splitproof.setup.boutique.grpcutil import bind_and_start, new_grpc_server
from splitproof.setup.boutique.launcher import Spawned, spawn
from splitproof.setup.boutique.recommendation import recommend
from splitproof.setup.boutique.serve import resolve_options
from splitproof.setup.errors import SetupError
from splitproof.setup.proc import parse_ready
from splitproof.verifier.exitcodes import ExitCode
from splitproof.verifier.inputs.attribution import Attribution, count_recommendations

# The 9 upstream products (GoogleCloudPlatform/microservices-demo src/productcatalogservice/products.json).
UPSTREAM_IDS = ["OLJCESPC7Z", "66VCHSJNUP", "1YMWWN1N4O", "L9ECAV7KIM", "2ZYFJ3GM2N",
                "0PUK6V6EV0", "LS4PSXUNUM", "9SIQT8TOJO", "6E92ZMYYFZ"]
REQUESTED = "OLJCESPC7Z"
SECTION_RE = re.compile(r'<section class="recommendations">(.*?)</section>', re.S)
LINK_RE = re.compile(r'href="/product/([^"]+)"')


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def frontend_production(request: pytest.FixtureRequest, logs: Path, catalog: Spawned,
                        production: Spawned) -> Spawned:
    return start_service(request, logs, "frontend-production", "frontend",
                  ["--catalog-addr", catalog.addr, "--recommendation-addr", production.addr])


@pytest.fixture(scope="module")
def frontend_canary(request: pytest.FixtureRequest, logs: Path, catalog: Spawned, canary: Spawned) -> Spawned:
    return start_service(request, logs, "frontend-canary", "frontend",
                  ["--catalog-addr", catalog.addr, "--recommendation-addr", canary.addr])


class RecordingRecommendations(demo_pb2_grpc.RecommendationServiceServicer):
    """A fake recommendationservice that records each call and answers 5 ids without the requested ones."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self._lock = threading.Lock()

    def ListRecommendations(self, request: demo_pb2.ListRecommendationsRequest,
                            context: grpc.ServicerContext) -> demo_pb2.ListRecommendationsResponse:
        with self._lock:
            self.calls.append((request.user_id, list(request.product_ids)))
        ids = [pid for pid in PRODUCT_IDS if pid not in request.product_ids][:5]
        return demo_pb2.ListRecommendationsResponse(product_ids=ids)


@pytest.fixture(scope="module")
def recording(request: pytest.FixtureRequest) -> tuple[RecordingRecommendations, str]:
    servicer = RecordingRecommendations()
    server = new_grpc_server(4)
    demo_pb2_grpc.add_RecommendationServiceServicer_to_server(servicer, server)
    port = bind_and_start(server, "127.0.0.1", 0)
    request.addfinalizer(lambda: server.stop(None).wait())
    return servicer, f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def frontend_recording(request: pytest.FixtureRequest, logs: Path, catalog: Spawned,
                       recording: tuple[RecordingRecommendations, str]) -> Spawned:
    return start_service(request, logs, "frontend-recording", "frontend",
                  ["--catalog-addr", catalog.addr, "--recommendation-addr", recording[1]])


@pytest.fixture
def grpc_channel() -> Iterator[list[grpc.Channel]]:
    opened: list[grpc.Channel] = []
    yield opened
    for channel in opened:
        channel.close()


def _recs(channels: list[grpc.Channel], addr: str, product_ids: list[str],
          user_id: str = "test-user") -> list[str]:
    channel = grpc.insecure_channel(addr)
    channels.append(channel)
    stub = demo_pb2_grpc.RecommendationServiceStub(channel)
    resp = stub.ListRecommendations(
        demo_pb2.ListRecommendationsRequest(user_id=user_id, product_ids=product_ids), timeout=5)
    return list(resp.product_ids)


def _http(base_url: str, method: str, path: str, form: dict[str, str] | None = None,
          cookie: str | None = None) -> tuple[int, http.client.HTTPMessage, str]:
    parsed = urllib.parse.urlsplit(base_url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    headers = {"Cookie": cookie} if cookie else {}
    body = None
    if form is not None:
        body = urllib.parse.urlencode(form)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read().decode()
    finally:
        conn.close()


def _section_links(page: str) -> list[str]:
    match = SECTION_RE.search(page)
    assert match, "page has no recommendations section"
    return LINK_RE.findall(match.group(1))


# ---------------------------------------------------------------- pure logic


def test_recommend_is_a_sample_without_the_requested_ids() -> None:
    rng = random.Random(7)
    seen: set[tuple[str, ...]] = set()
    for _ in range(200):
        out = recommend(UPSTREAM_IDS, [REQUESTED], 5, rng)
        assert len(out) == 5 and len(set(out)) == 5
        assert REQUESTED not in out and set(out) <= set(UPSTREAM_IDS)
        seen.add(tuple(sorted(out)))
    assert len(seen) > 20  # C(8,5) = 56 possible sets: a uniform sample visits many
    assert sorted(recommend(UPSTREAM_IDS, UPSTREAM_IDS[:5], 5, rng)) == sorted(UPSTREAM_IDS[5:])
    assert recommend(UPSTREAM_IDS, UPSTREAM_IDS, 5, rng) == []
    assert len(recommend(UPSTREAM_IDS + UPSTREAM_IDS, [], 20, rng)) == 9  # duplicates in the catalog count once


def test_catalog_table_is_the_upstream_catalog() -> None:
    assert list(PRODUCT_IDS) == UPSTREAM_IDS
    by_id = {p.id: p for p in PRODUCTS}
    assert by_id["OLJCESPC7Z"].name == "Sunglasses"
    assert (by_id["OLJCESPC7Z"].price_usd.units, by_id["OLJCESPC7Z"].price_usd.nanos) == (19, 990_000_000)
    assert by_id["LS4PSXUNUM"].name == "Salt & Pepper Shakers"
    assert list(by_id["66VCHSJNUP"].categories) == ["clothing", "tops"]
    for p in PRODUCTS:
        assert re.fullmatch(r"/static/img/products/[a-z-]+\.jpg", p.picture), p.picture
        assert p.price_usd.currency_code == "USD" and p.description


def test_format_money_carries_nanos() -> None:
    money = demo_pb2.Money(currency_code="USD", units=18, nanos=490_000_000)
    assert format_money(money) == "$18.49"
    assert format_money(money, 3) == "$55.47"
    assert format_money(demo_pb2.Money(currency_code="EUR", units=1, nanos=5_000_000)) == "EUR 1.00"


def test_rate_limited_log_suppresses_and_reports_repeats(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limited = RateLimitedLog(__import__("logging").getLogger("t"), interval=1.0, clock=lambda: now[0])
    with caplog.at_level("WARNING"):
        assert limited.warning("k", "boom")
        assert not limited.warning("k", "boom")
        assert not limited.warning("k", "boom")
        now[0] = 1.5
        assert limited.warning("k", "boom")
    assert [r.getMessage() for r in caplog.records] == ["boom", "boom (+2 similar suppressed)"]


def test_options_flag_beats_env_beats_default() -> None:
    import argparse

    def ns(**kw: object) -> argparse.Namespace:
        base = {"service": "recommendation", "host": "127.0.0.1", "port": None, "catalog_addr": None,
                "max_responses": None, "recommendation_addr": None}
        return argparse.Namespace(**{**base, **kw})

    env = {"PORT": "9000", "PRODUCT_CATALOG_SERVICE_ADDR": "127.0.0.1:3550", "MAX_RESPONSES": "2"}
    opts = resolve_options(ns(), env)
    assert (opts.port, opts.catalog_addr, opts.max_responses) == (9000, "127.0.0.1:3550", 2)
    opts = resolve_options(ns(port="0", catalog_addr="127.0.0.1:1", max_responses="5"), env)
    assert (opts.port, opts.catalog_addr, opts.max_responses) == (0, "127.0.0.1:1", 5)
    assert resolve_options(ns(service="catalog"), {}).port == 3550
    assert resolve_options(ns(service="frontend"), {}).port == 8080
    for bad_env in ({}, {"PRODUCT_CATALOG_SERVICE_ADDR": " "}):
        with pytest.raises(SetupError) as err:
            resolve_options(ns(), bad_env)
        assert err.value.exit_code == ExitCode.USAGE and "PRODUCT_CATALOG_SERVICE_ADDR" in str(err.value)
    for bad in ({"MAX_RESPONSES": "two"}, {"MAX_RESPONSES": "-1"}, {"PORT": "70000"}):
        with pytest.raises(SetupError) as err:
            resolve_options(ns(), {**env, **bad})
        assert err.value.exit_code == ExitCode.USAGE


def test_frontend_handler_is_keep_alive_without_nagle() -> None:
    # Without TCP_NODELAY, keep-alive traffic through Envoy crawls at ~25 req/s (README "Local boutique services";
    # bench/frontend_keepalive.py measures it).
    assert FrontendHandler.protocol_version == "HTTP/1.1"
    assert FrontendHandler.disable_nagle_algorithm is True


# ---------------------------------------------------------------- catalog


def test_catalog_serves_the_nine_products_and_health(catalog: Spawned,
                                                     grpc_channel: list[grpc.Channel]) -> None:
    channel = grpc.insecure_channel(catalog.addr)
    grpc_channel.append(channel)
    stub = demo_pb2_grpc.ProductCatalogServiceStub(channel)
    listing = stub.ListProducts(demo_pb2.Empty(), timeout=5)
    assert [p.id for p in listing.products] == UPSTREAM_IDS
    assert stub.GetProduct(demo_pb2.GetProductRequest(id="6E92ZMYYFZ"), timeout=5).name == "Mug"
    with pytest.raises(grpc.RpcError) as err:
        stub.GetProduct(demo_pb2.GetProductRequest(id="NOPE"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    found = stub.SearchProducts(demo_pb2.SearchProductsRequest(query="KITCHEN"), timeout=5)
    assert sorted(p.id for p in found.results) == ["9SIQT8TOJO", "LS4PSXUNUM"]
    assert net.grpc_healthy(catalog.addr)
    assert net.grpc_healthy(catalog.addr, "hipstershop.ProductCatalogService")


# ---------------------------------------------------------------- recommendation


def test_production_returns_five_distinct_catalog_ids_never_the_requested(
        production: Spawned, grpc_channel: list[grpc.Channel]) -> None:
    assert net.grpc_healthy(production.addr)
    assert net.grpc_healthy(production.addr, "hipstershop.RecommendationService")
    results: set[tuple[str, ...]] = set()
    for requested in UPSTREAM_IDS + [REQUESTED] * 15:
        ids = _recs(grpc_channel, production.addr, [requested])
        assert len(ids) == 5 and len(set(ids)) == 5, ids
        assert set(ids) <= set(UPSTREAM_IDS)
        assert requested not in ids
        results.add(tuple(sorted(ids)))
    assert len(results) > 1  # a random sample, not a fixed list


def test_canary_returns_two(canary: Spawned, grpc_channel: list[grpc.Channel]) -> None:
    for requested in UPSTREAM_IDS:
        ids = _recs(grpc_channel, canary.addr, [requested])
        assert len(ids) == 2 and len(set(ids)) == 2 and requested not in ids
        assert set(ids) <= set(UPSTREAM_IDS)


def test_requesting_five_ids_makes_production_return_four(production: Spawned, canary: Spawned,
                                                         grpc_channel: list[grpc.Channel]) -> None:
    requested = UPSTREAM_IDS[:5]
    ids = _recs(grpc_channel, production.addr, requested)
    assert sorted(ids) == sorted(UPSTREAM_IDS[5:])  # the only 4 left
    assert len(_recs(grpc_channel, canary.addr, requested)) == 2
    assert _recs(grpc_channel, production.addr, UPSTREAM_IDS) == []


def test_catalog_down_gives_unavailable_and_no_crash(request: pytest.FixtureRequest, logs: Path,
                                                     grpc_channel: list[grpc.Channel]) -> None:
    dead = f"127.0.0.1:{net.free_port()}"
    orphan = start_service(request, logs, "rec-no-catalog", "recommendation", ["--catalog-addr", dead])
    for _ in range(3):
        with pytest.raises(grpc.RpcError) as err:
            _recs(grpc_channel, orphan.addr, [REQUESTED])
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert dead in err.value.details() and "product catalog" in err.value.details()
    assert orphan.proc.poll() is None and net.grpc_healthy(orphan.addr)


# ---------------------------------------------------------------- frontend


def test_product_page_shows_four_from_production(frontend_production: Spawned) -> None:
    status, _, page = _http(frontend_production.url, "GET", f"/product/{REQUESTED}")
    assert status == 200
    assert count_recommendations(page) == 4
    assert Attribution().attribute("http", count_recommendations(page)) == "production"
    assert "<h2>You May Also Like</h2>" in page
    links = _section_links(page)
    assert len(links) == 4 and len(set(links)) == 4
    assert set(links) <= set(UPSTREAM_IDS) and REQUESTED not in links
    # The ad links to a product outside the section: a page-wide count would be wrong.
    assert len(LINK_RE.findall(page)) == 5
    assert page.index('class="ad"') > page.index("</section>")


def test_product_page_shows_two_from_canary(frontend_canary: Spawned) -> None:
    for requested in UPSTREAM_IDS[:3]:
        status, _, page = _http(frontend_canary.url, "GET", f"/product/{requested}")
        assert status == 200
        assert count_recommendations(page) == 2
        assert Attribution().attribute("http", count_recommendations(page)) == "canary"
        assert requested not in _section_links(page)
        assert len(LINK_RE.findall(page)) == 3  # 2 in the section + the ad


def test_unknown_product_is_500(frontend_production: Spawned) -> None:
    status, _, page = _http(frontend_production.url, "GET", "/product/NOSUCHITEM")
    assert status == 500
    assert "NOSUCHITEM" in page and count_recommendations(page) is None


def test_missing_recommendation_backend_gives_page_without_section(request: pytest.FixtureRequest, logs: Path,
                                                                  catalog: Spawned) -> None:
    dead = f"127.0.0.1:{net.free_port()}"
    fe = start_service(request, logs, "frontend-dead-recs", "frontend",
                ["--catalog-addr", catalog.addr, "--recommendation-addr", dead])
    status, _, page = _http(fe.url, "GET", f"/product/{REQUESTED}")
    assert status == 200 and "Sunglasses" in page
    assert count_recommendations(page) is None
    assert Attribution().attribute("http", count_recommendations(page)) is None
    proc.wait_until(lambda: "failed to get product recommendations" in fe.log.read_text(), 5, "the warning")


def test_frontend_without_catalog_addr_uses_builtin_catalog(request: pytest.FixtureRequest, logs: Path,
                                                             production: Spawned) -> None:
    fe = start_service(request, logs, "frontend-builtin", "frontend", ["--recommendation-addr", production.addr])
    status, _, page = _http(fe.url, "GET", "/product/6E92ZMYYFZ")
    assert status == 200 and count_recommendations(page) == 4
    assert _http(fe.url, "GET", "/product/NOPE")[0] == 500


def test_one_recommendation_call_per_page_with_the_session_as_user(
        frontend_recording: Spawned, recording: tuple[RecordingRecommendations, str]) -> None:
    servicer, _ = recording
    servicer.calls.clear()
    status, headers, page = _http(frontend_recording.url, "GET", "/product/L9ECAV7KIM")
    assert status == 200 and count_recommendations(page) == 4  # the fake answers 5: the frontend keeps 4
    cookie = http.cookies.SimpleCookie(headers["Set-Cookie"])
    session = cookie["shop_session-id"].value
    uuid.UUID(session)
    assert servicer.calls == [(session, ["L9ECAV7KIM"])]
    # With the cookie: same user id, no new cookie.
    status, headers, _ = _http(frontend_recording.url, "GET", "/product/1YMWWN1N4O",
                               cookie=f"shop_session-id={session}")
    assert status == 200 and headers.get("Set-Cookie") is None
    assert servicer.calls[-1] == (session, ["1YMWWN1N4O"]) and len(servicer.calls) == 2
    # Home lists the 9 products and makes no recommendation call.
    status, _, home = _http(frontend_recording.url, "GET", "/", cookie=f"shop_session-id={session}")
    assert status == 200 and count_recommendations(home) is None
    assert set(UPSTREAM_IDS) <= set(LINK_RE.findall(home))
    assert len(servicer.calls) == 2


def test_shop_routes_of_the_upstream_load_generator(
        frontend_recording: Spawned, recording: tuple[RecordingRecommendations, str]) -> None:
    servicer, _ = recording
    url = frontend_recording.url
    cookie = f"shop_session-id={uuid.uuid4()}"
    assert _http(url, "GET", "/_healthz")[2] == "ok"
    status, headers, _ = _http(url, "POST", "/setCurrency", {"currency_code": "EUR"}, cookie)
    assert status == 302 and "shop_currency=EUR" in headers["Set-Cookie"]
    assert _http(url, "POST", "/setCurrency", {"currency_code": "euro"}, cookie)[0] == 422
    status, headers, _ = _http(url, "POST", "/cart", {"product_id": "6E92ZMYYFZ", "quantity": "3"}, cookie)
    assert status == 302 and headers["Location"] == "/cart"
    assert _http(url, "POST", "/cart", {"product_id": "NOPE", "quantity": "1"}, cookie)[0] == 500
    assert _http(url, "POST", "/cart", {"product_id": "6E92ZMYYFZ", "quantity": "0"}, cookie)[0] == 422
    servicer.calls.clear()
    status, _, cart = _http(url, "GET", "/cart", cookie=cookie)
    assert status == 200 and "Mug" in cart and "$26.97" in cart
    assert servicer.calls[-1][1] == ["6E92ZMYYFZ"]  # the cart view excludes the cart's ids
    status, _, order = _http(url, "POST", "/cart/checkout", {"email": "a@b.c"}, cookie)
    assert status == 200 and "Your order is complete!" in order
    assert "is empty" in _http(url, "GET", "/cart", cookie=cookie)[2]
    _http(url, "POST", "/cart", {"product_id": "6E92ZMYYFZ", "quantity": "1"}, cookie)
    status, headers, _ = _http(url, "POST", "/cart/empty", {}, cookie)
    assert status == 302 and headers["Location"] == "/"
    assert "is empty" in _http(url, "GET", "/cart", cookie=cookie)[2]
    status, headers, _ = _http(url, "GET", "/logout", cookie=cookie)
    assert status == 302 and "shop_session-id=; Max-Age=0" in headers["Set-Cookie"]
    assert _http(url, "GET", "/static/img/products/mug.jpg")[0] == 404
    assert _http(url, "HEAD", "/product/6E92ZMYYFZ")[0] == 200


def test_keep_alive_serves_many_pages_on_one_connection(frontend_production: Spawned) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", frontend_production.port, timeout=10)
    try:
        for _ in range(20):
            conn.request("GET", f"/product/{REQUESTED}", headers={"Cookie": "shop_session-id=ka"})
            resp = conn.getresponse()
            page = resp.read().decode()
            assert resp.status == 200 and count_recommendations(page) == 4
            assert resp.headers.get("Connection", "").lower() != "close"
        sock = conn.sock
        assert sock is not None  # the same connection served all 20
    finally:
        conn.close()


# ---------------------------------------------------------------- launcher / CLI contract


def _env_without_boutique_vars() -> dict[str, str]:
    drop = {"PORT", "PRODUCT_CATALOG_SERVICE_ADDR", "MAX_RESPONSES", "RECOMMENDATION_SERVICE_ADDR"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def test_recommendation_without_catalog_addr_is_a_one_line_usage_error() -> None:
    result = subprocess.run([sys.executable, "-m", "splitproof.setup.boutique", "recommendation", "--port", "0"],
                            capture_output=True, text=True, timeout=30, env=_env_without_boutique_vars())
    assert result.returncode == ExitCode.USAGE
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "PRODUCT_CATALOG_SERVICE_ADDR" in lines[0]


@pytest.mark.parametrize("service", ["catalog", "frontend"])
def test_port_in_use_exits_4(service: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "splitproof.setup.boutique", service, "--port", str(port)],
                                capture_output=True, text=True, timeout=30, env=_env_without_boutique_vars())
    assert result.returncode == ExitCode.PORT_IN_USE
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "in use" in lines[0] and "Traceback" not in result.stderr


def test_launched_services_never_import_from_the_callers_directory(tmp_path: Path, decoy_dir: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """``python -m`` would put the working directory -- here full of decoys: setup.py, splitproof/, protos/,
    grpc.py -- first on the child's sys.path; launcher.spawn's children run with -P (setup.proc.python_argv)."""
    monkeypatch.chdir(decoy_dir)
    catalog = spawn("catalog", log=tmp_path / "catalog.log")
    try:
        recommendation = spawn("recommendation", ["--catalog-addr", catalog.addr], log=tmp_path / "rec.log")
        try:
            assert net.grpc_healthy(recommendation.addr) and net.grpc_healthy(catalog.addr)
        finally:
            recommendation.stop()
    finally:
        catalog.stop()
    assert decoys_hit(decoy_dir) == []


def test_canary_setup_serve_prints_ready_and_stops_on_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    child = proc.spawn([sys.executable, "-m", "splitproof.setup", "serve", "catalog", "--port", "0"], log=log)
    try:
        proc.wait_until(lambda: parse_ready(log.read_text(), "catalog") is not None or child.poll() is not None,
                        20, "READY line")
        hit = parse_ready(log.read_text(), "catalog")
        assert hit is not None and hit[0] == "127.0.0.1", log.read_text()
        assert len(re.findall(r"^READY ", log.read_text(), re.M)) == 1
        assert net.grpc_healthy(f"127.0.0.1:{hit[1]}")
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=10) == 0
    finally:
        proc.stop(child)


def test_spawn_reports_a_child_that_fails_to_start(tmp_path: Path) -> None:
    with pytest.raises(SetupError) as err:
        spawn("recommendation", ["--catalog-addr", ""], log=tmp_path / "r.log",
              env={"PRODUCT_CATALOG_SERVICE_ADDR": ""})
    assert "exited with code 2" in str(err.value) and "PRODUCT_CATALOG_SERVICE_ADDR" in str(err.value)


def test_service_group_stops_all_children_even_when_interrupted(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from splitproof.setup.boutique import launcher

    real_stop = proc.stop
    calls: list[int] = []

    def flaky_stop(child: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
        calls.append(child.pid)
        if len(calls) == 1:  # Ctrl-C while stopping the first child
            raise KeyboardInterrupt
        real_stop(child, timeout)

    group = launcher.ServiceGroup(tmp_path)
    try:
        catalog = group.start("catalog")
        frontend = group.start("frontend")
        monkeypatch.setattr(proc, "stop", flaky_stop)  # what ServiceGroup.stop -> proc.stop_all calls
        with pytest.raises(KeyboardInterrupt):
            group.stop()
    finally:
        monkeypatch.setattr(proc, "stop", real_stop)
        group.stop()
    assert catalog.proc.poll() == 0 and frontend.proc.poll() == 0
    assert calls[:2] == [frontend.proc.pid, frontend.proc.pid]  # retried, then went on to the catalog
