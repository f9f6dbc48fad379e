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

The buckets are collected while ``verifier.telemetry.envoystats`` parses a snapshot (one pass over the answer for
counters and histograms; it resolves the stat names, this module reads the buckets). JSON and text list the finite
bounds only: a request longer than the last bound (3,600,000 ms by default) is in no bucket there, so their ``+Inf``
count is the last bound's; the Prometheus form has its ``+Inf`` bucket.
"""

from __future__ import annotations

import math
import re

from splitproof.verifier.telemetry.errors import TelemetryQueryError
from splitproof.verifier.telemetry.latency import LatencyHistogram

STAT = "upstream_rq_time"
PROM_BUCKET = f"{STAT}_bucket"
_TEXT_BUCKET = re.compile(r"B([0-9.e+]+)\(([0-9]+),([0-9]+)\)")


class Buckets:
    """The ``upstream_rq_time`` buckets of each cluster met in one admin answer, fed by the snapshot's parser."""

    def __init__(self) -> None:
        self._pairs: dict[str, dict[float, int]] = {}

    def json_buckets(self, cluster: str, buckets: object) -> None:
        """A JSON histogram's ``buckets`` list (``[{"upper_bound": 0.5, "interval": 7, "cumulative": 7}, ...]``)."""
        if not isinstance(buckets, list):
            return
        for b in buckets:
            if (isinstance(b, dict) and isinstance(b.get("upper_bound"), int | float)
                    and isinstance(b.get("cumulative"), int)):
                self._pairs.setdefault(cluster, {})[float(b["upper_bound"])] = int(b["cumulative"])

    def text_value(self, cluster: str, value: str) -> None:
        """A text line's value, ``B0.5(7,7) B1(7,7) ...`` (a quantiles value ``P0(...)`` holds no bucket)."""
        for bound, _interval, cumulative in _TEXT_BUCKET.findall(value):
            self._pairs.setdefault(cluster, {})[float(bound)] = int(cumulative)

    def prom_sample(self, cluster: str, le: str | None, value: float) -> None:
        """One ``envoy_cluster_upstream_rq_time_bucket`` sample."""
        if le is None:
            return
        try:
            bound = math.inf if le in ("+Inf", "Inf") else float(le)
            self._pairs.setdefault(cluster, {})[bound] = int(value)
        except ValueError as exc:
            raise TelemetryQueryError(f"Envoy /stats/prometheus: {exc}") from None

    def histograms(self) -> dict[str, LatencyHistogram]:
        """cluster -> its histogram (clusters without a bucket left out)."""
        return {cluster: LatencyHistogram.from_cumulative(pairs) for cluster, pairs in self._pairs.items() if pairs}


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
