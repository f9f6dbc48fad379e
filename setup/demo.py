"""``canary-setup demo`` -- what ``make demo`` runs.

This first version starts the three local boutique services as real processes on ephemeral 127.0.0.1 ports
(catalog, recommendation with 5 responses, frontend), fetches one product page, prints how many recommendations
it shows, and stops everything -- also on Ctrl-C or any error. Later issues grow it into the full local canary run.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import grpc

from protos import demo_pb2, demo_pb2_grpc
from setup import proc
from setup.boutique.launcher import ServiceGroup
from setup.errors import EXIT_FAILED, EXIT_OK, SetupError
from verifier.attribution import Attribution, count_recommendations

DEFAULT_PRODUCT = "OLJCESPC7Z"
READY_TIMEOUT_S = 20.0


def _say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def fetch_page(url: str, timeout: float = 10.0) -> tuple[int, str]:
    """(HTTP status, body) of GET ``url``; error statuses are returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 -- loopback URL we built
            return int(resp.status), resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as exc:
        raise SetupError(f"GET {url} failed: {exc}") from None


def direct_recommendations(addr: str, product_id: str) -> list[str]:
    with grpc.insecure_channel(addr) as channel:
        stub = demo_pb2_grpc.RecommendationServiceStub(channel)
        request = demo_pb2.ListRecommendationsRequest(user_id="demo", product_ids=[product_id])
        try:
            return list(stub.ListRecommendations(request, timeout=5).product_ids)
        except grpc.RpcError as exc:
            raise SetupError(f"ListRecommendations on {addr} failed: {exc.code().name}: {exc.details()}") from None


def run_boutique_once(logs: Path, product_id: str) -> int:
    """Start catalog, recommendation (5) and frontend; fetch one product page; always stop them."""
    with ServiceGroup(logs, timeout=READY_TIMEOUT_S) as group:
        try:
            return _show_one_page(group, product_id)
        finally:
            if group.services:
                _say("stopping " + ", ".join(s.service for s in reversed(group.services)))


def _show_one_page(group: ServiceGroup, product_id: str) -> int:
    catalog = group.start("catalog")
    proc.wait_until(lambda: proc.grpc_healthy(catalog.addr), READY_TIMEOUT_S, "catalog health")
    _say(f"catalog         {catalog.addr}")

    recommendation = group.start("recommendation", ["--catalog-addr", catalog.addr, "--max-responses", "5"])
    proc.wait_until(lambda: proc.grpc_healthy(recommendation.addr), READY_TIMEOUT_S, "recommendation health")
    _say(f"recommendation  {recommendation.addr} (5 responses, like production)")

    frontend = group.start("frontend", ["--catalog-addr", catalog.addr, "--recommendation-addr", recommendation.addr])
    proc.wait_until(lambda: proc.http_ok(f"{frontend.url}/_healthz"), READY_TIMEOUT_S, "frontend /_healthz")
    _say(f"frontend        {frontend.url}")

    ids = direct_recommendations(recommendation.addr, product_id)
    _say(f"direct gRPC ListRecommendations([{product_id}]) -> {len(ids)} ids")

    status, page = fetch_page(f"{frontend.url}/product/{product_id}")
    items = count_recommendations(page)
    version = Attribution().attribute("http", items)
    shown = "no recommendations section" if items is None else f"{items} recommendations"
    _say(f"GET /product/{product_id} -> HTTP {status}, {shown} ({version or 'unattributed'})")
    if status != 200 or version != "production":
        _say(f"unexpected page: expected HTTP 200 with 4 recommendations; logs kept in {group.logs}")
        return EXIT_FAILED
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    logs = Path(tempfile.mkdtemp(prefix="splitproof-demo-"))
    code = EXIT_FAILED
    try:
        code = run_boutique_once(logs, args.product)
    except SetupError:
        _say(f"logs kept in {logs}")
        raise
    finally:
        if code == EXIT_OK:
            shutil.rmtree(logs, ignore_errors=True)
    return code


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("demo", help="what `make demo` runs: start the local boutique and show one page",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--product", default=DEFAULT_PRODUCT, help=f"product page to fetch (default {DEFAULT_PRODUCT})")
    parser.set_defaults(func=run)
