"""Reading Envoy route configurations back: which subsets a route sends to, and which route carries the split.

The one reading shared by both routers -- the local mesh's (Envoy admin ``config_dump``, snake_case JSON) and the
cluster's (``istioctl proxy-config routes -o json``, camelCase JSON) -- so "what a proxy serves" means the same on
a laptop and in a cluster. The rule for which route carries the split is verifier.istio.split_carrier (the last
catch-all route, else the only one), the same rule verify-split applies to a VirtualService's ``http`` entries.

Istio names outbound clusters ``outbound|<port>|<subset>|<service fqdn>`` and turns a weighted route into
``weighted_clusters``, leaving out a destination with weight 0 and making a lone destination a plain ``cluster``
(https://istio.io/latest/docs/ops/diagnostic-tools/proxy-cmd/); the Envoy fields are those of
envoy.config.route.v3 (https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/route/v3/route_components.proto).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from splitproof.verifier.istio import parse_cluster_name, split_carrier

Weights = dict[str, int]

# RouteMatch fields that narrow a route (either JSON spelling): a route with any of them is not a catch-all.
_CONDITIONS = ("headers", "query_parameters", "queryParameters", "path", "safe_regex", "safeRegex",
               "path_separated_prefix", "pathSeparatedPrefix", "path_match_policy", "pathMatchPolicy")


def route_destinations(route: Mapping[str, Any]) -> dict[str, int]:
    """{cluster name: weight} of one Envoy route (a plain ``cluster`` counts as 100); {} for a route that does not
    forward (a redirect, a direct response)."""
    action = route.get("route")
    if not isinstance(action, Mapping):
        return {}
    if "cluster" in action:
        return {str(action["cluster"]): 100}
    weighted = action.get("weighted_clusters") or action.get("weightedClusters") or {}
    return {str(c.get("name", "")): int(c.get("weight", 0)) for c in weighted.get("clusters") or []}


def subset_of(cluster: str, versions: Mapping[str, str] | None = None) -> str:
    """The subset of an ``outbound|...`` cluster name ("" = the whole service); any other name as it is. With
    ``versions`` ({service fqdn: version}: the Gateway API's per-version Services, whose clusters have no subset),
    a whole-service cluster of one of those Services is named by its version."""
    parsed = parse_cluster_name(cluster)
    if not parsed:
        return cluster
    if not parsed[1] and versions and parsed[2] in versions:
        return versions[parsed[2]]
    return parsed[1]


def matches_everything(route: Mapping[str, Any]) -> bool:
    """True for a catch-all Envoy route (prefix "/", no header or query condition): what a VirtualService http
    entry without ``match`` becomes -- the route that carries the split."""
    match = route.get("match") or {}
    if any(match.get(key) for key in _CONDITIONS):
        return False
    return match.get("prefix", "/") == "/"


def subset_weights(route_config: Mapping[str, Any],
                   versions: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Per Envoy route: its virtual host and name, {subset: weight} (subset "" = the whole service) and whether it
    is a catch-all. What ``local status`` lists, and how written and served route configurations are compared."""
    out = []
    for vhost in _virtual_hosts(route_config):
        for route in vhost.get("routes") or []:
            weights = {subset_of(name, versions): weight for name, weight in route_destinations(route).items()}
            out.append({"virtual_host": vhost.get("name", ""), "route": route.get("name", ""), "weights": weights,
                        "catch_all": matches_everything(route)})
    return out


def served_split(route_configs: str | Mapping[str, Any] | Iterable[Any],
                 hosts: Iterable[str] | None = None, versions: Mapping[str, str] | None = None) -> Weights | None:
    """The split a proxy serves: {subset: weight} of the route carrying it, in the first virtual host answering
    one of ``hosts`` (any virtual host when None) that has one; None when no route carries a split there.

    ``route_configs``: one RouteConfiguration, a list of them, or their JSON text (ValueError when it is not JSON).
    ``versions``: {service fqdn: version} of per-version Services (Gateway API routing; see :func:`subset_of`).
    """
    data = json.loads(route_configs) if isinstance(route_configs, str) else route_configs
    configs = [data] if isinstance(data, Mapping) else list(data)
    wanted = None if hosts is None else set(hosts)
    for config in configs:
        if not isinstance(config, Mapping):
            continue
        for vhost in _virtual_hosts(config):
            if wanted is not None and not _answers(vhost, wanted):
                continue
            routes = [r for r in vhost.get("routes") or [] if route_destinations(r)]
            carrier = split_carrier(routes, matches_everything)
            if carrier is not None:
                return {subset_of(name, versions): weight for name, weight in route_destinations(carrier).items()}
    return None


def _virtual_hosts(config: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(config.get("virtual_hosts") or config.get("virtualHosts") or [])


def _answers(vhost: Mapping[str, Any], hosts: set[str]) -> bool:
    """True when the virtual host is named after, or has a domain for, one of ``hosts`` (any port)."""
    if str(vhost.get("name", "")).rsplit(":", 1)[0] in hosts:
        return True
    return any(str(d).rsplit(":", 1)[0] in hosts for d in vhost.get("domains") or [])
