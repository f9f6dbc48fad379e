"""Weights as a VirtualService or an HTTPRoute *declares* them (what the proxies are compared against; what they
serve is read by setup.cluster.router)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from splitproof.verifier import gatewayapi as gw
from splitproof.verifier.errors import InputError
from splitproof.verifier.istio import weighted_route

Weights = dict[str, int]


def fqdn(service: str, namespace: str) -> str:
    return f"{service}.{namespace}.svc.cluster.local"


def http_route_weights(route: Mapping[str, Any], services: list[Mapping[str, Any]], namespace: str) -> Weights | None:
    """The split an HTTPRoute's weighted rule declares, by the version each backend Service selects (relative
    weights as written); None when it has none or a backend's version is unknown."""
    try:
        return gw.version_weights(gw.backends(route, namespace), gw.service_versions(services, namespace))
    except InputError:
        return None


def virtual_service_weights(vs: Mapping[str, Any], host: str) -> Weights | None:
    """The split ``vs`` routes to ``host`` with (verifier.istio.weighted_route), or None when it has none.

    Matched on the destinations, not on ``spec.hosts``: the gateway-bound gRPC VirtualService has the shop's
    host there and routes to the service."""
    short = host.split(".")[0]
    routes = [r for http in (vs.get("spec") or {}).get("http") or [] for r in (http or {}).get("route") or []]
    if not any(str((r or {}).get("destination", {}).get("host", "")).split(".")[0] == short for r in routes):
        return None
    try:
        return weighted_route(vs)
    except InputError:
        return None
