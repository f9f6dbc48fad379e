"""Locust file for the Online Boutique canary: every product page and every ListRecommendations reply is
attributed to a version and recorded for ``verify-split``.

    locust -f loadtest/boutique.py --host http://INGRESS [--grpc-target HOST:PORT] \\
        --split-results out.jsonl --expected 20 [--stop-on-verdict]

Users (pick them with Locust's class names on the command line, ``--class-picker`` or the web UI):
  ShopperUser         browses the shop through the ingress like the upstream load generator; product pages are
                      attributed by counting the items of their recommendations section (4 production, 2 canary).
  RecommendationUser  calls RecommendationService/ListRecommendations on --grpc-target, one real product id per
                      call (5 production, 2 canary); reported to Locust as request type "grpc".

Options, recording, the live split and the verdict exit code are in loadtest/plugin.py (see README).
"""

from __future__ import annotations

import os
import sys

# Locust puts the current working directory first on sys.path for good before it imports a locustfile
# (locust/util/load_locustfile.py), so every import from here on -- grpc, splitproof, rich when the verdict is
# printed -- would prefer a same-named module in whatever folder Locust was started from. Take that entry out
# before importing anything (os and sys are already loaded); the locustfile's own folder is not affected.
if os.getcwd() in sys.path[:2] and os.getcwd() != os.path.dirname(os.path.abspath(__file__)):
    sys.path.remove(os.getcwd())

import random
import time
import uuid
from collections.abc import Mapping

import grpc
from locust import FastHttpUser, User, task
from locust.contrib.fasthttp import LocustBadStatusCode
from locust.exception import StopUser

from splitproof.loadtest import grpc_client, plugin
from splitproof.protos import demo_pb2
from splitproof.verifier.boutique import PRODUCT_IDS  # upstream's 9 (src/productcatalogservice/products.json)
from splitproof.verifier.inputs.attribution import NotPlainText
from splitproof.verifier.inputs.classify import (
    error_metadata,
    failed_request_outcome,
    grpc_reply_outcome,
    product_page_outcome,
)

# gevent integration for grpc must precede every gRPC object of the process: init_gevent() "must be called ... BEFORE
# creating and gRPC objects" (grpc/grpc src/python/grpcio/grpc/experimental/gevent.py; see loadtest/grpc_client.py).
grpc_client.ensure_gevent()
plugin.install()

CURRENCIES: tuple[str, ...] = ("EUR", "USD", "JPY", "CAD", "GBP", "TRY")
PRODUCT_PAGE_NAME = "/product/[id]"
GRPC_REQUEST_NAME = "ListRecommendations"
GRPC_TIMEOUT_S = 10.0

CHECKOUT_FORM = {
    "email": "someone@example.com",
    "street_address": "1600 Amphitheatre Parkway",
    "zip_code": "94043",
    "city": "Mountain View",
    "state": "CA",
    "country": "United States",
    "credit_card_number": "4432-8015-6152-0454",
    "credit_card_expiration_month": "1",
    "credit_card_expiration_year": "2039",
    "credit_card_cvv": "672",
}


