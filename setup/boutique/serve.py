"""Run one local boutique service in this process: ``python -m splitproof.setup.boutique <service>`` or
``canary-setup serve <service>``.

Options (flag, else environment variable like upstream, else default):

- ``catalog``         ``--port`` (PORT, 3550)
- ``recommendation``  ``--port`` (PORT, 8080), ``--catalog-addr`` (PRODUCT_CATALOG_SERVICE_ADDR, required),
                      ``--max-responses`` (MAX_RESPONSES, 5); a bad canary (flags only, not upstream):
                      ``--error-rate PERCENT`` of calls fail with ``--error-code`` (default UNAVAILABLE),
                      ``--extra-latency-ms MS`` per call, ``--fault-seed N`` for a reproducible failure sequence
- ``frontend``        ``--port`` (PORT, 8080), ``--recommendation-addr`` (RECOMMENDATION_SERVICE_ADDR),
                      ``--catalog-addr`` (PRODUCT_CATALOG_SERVICE_ADDR; without it the built-in catalog is used)

All take ``--host`` (default 127.0.0.1). ``--port 0`` binds an ephemeral port. Once serving, the service prints
exactly one line ``READY <service> <host>:<port>`` to stdout; a parent learns the port from it
(setup.boutique.launcher, setup.proc.ReadyLine).
SIGTERM or SIGINT stops it gracefully with exit 0; a taken port exits 4, a bad option 2, both with one line.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from splitproof.setup.boutique import SERVICES
from splitproof.setup.errors import SetupError
from splitproof.setup.net import LOOPBACK
from splitproof.setup.stopsignals import StopSignals
from splitproof.verifier.errors import SplitproofError
from splitproof.verifier.exitcodes import ExitCode

if TYPE_CHECKING:
    from splitproof.setup.boutique.recommendation import Faults

DEFAULT_PORTS = {"catalog": 3550, "recommendation": 8080, "frontend": 8080}
GRACE_S = 2.0


@dataclass(frozen=True)
class ServiceOptions:
    service: str
    host: str
    port: int
    catalog_addr: str | None = None
    recommendation_addr: str | None = None
    max_responses: int = 5
    faults: Faults | None = None  # recommendation only: injected errors / latency (a bad canary)


def _int_option(value: str | int, what: str, lo: int, hi: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SetupError(f"{what} must be an integer, got {value!r}", ExitCode.USAGE) from None
    if not lo <= number <= hi:
        raise SetupError(f"{what} must be in {lo}..{hi}, got {number}", ExitCode.USAGE)
    return number


def resolve_options(args: argparse.Namespace, env: Mapping[str, str]) -> ServiceOptions:
    """Flags win over the upstream environment variables, which win over the defaults. SetupError(2) if invalid."""
    service = args.service
    port_src = "--port" if args.port is not None else "PORT"
    raw_port = args.port if args.port is not None else env.get("PORT") or DEFAULT_PORTS[service]
    port = _int_option(raw_port, port_src, 0, 65535)
    host = args.host
    if service == "catalog":
        return ServiceOptions(service, host, port)
    catalog_addr = (args.catalog_addr or env.get("PRODUCT_CATALOG_SERVICE_ADDR") or "").strip() or None
    if service == "recommendation":
        if catalog_addr is None:
            raise SetupError("recommendation needs the product catalog address: "
                             "--catalog-addr HOST:PORT or PRODUCT_CATALOG_SERVICE_ADDR", ExitCode.USAGE)
        max_src = "--max-responses" if args.max_responses is not None else "MAX_RESPONSES"
        raw_max = args.max_responses if args.max_responses is not None else env.get("MAX_RESPONSES") or 5
        max_responses = _int_option(raw_max, max_src, 0, 1_000_000)
        from splitproof.setup.boutique.recommendation import parse_faults  # grpc: only for this service

        try:
            faults = parse_faults(getattr(args, "error_rate", None), getattr(args, "error_code", None),
                                  getattr(args, "extra_latency_ms", None), getattr(args, "fault_seed", None))
        except ValueError as exc:
            raise SetupError(str(exc), ExitCode.USAGE) from None
        return ServiceOptions(service, host, port, catalog_addr=catalog_addr, max_responses=max_responses,
                              faults=faults)
    recommendation_addr = (args.recommendation_addr or env.get("RECOMMENDATION_SERVICE_ADDR") or "").strip() or None
    return ServiceOptions(service, host, port, catalog_addr=catalog_addr, recommendation_addr=recommendation_addr)


# ---------------------------------------------------------------- running one service in this process


def _configure_logging(service: str) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format=f"%(asctime)s {service} %(levelname)s %(message)s")


def run_service(opts: ServiceOptions, stop_event: threading.Event | None = None) -> int:
    """Serve until SIGTERM/SIGINT (or ``stop_event``); print the READY line once serving. Returns the exit code."""
    _configure_logging(opts.service)
    log = logging.getLogger(f"boutique.{opts.service}")
    with StopSignals(signal.SIGTERM, signal.SIGINT, event=stop_event) as stop:  # a burst of SIGTERMs stops it once
        return _serve(opts, stop, log)


def _serve(opts: ServiceOptions, stop: StopSignals, log: logging.Logger) -> int:
    if opts.service == "catalog":
        from splitproof.setup.boutique.catalog import serve_catalog

        grpc_server, port = serve_catalog(opts.host, opts.port)
        stopper = lambda: grpc_server.stop(GRACE_S).wait()  # noqa: E731
    elif opts.service == "recommendation":
        from splitproof.setup.boutique.recommendation import serve_recommendation

        assert opts.catalog_addr is not None
        grpc_server, port = serve_recommendation(opts.catalog_addr, opts.host, opts.port, opts.max_responses,
                                                 faults=opts.faults)
        stopper = lambda: grpc_server.stop(GRACE_S).wait()  # noqa: E731
        log.info("product catalog at %s, max_responses=%d, injected faults: %s", opts.catalog_addr,
                 opts.max_responses, opts.faults.describe() if opts.faults else "none")
    else:
        from splitproof.setup.boutique.frontend import serve_frontend

        http_server, port = serve_frontend(opts.host, opts.port, opts.recommendation_addr, opts.catalog_addr)
        stopper = http_server.stop
        log.info("recommendations from %s, products from %s",
                 opts.recommendation_addr or "(none: pages have no recommendations section)",
                 opts.catalog_addr or "(built-in catalog)")

    print(f"READY {opts.service} {opts.host}:{port}", flush=True)
    try:
        stop.wait()
    finally:
        log.info("stopping")
        stopper()
    return 0


def _run(args: argparse.Namespace) -> int:
    return run_service(resolve_options(args, os.environ))


# ---------------------------------------------------------------- argparse wiring


def add_service_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """One parser per service in ``sub`` (for ``canary-setup serve`` and ``python -m splitproof.setup.boutique``)."""
    helps = {
        "catalog": "productcatalogservice (gRPC): the 9 upstream products",
        "recommendation": "recommendationservice (gRPC): upstream behaviour, max responses 5 (production) or 2",
        "frontend": "the shop's HTTP frontend: product pages with at most 4 recommendations",
    }
    for service in SERVICES:
        p = sub.add_parser(service, help=helps[service], description=helps[service])
        p.add_argument("--host", default=LOOPBACK, help="address to bind (default: 127.0.0.1)")
        p.add_argument("--port", default=None,
                       help=f"port to bind, 0 = ephemeral (env PORT, default {DEFAULT_PORTS[service]})")
        if service in ("recommendation", "frontend"):
            required = " (required)" if service == "recommendation" else " (default: the built-in catalog)"
            p.add_argument("--catalog-addr", default=None,
                           help=f"productcatalogservice HOST:PORT (env PRODUCT_CATALOG_SERVICE_ADDR){required}")
        if service == "recommendation":
            p.add_argument("--max-responses", default=None,
                           help="recommendations per call: 5 production, 2 canary (env MAX_RESPONSES, default 5)")
            p.add_argument("--error-rate", default=None, metavar="PERCENT",
                           help="fail this percentage of calls, each drawn independently (a bad canary; default 0)")
            p.add_argument("--error-code", default=None, metavar="STATUS",
                           help="gRPC status of the injected failures, name or number (default UNAVAILABLE)")
            p.add_argument("--extra-latency-ms", default=None, metavar="MS",
                           help="add this many milliseconds to every call (a slow canary; default 0)")
            p.add_argument("--fault-seed", default=None, metavar="N",
                           help="seed the failure draws: the same calls fail in every run (default: random)")
        if service == "frontend":
            p.add_argument("--recommendation-addr", default=None,
                           help="recommendationservice HOST:PORT, e.g. an Envoy listener "
                                "(env RECOMMENDATION_SERVICE_ADDR; without it pages have no recommendations)")
        p.set_defaults(func=_run, service=service)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = subparsers.add_parser("serve", help="run one local boutique service (catalog, recommendation, frontend)",
                                  description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    inner = serve.add_subparsers(dest="service", metavar="SERVICE", required=True)
    add_service_parsers(inner)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m splitproof.setup.boutique", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="service", metavar="SERVICE", required=True)
    add_service_parsers(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except SplitproofError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
