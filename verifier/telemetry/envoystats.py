"""Envoy admin statistics as per-cluster counters: ``/stats?format=json``, ``/stats`` (text) and
``/stats/prometheus`` (https://www.envoyproxy.io/docs/envoy/latest/operations/admin#get--stats).

* JSON: ``{"stats": [{"name": "cluster.<name>.upstream_rq_total", "value": 42}, ..., {"histograms": {...}}]}``;
* text: one ``name: value`` line per stat (histograms as ``name: P0(...)``, or ``name: B0.5(...)`` buckets);
* Prometheus: ``envoy_cluster_upstream_rq_completed{cluster_name="<name>"}`` and
  ``envoy_cluster_upstream_rq{response_code="200",cluster_name=...}`` with Istio's tags; upstream Envoy's default
  tags ``envoy_cluster_name`` / ``envoy_response_code`` (``envoy_cluster_upstream_rq_xx{envoy_response_code_class=
  "2"}`` for classes) -- and its default cluster-name extractor stops at the first dot, leaving the rest of an FQDN
  cluster's host in the metric name (see ``promql``); such names are rebuilt here as ``<label>.<sanitized rest>``
  and matched to the service by their sanitized form.

The ``upstream_rq_time`` histograms met on the way go to the snapshot's ``histograms`` (verifier.telemetry.envoyhist
reads their buckets).

Stat names with Istio >= 1.23 read ``cluster.<name>;.<stat>`` (the ``alt_stat_name``); older and upstream Envoy
``cluster.<name>.<stat>``, where the name itself contains dots: the stat is the last dot-free part, and an
ambiguous name (``...local.external.upstream_rq_200``) never matches the service host exactly, so it is not counted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from splitproof.verifier.telemetry.envoyhist import PROM_BUCKET, STAT, Buckets
from splitproof.verifier.telemetry.errors import TelemetryQueryError
from splitproof.verifier.telemetry.latency import LatencyHistogram
from splitproof.verifier.telemetry.promtext import ExpositionError
from splitproof.verifier.telemetry.promtext import parse as parse_exposition

KEPT = re.compile(r"upstream_rq_(total|completed|retry|retry_success|timeout|per_try_timeout|pending_overflow|"
                  r"rx_reset|tx_reset|cancelled|maintenance_mode|\d{3}|\dxx)|upstream_cx_(none_healthy|connect_fail)")
STATS_FLUSH_INTERVAL = 5.0
_PROM_BASES = ("upstream_rq_retry_success", "upstream_rq_per_try_timeout", "upstream_rq_pending_overflow",
               "upstream_rq_maintenance_mode", "upstream_rq_completed", "upstream_rq_cancelled", "upstream_rq_rx_reset",
               "upstream_rq_tx_reset", "upstream_rq_timeout", "upstream_rq_retry", "upstream_rq_total",
               "upstream_cx_none_healthy", "upstream_cx_connect_fail", "upstream_rq_xx", "upstream_rq")


@dataclass(frozen=True, slots=True)
class EnvoySnapshot:
    """Per-cluster counters at time ``t`` (``clusters``: cluster name without ``;`` -> stat -> value)."""

    t: float
    uptime: float | None
    clusters: Mapping[str, Mapping[str, int]]
    format: str
    epoch: int | None = None  # server.hot_restart_epoch: a hot restart carries the counters over
    mono: float | None = None  # time.monotonic() before the request (immune to wall-clock steps) ...
    mono_end: float | None = None  # ... and after the answer: Envoy read its uptime in between
    # cluster -> its upstream_rq_time histogram as of Envoy's last stats flush (verifier.telemetry.envoyhist)
    histograms: Mapping[str, LatencyHistogram] = field(default_factory=dict)

    def started(self, flush_interval: float = STATS_FLUSH_INTERVAL) -> tuple[float, float] | None:
        """Bounds on when the process started, on the monotonic clock when the snapshot has it (else on ``t``'s).
        ``server.uptime`` is whole seconds and Envoy refreshes it only at each stats flush (``stats_flush_interval``,
        5 s by default in Envoy and in Istio's bootstrap, istio/istio pkg/bootstrap/config.go), and it was read
        somewhere during the request: the truth is up to ``1 s + flush_interval`` more than it says."""
        if self.uptime is None:
            return None
        begin, end = (self.mono, self.mono_end) if self.mono is not None and self.mono_end is not None else (
            self.t, self.t)
        return begin - self.uptime - 1.0 - flush_interval, end - self.uptime

    def __post_init__(self) -> None:
        object.__setattr__(self, "clusters",
                           MappingProxyType({k: MappingProxyType(dict(v)) for k, v in self.clusters.items()}))
        object.__setattr__(self, "histograms", MappingProxyType(dict(self.histograms)))


def detect_format(text: str) -> str:
    head = text.lstrip()[:1]
    if head == "{":
        return "json"
    for line in text.splitlines()[:50]:
        s = line.strip()
        if s.startswith("# TYPE") or s.startswith("envoy_"):
            return "prometheus"
        if s:
            return "text"
    return "text"


def cluster_stat(name: str) -> tuple[str, str] | None:
    """(cluster, stat) of a stat name ``cluster.<name>;.<stat>`` or ``cluster.<name>.<stat>``; None otherwise."""
    if not name.startswith("cluster."):
        return None
    rest = name[len("cluster."):]
    if ";." in rest:
        cluster, stat = rest.split(";.", 1)
    else:
        cluster, _, stat = rest.rpartition(".")
    return (cluster, stat) if cluster and stat else None


def _split(name: str) -> tuple[str, str] | None:
    found = cluster_stat(name)
    return found if found is not None and KEPT.fullmatch(found[1]) else None


def _flat_to_snapshot(flat: Mapping[str, int], t: float, fmt: str, buckets: Buckets) -> EnvoySnapshot:
    clusters: dict[str, dict[str, int]] = {}
    for name, value in flat.items():
        split = _split(name)
        if split:
            clusters.setdefault(split[0], {})[split[1]] = value
    uptime, epoch = flat.get("server.uptime"), flat.get("server.hot_restart_epoch")
    return EnvoySnapshot(t, float(uptime) if uptime is not None else None, clusters, fmt, epoch,
                         histograms=buckets.histograms())


def _histogram_cluster(name: object) -> str | None:
    """The cluster of an ``upstream_rq_time`` histogram's stat name, None for any other histogram."""
    found = cluster_stat(name) if isinstance(name, str) else None
    return found[0] if found is not None and found[1] == STAT else None


def parse_json(text: str, t: float) -> EnvoySnapshot:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise TelemetryQueryError(f"Envoy /stats?format=json is not JSON: {exc}") from None
    stats = doc.get("stats") if isinstance(doc, dict) else None
    if not isinstance(stats, list):
        raise TelemetryQueryError("Envoy /stats?format=json has no \"stats\" list")
    flat = {}
    buckets = Buckets()
    for item in stats:
        if isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("value"), int):
            flat[item["name"]] = int(item["value"])
        elif isinstance(item, dict) and isinstance(item.get("histograms"), list):  # (a dict: quantiles only)
            for h in item["histograms"]:
                cluster = _histogram_cluster(h.get("name")) if isinstance(h, dict) else None
                if cluster is not None:
                    buckets.json_buckets(cluster, h.get("buckets"))
    return _flat_to_snapshot(flat, t, "json", buckets)


def parse_text(text: str, t: float) -> EnvoySnapshot:
    flat = {}
    buckets = Buckets()
    for line in text.splitlines():
        name, sep, value = line.rpartition(": ")
        if sep and value.strip().isdigit():
            flat[name.strip()] = int(value)
        elif sep and (cluster := _histogram_cluster(name.strip())) is not None:
            buckets.text_value(cluster, value)
    return _flat_to_snapshot(flat, t, "text", buckets)


def prom_cluster(metric: str, base: str, labels: Mapping[str, str]) -> str | None:
    """The cluster of a /stats/prometheus sample of stat ``base`` (``envoy_cluster_[<mid>_]<base>``), None when the
    metric is another stat or carries no cluster label. ``<mid>`` is the rest of an FQDN cluster name that upstream
    Envoy's tag extractor left in the metric name: rebuilt as ``<label>.<mid>`` (sanitized)."""
    if not metric.startswith("envoy_cluster_"):
        return None
    rest = metric[len("envoy_cluster_"):]
    if rest == base:
        mid = ""
    elif rest.endswith("_" + base):
        mid = rest[: -len(base) - 1]
    else:
        return None
    cluster = labels.get("cluster_name") or labels.get("envoy_cluster_name")
    if not cluster:
        return None
    return f"{cluster}.{mid}" if mid else cluster


def _prom_stat(metric: str, labels: Mapping[str, str]) -> tuple[str, str] | None:
    """(cluster, stat) for one /stats/prometheus sample of a cluster counter, None for anything else."""
    for base in _PROM_BASES:
        cluster = prom_cluster(metric, base, labels)
        if cluster is None:
            continue
        if "cluster_name" in labels:
            code = labels.get("response_code") or labels.get("response_code_class")
        else:
            code = labels.get("envoy_response_code")
            if base == "upstream_rq_xx" and "envoy_response_code_class" in labels:
                code = labels["envoy_response_code_class"] + "xx"
        if base in ("upstream_rq", "upstream_rq_xx"):
            if not code:
                return None
            stat = f"upstream_rq_{code}"
        else:
            stat = base
        return (cluster, stat) if KEPT.fullmatch(stat) else None
    return None


def parse_prometheus(text: str, t: float) -> EnvoySnapshot:
    clusters: dict[str, dict[str, int]] = {}
    uptime = epoch = None
    buckets = Buckets()
    try:
        for sample in parse_exposition(text.splitlines()):
            if sample.name == "envoy_server_uptime":
                uptime = sample.value
                continue
            if sample.name == "envoy_server_hot_restart_epoch":
                epoch = int(sample.value)
                continue
            found = _prom_stat(sample.name, sample.labels)
            if found:
                stats = clusters.setdefault(found[0], {})
                stats[found[1]] = stats.get(found[1], 0) + int(sample.value)
            elif (bucket_of := prom_cluster(sample.name, PROM_BUCKET, sample.labels)) is not None:
                buckets.prom_sample(bucket_of, sample.labels.get("le"), sample.value)
    except ExpositionError as exc:
        raise TelemetryQueryError(f"Envoy /stats/prometheus: {exc}") from None
    return EnvoySnapshot(t, uptime, clusters, "prometheus", epoch, histograms=buckets.histograms())


def parse_snapshot(text: str, t: float, fmt: str | None = None) -> EnvoySnapshot:
    """Any of the three forms (``fmt`` None: detected)."""
    kind = fmt or detect_format(text)
    if kind == "json":
        return parse_json(text, t)
    if kind == "prometheus":
        return parse_prometheus(text, t)
    return parse_text(text, t)
