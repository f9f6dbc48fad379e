"""Telemetry sources for passive verification: count every real request by the version it was routed to.

One module per idea:

``window``       ``--since`` / ``--until`` parsing and the ``Window`` type
``result``       ``TelemetryCounts`` (the one result of every source) and ``StatusKey``
``latency``      ``LatencyHistogram`` and Istio's default duration buckets
``errors``       ``TelemetryError`` and its subclasses (unreachable / query / input)
``clusters``     Istio cluster names ``outbound|PORT|SUBSET|HOST``, the ``Service``, Envoy response flags
``httpget``      one bounded, redacting HTTP request; ``auth``: bearer token / headers from a file or env
``counters``     exact counter increments from raw samples (resets, series born inside the window)
``prometheus``   Prometheus HTTP API client (envelope, errors, raw samples in chunks)
``promql``       what to read: ``istio_requests``, ``envoy_requests``, ``promql`` specs
``promsource``   ``count_window``, ``latency_window``, ``watch`` over Prometheus
``promtext``     Prometheus text exposition parser; ``envoystats``: Envoy /stats parsers
``envoyhist``    Envoy's ``upstream_rq_time`` histograms (cumulative buckets) from /stats, and their deltas
``envoysource``  counts between Envoy admin snapshots, and ``watch``
``accesslog``    one Istio access-log line (TEXT or JSON); ``logsource``: streaming tally of a log
``watch``        the poll schedule shared by the watches
"""

from splitproof.verifier.telemetry.auth import auth_headers
from splitproof.verifier.telemetry.clusters import Service
from splitproof.verifier.telemetry.envoysource import EnvoyAdmin, counts_between
from splitproof.verifier.telemetry.envoysource import watch as watch_envoy
from splitproof.verifier.telemetry.errors import (
    TelemetryError,
    TelemetryInputError,
    TelemetryQueryError,
    TelemetryUnreachable,
)
from splitproof.verifier.telemetry.latency import LatencyHistogram
from splitproof.verifier.telemetry.logsource import count_access_log
from splitproof.verifier.telemetry.prometheus import PrometheusClient
from splitproof.verifier.telemetry.promql import (
    SeriesSpec,
    envoy_candidates,
    envoy_requests,
    istio_duration_buckets,
    istio_requests,
    promql,
)
from splitproof.verifier.telemetry.promsource import count_window, latency_window
from splitproof.verifier.telemetry.promsource import watch as watch_prometheus
from splitproof.verifier.telemetry.result import StatusKey, TelemetryCounts
from splitproof.verifier.telemetry.window import Window, parse_time, resolve_window

__all__ = [
    "EnvoyAdmin", "LatencyHistogram", "PrometheusClient", "SeriesSpec", "Service", "StatusKey", "TelemetryCounts",
    "TelemetryError", "TelemetryInputError", "TelemetryQueryError", "TelemetryUnreachable", "Window", "auth_headers",
    "count_access_log", "count_window", "counts_between", "envoy_candidates", "envoy_requests",
    "istio_duration_buckets", "istio_requests", "latency_window", "parse_time", "promql", "resolve_window",
    "watch_envoy", "watch_prometheus",
]
