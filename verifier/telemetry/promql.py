"""What to read from Prometheus: a series selector plus how a series maps to a version and a status.

Three kinds (``SeriesSpec`` is the one type; the constructors below build it):

``istio_requests``  ``istio_requests_total{reporter="source",destination_service_name=...,
    destination_service_namespace=...}`` grouped by ``destination_version`` (Istio standard metrics,
    https://istio.io/latest/docs/reference/config/metrics/). Exactly one reporter, never both summed (each request is
    counted once per reporter). The service is selected by ``destination_service_name`` +
    ``destination_service_namespace`` (independent of the cluster domain), or by ``destination_service`` when the
    service is given as a full host. ``destination_version="unknown"`` is unattributed, its cause built from the
    series' ``response_flags`` (UH: no healthy upstream, so no peer metadata).
``envoy_requests``  Envoy's per-cluster counters, the subset read from the cluster name
    ``outbound|PORT|SUBSET|HOST``. The counter is ``upstream_rq_completed`` by default: one per request that got a
    final response, Envoy's own local replies (503 UH) included, retried attempts not (they are charged to the
    ``retry.`` scope) -- ``upstream_rq_total`` counts attempts, so retries count twice and a request to a subset
    without a healthy host not at all. Per-status rows come from ``upstream_rq_<code>`` (the final responses).
    Tag names: Istio's bootstrap (tools/packaging/common/envoy_bootstrap.json) tags ``cluster_name`` and
    ``response_code``; upstream Envoy's default tags are ``envoy_cluster_name`` / ``envoy_response_code``, and
    because its default cluster-name extractor stops at the first dot, an FQDN cluster name
    (``outbound|8080|canary|recommendationservice.online-boutique.svc.cluster.local``) leaves the rest of the host
    in the metric name: ``envoy_cluster_online_boutique_svc_cluster_local_upstream_rq_completed
    {envoy_cluster_name="outbound|8080|canary|recommendationservice"}`` (``tag="envoy-fqdn"``).
``promql``  the user's own series selector and version label; a version label whose value is an Istio cluster name
    yields its subset.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from splitproof.verifier.istio import ClusterName, parse_cluster
from splitproof.verifier.telemetry.clusters import Service, explain_flags, sanitized
from splitproof.verifier.telemetry.errors import TelemetryInputError
from splitproof.verifier.telemetry.result import NONE, StatusKey

REPORTERS = ("source", "destination", "waypoint")
ENVOY_TAGS = ("cluster_name", "envoy_cluster_name", "envoy-fqdn")
ENVOY_COUNTERS = ("upstream_rq_completed", "upstream_rq_total")
ISTIO_STATUS_LABELS = ("response_code", "grpc_response_status", "response_flags")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_SELECTOR = re.compile(r"\s*(?:[a-zA-Z_:][a-zA-Z0-9_:]*\s*(?:\{[^{}\[\]()]*\})?|\{[^{}\[\]()]*\})\s*")


@dataclass(frozen=True, slots=True)
class SeriesSpec:
    """One selector and the rules that turn its series into (version, status) counts."""

    kind: str  # "istio" | "envoy" | "promql"
    selector: str
    version_label: str
    description: str
    status_labels: tuple[str, str, str] = ISTIO_STATUS_LABELS
    count_metric: str | None = None  # envoy: the counted metric among the selector's __name__ alternatives
    status_metric: str | None = None  # envoy: the per-response-code metric
    cluster_host: str | None = None  # envoy: the host the cluster label must name
    reporter: str | None = None
    service: Service | None = None   # Gateway API routing: its version Services name the versions
    latency: SeriesSpec | None = None  # envoy: the duration buckets of the same clusters (upstream_rq_time)


@dataclass(frozen=True, slots=True)
class Classified:
    role: str  # "count" | "status" | "skip"
    version: str | None = None
    cause: str | None = None  # why unattributed (version None) or skipped
    status: StatusKey | None = None


def label_value(value: str) -> str:
    """A PromQL string literal (Go-style escapes, which JSON's are a subset of)."""
    return json.dumps(value)


def re2_escape(text: str) -> str:
    return re.sub(r"([.|()\[\]{}*+?^$\\])", r"\\\1", text)


def _check_reporter(reporter: str) -> str:
    if reporter not in REPORTERS:
        raise TelemetryInputError(f"--reporter must be one of {', '.join(REPORTERS)} (never both: each request is "
                                  f"counted once per reporter), not {reporter!r}")
    return reporter


def _service_matchers(service: Service) -> str:
    if "." in service.name:
        return f"destination_service={label_value(service.fqdn)}"
    return (f"destination_service_name={label_value(service.name)},"
            f"destination_service_namespace={label_value(service.namespace)}")


def istio_requests(service: Service, reporter: str = "source", metric: str = "istio_requests_total") -> SeriesSpec:
    """By ``destination_version`` -- or, for a Service with Gateway API version Services, by
    ``destination_service_name`` (+ namespace) of those Services, each mapped to its version."""
    if service.versions:
        names = "|".join(re2_escape(n) for _ns, n, _v in service.versions)
        namespaces = "|".join(sorted({re2_escape(ns) for ns, _n, _v in service.versions}))
        sel = (f"{metric}{{reporter={label_value(_check_reporter(reporter))},destination_service_name=~"
               f"{label_value(names)},destination_service_namespace=~{label_value(namespaces)}}}")
        return SeriesSpec("istio", sel, "destination_service_name", f"{sel} by destination_service_name",
                          reporter=reporter, service=service)
    sel = f"{metric}{{reporter={label_value(_check_reporter(reporter))},{_service_matchers(service)}}}"
    return SeriesSpec("istio", sel, "destination_version", f"{sel} by destination_version", reporter=reporter)


def istio_duration_buckets(service: Service, reporter: str = "source") -> SeriesSpec:
    """``istio_request_duration_milliseconds_bucket`` of the same requests (grouped by version and ``le``)."""
    return istio_requests(service, reporter, "istio_request_duration_milliseconds_bucket")


def envoy_requests(service: Service, tag: str = "cluster_name", counter: str = "upstream_rq_completed") -> SeriesSpec:
    if tag not in ENVOY_TAGS:
        raise TelemetryInputError(f"Envoy cluster tag must be one of {', '.join(ENVOY_TAGS)}, not {tag!r}")
    if counter not in ENVOY_COUNTERS:
        raise TelemetryInputError(f"Envoy counter must be one of {', '.join(ENVOY_COUNTERS)}, not {counter!r}")
    host, prefix, code_label = service.fqdn, "envoy_cluster_", "response_code"
    if tag == "envoy-fqdn":
        first, _, rest = service.fqdn.partition(".")
        host, prefix, code_label = first, f"envoy_cluster_{sanitized(rest)}_", "envoy_response_code"
    elif tag == "envoy_cluster_name":
        code_label = "envoy_response_code"
    label = "envoy_cluster_name" if tag != "cluster_name" else "cluster_name"
    count_metric, status_metric = f"{prefix}{counter}", f"{prefix}upstream_rq"
    cluster_re = rf"outbound\|[0-9]+\|[^|]*\|{re2_escape(host)}"
    if service.versions and tag != "envoy-fqdn":   # Gateway API: the version Services' whole-service clusters
        hosts = "|".join(re2_escape(h) for h in service.version_service_hosts())
        cluster_re = rf"outbound\|[0-9]+\|[^|]*\|({re2_escape(host)}|{hosts})"
    sel = (f"{{__name__=~{label_value(f'{count_metric}|{status_metric}')},"
           f"{label}=~{label_value(cluster_re)}}}")
    routed = service if service.versions and tag != "envoy-fqdn" else None
    buckets = f"{prefix}upstream_rq_time_bucket"  # Envoy's request-time histogram, in ms (flushed every 5 s)
    bucket_sel = f"{buckets}{{{label}=~{label_value(cluster_re)}}}"
    latency = SeriesSpec("envoy", bucket_sel, label, f"{bucket_sel} by subset", status_labels=("", "", ""),
                         count_metric=buckets, cluster_host=host, service=routed)
    return SeriesSpec("envoy", sel, label, f"{count_metric}{{{label}=~{cluster_re}}} by subset",
                      status_labels=(code_label, "", ""), count_metric=count_metric, status_metric=status_metric,
                      cluster_host=host, service=routed, latency=latency)


def envoy_candidates(service: Service, counter: str = "upstream_rq_completed") -> tuple[SeriesSpec, ...]:
    """Istio's tag first, then upstream Envoy's two forms: the first with series in the window is the one."""
    return tuple(envoy_requests(service, tag, counter) for tag in ENVOY_TAGS)


def promql(selector: str, version_label: str = "destination_version") -> SeriesSpec:
    """The user's own series selector (``metric{...}`` -- no functions, no range: those are ours to apply)."""
    if not _LABEL_NAME.fullmatch(version_label):
        raise TelemetryInputError(f"--version-label {version_label!r} is not a label name")
    bare = _QUOTED.sub('""', selector)
    if not selector.strip() or not _SELECTOR.fullmatch(bare):
        raise TelemetryInputError(f"--promql must be a series selector such as my_requests_total{{app=\"reco\"}} "
                                  f"(no functions, ranges or operators), not {selector!r}")
    sel = selector.strip()
    return SeriesSpec("promql", sel, version_label, f"{sel} by {version_label}")


def _status(spec: SeriesSpec, labels: dict[str, str]) -> StatusKey:
    code, grpc, flags = ((labels.get(name) or NONE) if name else NONE for name in spec.status_labels)
    return StatusKey(code, grpc, flags)


def classify(spec: SeriesSpec, labels: dict[str, str]) -> Classified:
    """What one series contributes: counted for a version (or unattributed with a cause), a status row, or
    skipped with a reason."""
    name = labels.get("__name__", "")
    role = "count"
    if spec.kind == "envoy":
        if name == spec.status_metric:
            if spec.status_labels[0] not in labels:  # Istio's response_code_class series share the name
                return Classified("skip", cause="per-class series")
            role = "status"
        elif name != spec.count_metric:
            return Classified("skip", cause=f"other metric {name}")
    raw = labels.get(spec.version_label)
    status = _status(spec, labels) if spec.kind != "envoy" or role == "status" else None
    if raw is None or raw == "":
        return Classified(role, None, f"no {spec.version_label} label", status)
    cluster = parse_cluster(raw)
    if spec.service is not None:
        return _by_version_service(spec, spec.service, raw, cluster, labels, role, status)
    if spec.kind == "envoy":
        if cluster is None or cluster.direction != "outbound" or cluster.host != spec.cluster_host:
            return Classified("skip", cause=f"other cluster {raw}")
        if not cluster.subset:
            return Classified(role, None, f"no subset (cluster {raw} routes to the whole service)", status)
        return Classified(role, cluster.subset, None, status)
    if cluster is not None and cluster.direction == "outbound" and spec.kind == "promql":
        if not cluster.subset:
            return Classified(role, None, f"no subset (cluster {raw} routes to the whole service)", status)
        return Classified(role, cluster.subset, None, status)
    if raw == "unknown":
        flags = labels.get("response_flags") or NONE
        return Classified(role, None, f"{spec.version_label}=unknown, response_flags {explain_flags(flags)}", status)
    return Classified(role, raw, None, status)


def _by_version_service(spec: SeriesSpec, service: Service, raw: str, cluster: ClusterName | None,
                        labels: dict[str, str], role: str, status: StatusKey | None) -> Classified:
    """Gateway API attribution: the version Service a series names (Istio's ``destination_service_name`` +
    namespace, or an Envoy cluster ``outbound|P||<version service>``) -> its version."""
    if spec.kind == "envoy":
        attributed = service.cluster_version(cluster) if cluster is not None else None
        if attributed is None:
            return Classified("skip", cause=f"other cluster {raw}")
        return Classified(role, attributed[0], attributed[1], status)
    version = service.version_of_service(raw, labels.get("destination_service_namespace", service.namespace))
    if version is None:
        return Classified(role, None, f"destination_service_name={raw} is not a backend Service of the route",
                          status)
    return Classified(role, version, None, status)
