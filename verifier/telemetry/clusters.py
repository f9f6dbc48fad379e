"""The service whose split is verified, as telemetry names it, and Envoy's response flags.

Cluster names are parsed by :func:`verifier.istio.parse_cluster` (the one reading, shared with canary-setup):
``outbound|8080|canary|recommendationservice.online-boutique.svc.cluster.local``; the subset is empty for the whole
service; inbound clusters are ``inbound|<port>||`` (the server-side sidecar). Since Istio 1.23 every cluster also
carries ``alt_stat_name`` = its name + ``;`` (``util.DelimitedStatsPrefix`` in pilot/pkg/networking/util,
``constants.StatPrefixDelimiter``), so stat names read ``cluster.outbound|8080|canary|<host>;.upstream_rq_total``;
Istio 1.23 and 1.24's JSON access log printed ``%UPSTREAM_CLUSTER%`` (the alt stat name, ending in ``;``) until
istio/istio#54224 switched it to ``%UPSTREAM_CLUSTER_RAW%`` -- both forms are accepted.

Gateway API routing (an HTTPRoute sending to one Service per version) has no subsets: the sidecar's clusters are
``outbound|8080||recommendationservice-canary.<ns>.svc.cluster.local`` and Istio's metrics name the version Service in
``destination_service_name``. A ``Service`` built with :meth:`Service.from_httproute` carries that mapping
({version Service -> version}, from the route's backendRefs and each Service's ``version`` selector label), and
:meth:`Service.cluster_version` is the one attribution of a cluster name every source applies.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from splitproof.verifier import defaults
from splitproof.verifier import gatewayapi as gw
from splitproof.verifier.errors import InputError
from splitproof.verifier.istio import ClusterName
from splitproof.verifier.telemetry.errors import TelemetryInputError

DEFAULT_CLUSTER_DOMAIN = "cluster.local"

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_HOSTNAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

# Envoy's %RESPONSE_FLAGS% short names (envoyproxy/envoy docs, configuration/observability/access_log/usage,
# "%RESPONSE_FLAGS%"); the ones a canary rollout meets.
RESPONSE_FLAGS = {
    "UH": "no healthy upstream host",
    "UF": "upstream connection failure",
    "UO": "upstream overflow (circuit breaker)",
    "NR": "no route configured",
    "URX": "upstream retry limit exceeded",
    "NC": "no upstream cluster",
    "DT": "downstream request timeout",
    "DC": "downstream connection termination",
    "LH": "local service failed health check",
    "UT": "upstream request timeout",
    "LR": "connection local reset",
    "UR": "upstream remote reset",
    "UC": "upstream connection termination",
    "DI": "delayed by fault injection",
    "FI": "aborted by fault injection",
    "RL": "rate limited locally",
    "UAEX": "unauthorized (external authorization)",
    "RLSE": "rate limit service error",
    "SI": "stream idle timeout",
    "DPE": "downstream protocol error",
    "UPE": "upstream protocol error",
    "UMSDR": "upstream max stream duration reached",
    "OM": "overload manager",
    "DF": "DNS resolution failure",
    "DO": "dropped by overload",
}


def explain_flags(flags: str) -> str:
    """``UH`` -> ``UH (no healthy upstream host)``; ``-``/empty -> ``-``."""
    if flags in ("", "-"):
        return "-"
    parts = [f for f in flags.split(",") if f]
    known = [RESPONSE_FLAGS[f] for f in parts if f in RESPONSE_FLAGS]
    return f"{flags} ({'; '.join(known)})" if known else flags


@dataclass(frozen=True, slots=True)
class Service:
    """The service whose split is verified: ``name`` in ``namespace`` (or a full host when ``name`` has a dot).

    ``versions``: with Gateway API routing, (namespace, Service name, version) of each per-version backend Service
    (:meth:`from_httproute`); empty for DestinationRule subsets."""

    name: str = defaults.SERVICE_HOST
    namespace: str = defaults.SERVICE_NAMESPACE
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN
    versions: tuple[tuple[str, str, str], ...] = ()

    @classmethod
    def from_httproute(cls, route: Mapping[str, Any], services: Iterable[Mapping[str, Any]],
                       name: str = defaults.SERVICE_HOST, namespace: str = defaults.SERVICE_NAMESPACE,
                       cluster_domain: str = DEFAULT_CLUSTER_DOMAIN) -> Service:
        """The service split by ``route`` (an HTTPRoute document), each backend Service mapped to the version its
        selector's ``version`` label names (``services``: the Service documents, from a file or the API)."""
        try:
            backends = gw.backends(route, namespace)
            known = gw.service_versions(list(services), namespace)
        except InputError as exc:
            raise TelemetryInputError(str(exc)) from None
        pairs: list[tuple[str, str, str]] = []
        for b in backends:
            version = known.get((b.namespace, b.name))
            if version is None:
                raise TelemetryInputError(f"backend Service {b.namespace}/{b.name} has no 'version' label in its "
                                          "selector (or no manifest): its requests cannot be attributed")
            if (b.namespace, b.name, version) not in pairs:
                pairs.append((b.namespace, b.name, version))
        return cls(name, namespace, cluster_domain, tuple(pairs))

    def version_service_hosts(self) -> dict[str, str]:
        """{per-version Service FQDN: version} (empty without Gateway API routing)."""
        return {f"{name}.{ns}.svc.{self.cluster_domain}": v for ns, name, v in self.versions}

    def version_of_service(self, name: str, namespace: str) -> str | None:
        """The version of the backend Service ``name`` in ``namespace`` (Istio's ``destination_service_name`` and
        ``destination_service_namespace`` labels); None for any other service."""
        return next((v for ns, n, v in self.versions if n == name and ns == namespace), None)

    def cluster_version(self, cluster: ClusterName) -> tuple[str | None, str | None] | None:
        """(version, None) for an outbound cluster that attributes a request, (None, cause) for one of this
        service that cannot (the whole-service cluster), None for a cluster of another service."""
        if cluster.direction != "outbound":
            return None
        version = self.version_service_hosts().get(cluster.host)
        if version is not None:
            return version, None
        if cluster.host != self.fqdn:
            return None
        if not cluster.subset:
            return None, f"no subset (outbound|{cluster.port}||{cluster.host} routes to the whole service)"
        return cluster.subset, None

    def __post_init__(self) -> None:
        if "." in self.name:
            if not _HOSTNAME.fullmatch(self.name):
                raise TelemetryInputError(f"--service {self.name!r} is not a host name")
        elif not _DNS_LABEL.fullmatch(self.name):
            raise TelemetryInputError(f"--service {self.name!r} is not a Kubernetes service name (RFC 1123 label)")
        if not _DNS_LABEL.fullmatch(self.namespace):
            raise TelemetryInputError(f"--namespace {self.namespace!r} is not a Kubernetes namespace name")
        if not _HOSTNAME.fullmatch(self.cluster_domain):
            raise TelemetryInputError(f"cluster domain {self.cluster_domain!r} is not a DNS name")

    @property
    def fqdn(self) -> str:
        """``recommendationservice.online-boutique.svc.cluster.local`` (or ``name`` when it is already a host)."""
        if "." in self.name:
            return self.name
        return f"{self.name}.{self.namespace}.svc.{self.cluster_domain}"

    def matches_host(self, host: str) -> bool:
        return host == self.fqdn or host in self.version_service_hosts()

    def describe(self) -> str:
        if not self.versions:
            return self.fqdn
        return f"{self.fqdn} (versions by Service: " + ", ".join(f"{n}={v}" for _ns, n, v in self.versions) + ")"


def sanitized(text: str) -> str:
    """What Envoy's Prometheus output makes of a stat name part: every character outside [a-zA-Z0-9_] -> ``_``."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", text)
