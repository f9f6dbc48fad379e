"""Weights as a VirtualService declares them and as a proxy holds them (``istioctl proxy-config routes -o json``).

Istio turns a weighted route into Envoy ``weighted_clusters`` whose clusters are named
``outbound|<port>|<subset>|<service fqdn>``; a destination with weight 0 is left out, and a route with a single
remaining destination becomes a plain ``cluster``. ``normalize`` applies the same rules to the expected weights so
the two can be compared.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from splitproof.setup.mesh.translate import matches_everything
from splitproof.verifier.errors import InputError
from splitproof.verifier.istio import format_weights, split_carrier, weighted_route

Weights = dict[str, int]


def fqdn(service: str, namespace: str) -> str:
    return f"{service}.{namespace}.svc.cluster.local"


def normalize(weights: Mapping[str, int]) -> Weights:
    """Drop zero weights (Istio does); a lone destination carries 100."""
    kept = {k: int(v) for k, v in weights.items() if int(v) != 0}
    if len(kept) == 1:
        return {next(iter(kept)): 100}
    return kept


def fmt(weights: Mapping[str, int] | None) -> str:
    if weights is None:
        return "(no route)"
    return format_weights(weights) or "(none)"


def virtual_service_weights(vs: Mapping[str, Any], host: str) -> Weights | None:
    """The split ``vs`` routes to ``host`` with (setup.manifests.weighted_route), or None when it has none.

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


def _subset_of(cluster: str) -> str:
    parts = cluster.split("|")
    return parts[2] if len(parts) == 4 else cluster


def _route_weights(route: Mapping[str, Any]) -> Weights | None:
    action = route.get("route")
    if not isinstance(action, Mapping):
        return None
    weighted = action.get("weightedClusters") or action.get("weighted_clusters")
    if isinstance(weighted, Mapping):
        return {_subset_of(str(c.get("name", ""))): int(c.get("weight", 0)) for c in weighted.get("clusters") or []}
    if "cluster" in action:
        return {_subset_of(str(action["cluster"])): 100}
    return None


def _host_matches(vhost: Mapping[str, Any], hosts: Iterable[str]) -> bool:
    wanted = set(hosts)
    name = str(vhost.get("name", ""))
    if name.rsplit(":", 1)[0] in wanted:
        return True
    return any(str(d).rsplit(":", 1)[0] in wanted for d in vhost.get("domains") or [])


def route_weights(routes_json: str | list[Any], hosts: Iterable[str]) -> Weights | None:
    """The weights a proxy holds for the first virtual host answering one of ``hosts`` -- read from its catch-all
    route (the last one; testers' header routes come first), else its only route; None when it has none."""
    data = json.loads(routes_json) if isinstance(routes_json, str) else routes_json
    configs = data if isinstance(data, list) else [data]
    host_list = list(hosts)
    for config in configs:
        if not isinstance(config, Mapping):
            continue
        for vhost in config.get("virtualHosts") or config.get("virtual_hosts") or []:
            if not _host_matches(vhost, host_list):
                continue
            routes = [r for r in vhost.get("routes") or [] if _route_weights(r) is not None]
            carrier = split_carrier(routes, matches_everything)
            if carrier is not None:
                return _route_weights(carrier)
    return None
