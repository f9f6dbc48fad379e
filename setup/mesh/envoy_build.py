"""Envoy building blocks for the local mesh: listeners, clusters and route configurations (v3 JSON-ready dicts),
named the way istiod names them, from the typed Istio model (setup.mesh.istio_model).

The Envoy API is envoy.config.{listener,cluster,route}.v3
(https://www.envoyproxy.io/docs/envoy/latest/api-v3/api); Istio's defaults mirrored here (retry policy, no route
timeout, LEAST_REQUEST) are those of its VirtualService and DestinationRule reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from splitproof.setup.mesh.istio_model import DIRECTIONS, Destination, HeaderOps, HttpMatch, HttpRoute, StringMatch
from splitproof.setup.mesh.topology import Endpoint, Service
from splitproof.verifier.istio import cluster_name

T_LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
T_CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
T_ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
T_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
T_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
T_HTTP_OPTIONS = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
T_PREVIOUS_HOSTS = "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
HTTP_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
UNLIMITED = 4294967295

# Istio's default route retry policy (what a VirtualService without `retries` gets).
ISTIO_DEFAULT_RETRY: dict[str, Any] = {
    "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
    "num_retries": 2,
    "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts",
                              "typed_config": {"@type": T_PREVIOUS_HOSTS}}],
    "host_selection_retry_max_attempts": "5",
    "retriable_status_codes": [503],
}
_URI = {"exact": lambda v: {"path": v}, "prefix": lambda v: {"prefix": v},
        "regex": lambda v: {"safe_regex": {"regex": v}}}
_STRING = {"exact": lambda v: {"exact": v}, "prefix": lambda v: {"prefix": v},
           "regex": lambda v: {"safe_regex": {"regex": v}}}


# ------------------------------------------------------------------------------------------------------- names


def ingress_listener_name(gateway_port: int) -> str:
    return f"ingress.{gateway_port}"


def ingress_route_name(gateway_port: int) -> str:
    return f"http.{gateway_port}"


def mesh_listener_name(service: str) -> str:
    return f"mesh.{service}"


def mesh_route_name(svc: Service) -> str:
    """The outbound route configuration of one service (named like istiod's virtual host for it)."""
    return f"{svc.fqdn}:{svc.port}"


def service_cluster(svc: Service, subset: str = "") -> str:
    return cluster_name(svc.port, subset, svc.fqdn)


# ----------------------------------------------------------------------------------------- inputs and outputs


@dataclass(frozen=True)
class ListenerPorts:
    """Where the local mesh listens: Gateway server port -> local port, service name -> local "VIP" port (0 = any)."""

    gateway: Mapping[int, int]
    services: Mapping[str, int]
    address: str = "127.0.0.1"


@dataclass
class EnvoyConfig:
    listeners: list[dict[str, Any]] = field(default_factory=list)
    clusters: list[dict[str, Any]] = field(default_factory=list)
    routes: dict[str, dict[str, Any]] = field(default_factory=dict)  # route config name -> RouteConfiguration
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------- clusters


def _http_protocol_options(protocol: str) -> dict[str, Any]:
    explicit = {"http2_protocol_options": {}} if protocol == "grpc" else {"http_protocol_options": {}}
    return {HTTP_OPTIONS_KEY: {"@type": T_HTTP_OPTIONS, "explicit_http_config": explicit}}


def cluster(name: str, svc: Service, endpoints: Sequence[Endpoint], lb: str, subset: str,
            selector: Mapping[str, str]) -> dict[str, Any]:
    """A STATIC cluster of the given endpoints (gRPC services get HTTP/2 upstream connections); the subset's
    selector and each endpoint's instance name ride along as ``splitproof`` metadata, for status."""
    lb_endpoints = [{
        "endpoint": {"address": {"envoy_internal_address": {"server_listener_name": ep.internal}} if ep.internal
                     else {"socket_address": {"address": ep.address, "port_value": ep.port}}},
        "metadata": {"filter_metadata": {"splitproof": {"instance": ep.instance, "labels": dict(ep.labels)}}},
    } for ep in endpoints]
    return {
        "@type": T_CLUSTER,
        "name": name,
        "type": "STATIC",
        "connect_timeout": "10s",
        "lb_policy": lb,
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": lb_endpoints}] if lb_endpoints
                            else []},
        "circuit_breakers": {"thresholds": [{"max_connections": UNLIMITED, "max_pending_requests": UNLIMITED,
                                             "max_requests": UNLIMITED, "max_retries": UNLIMITED}]},
        "typed_extension_protocol_options": _http_protocol_options(svc.protocol),
        "metadata": {"filter_metadata": {"splitproof": {"service": svc.fqdn, "subset": subset,
                                                        "selector": dict(selector)}}},
    }