class ShopperUser(FastHttpUser):
    """A shopper on the storefront (``--host`` = the ingress). Task weights: ``--shopper-tasks``."""

    wait_time = plugin.think_time

    @classmethod
    def apply_task_weights(cls, weights: Mapping[str, int]) -> None:
        """``--shopper-tasks``: replace the task table (names as in loadtest.options.SHOPPER_TASKS)."""
        by_name = {"index": cls.index, "setCurrency": cls.set_currency, "browseProduct": cls.browse_product,
                   "addToCart": cls.add_to_cart, "viewCart": cls.view_cart, "checkout": cls.checkout}
        cls.tasks = [by_name[name] for name, weight in weights.items() for _ in range(weight)]

    def on_start(self) -> None:
        self.index()

    def product_page(self, product_id: str) -> None:
        """GET one product page, attribute it, report it to Locust and record it."""
        session = plugin.user_session(self)
        attribution = session.config.attribution  # (not the session's property: one call fewer per page)
        seq = session.recorder.dispatch()  # numbered as sent: the live gate consumes dispatch order
        sent = False
        try:
            with self.client.get(f"/product/{product_id}", name=PRODUCT_PAGE_NAME, catch_response=True) as resp:
                status = resp.status_code
                # (geventhttpclient's Headers maps each lowercased name to a (name, value) pair: its items() are the
                # pairs, a dict() of it would copy the tuples)
                headers = dict(resp.headers.items()) if attribution.header is not None and resp.headers else None
                meta = resp.request_meta
                failed = meta["exception"]  # what Locust's own check found, in get()
                if failed is None:
                    try:  # the page's bytes, counted undecoded when they are plain ASCII (count_recommendations)
                        outcome = product_page_outcome(status, resp.content, attribution, headers)
                    except NotPlainText:  # else the text Locust decodes by the page's charset
                        outcome = product_page_outcome(status, resp.text, attribution, headers)
                    if outcome.failure is not None:
                        resp.failure(outcome.failure)
                    else:  # Locust's check would run again when the block ends: the same verdict without it
                        resp.success()
                else:  # Locust fails it itself, and the record says so whatever the bytes hold: a status it
                    # rejects, or no usable response (none at all, a body that broke off)
                    outcome = failed_request_outcome(status if isinstance(failed, LocustBadStatusCode) else 0,
                                                     attribution, headers)
                latency_ms = float(meta["response_time"])
                start_time = meta["start_time"]  # Locust's own, taken as it sent the request
            # t = dispatch + response time, so t - latency_ms is the dispatch time (replays order by it)
            session.recorder.add(outcome.record(start_time + latency_ms / 1000.0, latency_ms,
                                                type(self).__name__), seq)
            sent = True
        finally:
            if not sent:  # the user was stopped mid-request (or a bug): free its slot
                session.recorder.skip(seq)

    @task(1)
    def index(self) -> None:
        self.client.get("/")

    @task(2)
    def set_currency(self) -> None:
        self.client.post("/setCurrency", {"currency_code": random.choice(CURRENCIES)})

    @task(10)
    def browse_product(self) -> None:
        self.product_page(random.choice(PRODUCT_IDS))

    @task(2)
    def add_to_cart(self) -> None:
        product_id = random.choice(PRODUCT_IDS)
        self.product_page(product_id)
        self.client.post("/cart", {"product_id": product_id, "quantity": random.choice((1, 2, 3, 4, 5, 10))})

    @task(3)
    def view_cart(self) -> None:
        # Cart pages also show recommendations, but their count depends on the cart (ids in the cart are excluded
        # before the cut), so they are checked by HTTP status only and never become split records.
        self.client.get("/cart")

    @task(1)
    def checkout(self) -> None:
        self.add_to_cart()
        self.client.post("/cart/checkout", CHECKOUT_FORM)


class RecommendationUser(User):
    """A gRPC client of RecommendationService at ``--grpc-target`` (a proxy that applies the split)."""

    wait_time = plugin.think_time

    def on_start(self) -> None:
        target = plugin.user_session(self).config.grpc_target
        if not target:
            plugin.report_missing_grpc_target(self.environment)
            raise StopUser()
        self.stub = grpc_client.recommendation_stub(target)
        self.user_id = str(uuid.uuid4())

    @task
    def list_recommendations(self) -> None:
        session = plugin.user_session(self)
        request = demo_pb2.ListRecommendationsRequest(user_id=self.user_id, product_ids=[random.choice(PRODUCT_IDS)])
        seq = session.recorder.dispatch()  # numbered as sent: the live gate consumes dispatch order
        try:
            self._call_and_record(session, request, seq)
        except BaseException:  # the user was stopped mid-request (GreenletExit) or a bug: free its slot
            session.recorder.skip(seq)
            raise

    def _call_and_record(self, session: plugin.SplitSession, request: demo_pb2.ListRecommendationsRequest,
                         seq: int) -> None:
        start_time = time.time()
        start = time.perf_counter()
        reply = None
        error: grpc.RpcError | None = None
        header = session.attribution.header
        metadata: dict[str, str] | None = None
        try:
            if header is None:
                reply = self.stub.ListRecommendations(request, timeout=GRPC_TIMEOUT_S)
            else:  # --version-header: the version the mesh names in the response metadata (errors included)
                reply, call = self.stub.ListRecommendations.with_call(request, timeout=GRPC_TIMEOUT_S)
                metadata = {str(k): str(v) for k, v in (call.initial_metadata() or ())}
        except grpc.RpcError as exc:
            error = exc
            metadata = error_metadata(exc) if header is not None else None
        latency_ms = (time.perf_counter() - start) * 1000.0
        code = grpc_client.status_name(error) if error is not None else None
        outcome = grpc_reply_outcome(list(reply.product_ids) if reply is not None else None, code,
                                     session.attribution, metadata)
        exception: Exception | None = None
        if outcome.failure is not None:
            exception = (grpc_client.call_error(error) if error is not None
                         else plugin.UnattributableResponse(outcome.failure))
        self.environment.events.request.fire(
            request_type="grpc",
            name=GRPC_REQUEST_NAME,
            response_time=latency_ms,
            response_length=reply.ByteSize() if reply is not None else 0,
            response=reply,
            context={},
            exception=exception,
            start_time=start_time,
            url=None,
        )
        # t = dispatch + response time, so t - latency_ms is the dispatch time (replays order by it)
        session.recorder.add(outcome.record(start_time + latency_ms / 1000.0, latency_ms,
                                            source=type(self).__name__), seq)
