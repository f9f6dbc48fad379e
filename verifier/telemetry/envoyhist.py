"""Envoy's per-cluster request-time histograms (``upstream_rq_time``, milliseconds) from its admin endpoint, as
cumulative buckets: the latency the health judge reads from ``--envoy-admin``.

Envoy's admin prints a histogram's buckets only when asked with ``histogram_buckets=cumulative``
(https://www.envoyproxy.io/docs/envoy/latest/operations/admin#get--stats):

* JSON (``/stats?format=json&histogram_buckets=cumulative``): among the stats, ``{"histograms": [{"name":
  "cluster.<name>;.upstream_rq_time", "buckets": [{"upper_bound": 0.5, "interval": 7, "cumulative": 7}, ...]}]}``;
* text (``/stats?histogram_buckets=cumulative``): ``cluster.<name>;.upstream_rq_time: B0.5(7,7) B1(7,7) ...``, each
  ``B<bound>(<interval>,<cumulative>)``;
* Prometheus (``/stats/prometheus``): ``envoy_cluster_upstream_rq_time_bucket{cluster_name="<name>",le="0.5"} 7`` up
  to ``le="+Inf"``, with ``_count`` -- always buckets.

Without the parameter (an Envoy that does not know it) JSON and text carry quantiles only, which cannot be
subtracted: no latency then, and the source says so. Two limits, both Envoy's:

* histograms reach what the admin prints at each stats flush (``stats_flush_interval``, 5 s by default in Envoy and in
  Istio's bootstrap), so a snapshot's histogram is that of the last flush before it: a window's latency is shifted by
  up to one flush interval against its counters, and its count need not equal the window's ``upstream_rq_completed``;
* ``upstream_rq_time`` is recorded for responses that came from an upstream: Envoy's own local replies (503 UH, no
  healthy upstream) are in the counters and the error rate, not in the latency.

JSON and text list the finite bounds only: a request longer than the last bound (3,600,000 ms by default) is in no
bucket there, so their ``+Inf`` count is the last bound's; the Prometheus form has its ``+Inf`` bucket.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping

from splitproof.verifier.telemetry.envoystats import cluster_stat, prom_cluster
from splitproof.verifier.telemetry.errors import TelemetryQueryError
from splitproof.verifier.telemetry.latency import LatencyHistogram
from splitproof.verifier.telemetry.promtext import ExpositionError
from splitproof.verifier.telemetry.promtext import parse as parse_exposition

STAT = "upstream_rq_time"
_TEXT_BUCKET = re.compile(r"B([0-9.e+]+)\(([0-9]+),([0-9]+)\)")


def _histogram(pairs: Mapping[float, int]) -> LatencyHistogram | None:
    return LatencyHistogram.from_cumulative(pairs) if pairs else None


def parse_json(text: str) -> dict[str, LatencyHistogram]:
    """cluster -> histogram, from ``/stats?format=json&histogram_buckets=cumulative``."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise TelemetryQueryError(f"Envoy /stats?format=json is not JSON: {exc}") from None
    out: dict[str, LatencyHistogram] = {}
    for item in doc.get("stats", ()) if isinstance(doc, dict) else ():
        histograms = item.get("histograms") if isinstance(item, dict) else None
        if not isinstance(histograms, list):  # quantiles only (a dict): no buckets asked for, or not understood
            continue
        for h in histograms:
            name = h.get("name") if isinstance(h, dict) else None
            found = cluster_stat(name) if isinstance(name, str) else None
            if found is None or found[1] != STAT or not isinstance(h.get("buckets"), list):
                continue
            pairs = {float(b["upper_bound"]): int(b["cumulative"]) for b in h["buckets"]
                     if isinstance(b, dict) and isinstance(b.get("upper_bound"), int | float)
                     and isinstance(b.get("cumulative"), int)}
            made = _histogram(pairs)
            if made is not None:
                out[found[0]] = made
    return out


def parse_text(text: str) -> dict[str, LatencyHistogram]:
    """cluster -> histogram, from ``/stats?histogram_buckets=cumulative``."""
    out: dict[str, LatencyHistogram] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(": ")
        found = cluster_stat(name.strip()) if sep else None
        if found is None or found[1] != STAT:
            continue
        made = _histogram({float(b): int(c) for b, _interval, c in _TEXT_BUCKET.findall(value)})
        if made is not None:
            out[found[0]] = made
    return out


def parse_prometheus(text: str) -> dict[str, LatencyHistogram]:
    """cluster -> histogram, from ``/stats/prometheus`` (``envoy_cluster_upstream_rq_time_bucket``)."""
    pairs: dict[str, dict[float, int]] = {}
    try:
        for sample in parse_exposition(text.splitlines()):
            cluster = prom_cluster(sample.name, f"{STAT}_bucket", sample.labels)
            le = sample.labels.get("le")
            if cluster is None or le is None:
                continue
            bound = math.inf if le in ("+Inf", "Inf") else float(le)
            pairs.setdefault(cluster, {})[bound] = int(sample.value)
    except (ExpositionError, ValueError) as exc:
        raise TelemetryQueryError(f"Envoy /stats/prometheus: {exc}") from None
    return {cluster: h for cluster, p in pairs.items() if (h := _histogram(p)) is not None}


def parse_histograms(text: str, fmt: str) -> dict[str, LatencyHistogram]:
    """cluster -> its ``upstream_rq_time`` histogram, from an admin answer in ``fmt`` (json, text, prometheus)."""
    if fmt == "json":
        return parse_json(text)
    if fmt == "prometheus":
        return parse_prometheus(text)
    return parse_text(text)


def delta(before: LatencyHistogram | None, after: LatencyHistogram) -> LatencyHistogram | None:
    """The requests ``after`` holds beyond ``before`` (None before: all of them); None when the two cannot be
    subtracted -- other bounds, or a bucket that went down (a new process: the caller takes ``after`` whole)."""
    if before is None:
        return after
    if before.bounds != after.bounds:
        return None
    out = tuple(a - b for a, b in zip(after.cumulative, before.cumulative, strict=True))
    if any(n < 0 for n in out):
        return None
    return LatencyHistogram(after.bounds, out)