# ------------------------------------------------------------------------------------------------------ routes


def header_fields(ops: HeaderOps) -> dict[str, list[Any]]:
    """Istio set/add/remove -> Envoy ``{request,response}_headers_to_add|remove``."""
    out: dict[str, list[Any]] = {}
    for direction in DIRECTIONS:
        to_add = [{"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
                  for k, v in ops.set.get(direction, ())]
        to_add += [{"header": {"key": k, "value": v}, "append_action": "APPEND_IF_EXISTS_OR_ADD"}
                   for k, v in ops.add.get(direction, ())]
        if to_add:
            out[f"{direction}_headers_to_add"] = to_add
        if ops.remove.get(direction):
            out[f"{direction}_headers_to_remove"] = list(ops.remove[direction])
    return out


def _merge_headers(*parts: Mapping[str, list[Any]]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for part in parts:
        for key, values in part.items():
            out.setdefault(key, []).extend(values)
    return out


def route_match(match: HttpMatch | None) -> dict[str, Any]:
    """An Istio match block -> an Envoy RouteMatch (None: everything)."""
    out: dict[str, Any] = dict(_URI[match.uri.kind](match.uri.value)) if match and match.uri else {"prefix": "/"}
    if match is None:
        return out
    if match.ignore_uri_case:
        out["case_sensitive"] = False
    if match.headers:
        out["headers"] = [{"name": name.lower(), "string_match": _string(sm)} for name, sm in match.headers]
    return out


def _string(sm: StringMatch) -> dict[str, Any]:
    return dict(_STRING[sm.kind](sm.value))


def routes(http: Sequence[HttpRoute], label: str) -> list[dict[str, Any]]:
    """Envoy routes of a VirtualService's ``http`` entries: one per match block (ORed), weighted destinations as
    ``weighted_clusters`` with zero weights dropped and a lone destination as a plain ``cluster``, as istiod does.
    ``label`` names unnamed entries (``<label>.<index>``)."""
    out = []
    for i, r in enumerate(http):
        dests = forwarded(r)
        action: dict[str, Any] = {"timeout": r.timeout, "retry_policy": ISTIO_DEFAULT_RETRY,
                                  "max_stream_duration": {"grpc_timeout_header_max": "0s"}}
        route_headers = header_fields(r.headers)
        if len(dests) == 1:
            action["cluster"] = service_cluster(dests[0].service, dests[0].subset)
            route_headers = _merge_headers(route_headers, header_fields(dests[0].headers))
        else:
            action["weighted_clusters"] = {"clusters": [
                {"name": service_cluster(d.service, d.subset), "weight": d.weight, **header_fields(d.headers)}
                for d in dests]}
        matches: Sequence[HttpMatch | None] = r.matches or (None,)
        name = r.name or f"{label}.{i}"
        for j, match in enumerate(matches):
            out.append({"match": route_match(match), "route": action, **route_headers,
                        "name": name if len(matches) == 1 else f"{name}.{j}"})
    return out


def forwarded(route: HttpRoute) -> list[Destination]:
    """The destinations Envoy gets: those with a weight (or the first one, when every weight is 0)."""
    return [d for d in route.destinations if d.weight > 0] or list(route.destinations[:1])


def default_route(svc: Service) -> dict[str, Any]:
    """A service no mesh VirtualService routes: everything to the whole service."""
    return {"name": "default", "match": {"prefix": "/"},
            "route": {"cluster": service_cluster(svc), "timeout": "0s",
                      "retry_policy": ISTIO_DEFAULT_RETRY, "max_stream_duration": {"grpc_timeout_header_max": "0s"}}}


def route_config(name: str, virtual_hosts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"@type": T_ROUTE, "name": name, "virtual_hosts": virtual_hosts}


# --------------------------------------------------------------------------------------------------- listeners


def listener(name: str, address: str, port: int, route: str, route_path: str,
             access_log: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An HTTP listener whose routes come from its own file (RDS ``path_config_source``); ``access_log``: its
    access loggers (setup.mesh.inbound)."""
    hcm: dict[str, Any] = {
        "@type": T_HCM,
        "stat_prefix": name,
        "codec_type": "AUTO",
        "rds": {"route_config_name": route,
                "config_source": {"path_config_source": {"path": route_path}, "resource_api_version": "V3"}},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": T_ROUTER}}],
    }
    if access_log:
        hcm["access_log"] = access_log
    return {
        "@type": T_LISTENER,
        "name": name,
        "address": {"socket_address": {"address": address, "port_value": port}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                        "typed_config": hcm}]}],
    }
