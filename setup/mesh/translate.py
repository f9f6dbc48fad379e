"""Istio networking documents -> Envoy configuration, the way istiod does it, for the local mesh. Pure functions.

Input: Gateway / VirtualService / DestinationRule documents (networking.istio.io v1, v1beta1 or v1alpha3 -- the
same documents setup.manifests renders for the cluster), the mesh's Services and the ready instances (Endpoints
with pod labels). Output: Envoy listeners, clusters and route configurations (v3 JSON-ready dicts).

What istiod does and this mirrors:
- VirtualService http routes -> Envoy routes: uri ``prefix``/``exact``/``regex`` and header matches (several
  ``match`` blocks = OR = several Envoy routes), weighted destinations -> ``weighted_clusters`` (zero weights
  dropped; a single remaining destination becomes a plain ``cluster``), per-destination and per-route
  ``headers.request|response.set|add|remove``, ``timeout`` (default: none), Istio's default retry policy.
- Cluster names ``outbound|<port>|<subset>|<host>.<ns>.svc.cluster.local`` (subset empty for the whole service).
- DestinationRule subsets -> one cluster per subset whose endpoints are the instances whose labels include the
  subset's labels. A subset selecting a label no instance has is an empty cluster (503 / UNAVAILABLE, as in Istio);
  a subset selecting only ``app`` includes every version. A route to a subset no DestinationRule defines points to
  a cluster that does not exist (503, as in Istio when the VirtualService is applied before the DestinationRule).
- Gateway servers -> one ingress listener per port (route ``http.<port>``); only VirtualServices bound to that
  Gateway, with hosts intersecting the server's hosts, become its virtual hosts. Mesh VirtualServices apply to the
  outbound ("sidecar") listener of their host's service; a service without one gets a default route to all of it.
- gRPC services get HTTP/2 upstream connections.

Anything a document asks for that this translation does not implement raises InputError naming the field path
(``VirtualService ns/name: spec.http[0].retries is not supported by the local mesh``) -- never silently ignored.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from splitproof.setup.mesh.topology import Endpoint, Service
from splitproof.verifier.errors import InputError
from splitproof.verifier.istio import API_VERSIONS, cluster_name, parse_cluster_name, split_carrier, weighted_route

SUPPORTED_KINDS = ("Gateway", "VirtualService", "DestinationRule")
INGRESS_LABELS: Mapping[str, str] = {"istio": "ingressgateway"}  # the labels of the local ingress "pod"
MESH_GATEWAY = "mesh"

T_LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
T_CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
T_ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
T_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
T_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
T_HTTP_OPTIONS = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
T_PREVIOUS_HOSTS = "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
HTTP_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
UNLIMITED = 4294967295
DEFAULT_LB = "LEAST_REQUEST"  # Istio's default load balancer
LB_POLICIES = {"ROUND_ROBIN": "ROUND_ROBIN", "LEAST_REQUEST": "LEAST_REQUEST", "LEAST_CONN": "LEAST_REQUEST",
               "RANDOM": "RANDOM", "UNSPECIFIED": DEFAULT_LB}
GATEWAY_PROTOCOLS = ("HTTP", "HTTP2", "GRPC")

# Istio's default route retry policy (what a VirtualService without `retries` gets).
ISTIO_DEFAULT_RETRY: dict[str, Any] = {
    "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
    "num_retries": 2,
    "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts",
                              "typed_config": {"@type": T_PREVIOUS_HOSTS}}],
    "host_selection_retry_max_attempts": "5",
    "retriable_status_codes": [503],
}


# ---------------------------------------------------------------------------------------------------------------
# names


def ingress_listener_name(gateway_port: int) -> str:
    return f"ingress.{gateway_port}"


def ingress_route_name(gateway_port: int) -> str:
    return f"http.{gateway_port}"


def mesh_listener_name(service: str) -> str:
    return f"mesh.{service}"


def mesh_route_name(svc: Service) -> str:
    """The outbound route configuration of one service (named like istiod's virtual host for it)."""
    return f"{svc.fqdn}:{svc.port}"


# ---------------------------------------------------------------------------------------------------------------
# inputs and outputs


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


@dataclass(frozen=True)
class _Ctx:
    """Where in which document we are, for error messages."""

    kind: str
    namespace: str
    name: str

    def err(self, path: str, problem: str) -> InputError:
        return InputError(f"{self.kind} {self.namespace}/{self.name}: {path} {problem}")

    def unsupported(self, path: str) -> InputError:
        return self.err(path, "is not supported by the local mesh")


@dataclass(frozen=True)
class _Server:
    port: int
    protocol: str
    hosts: tuple[tuple[str, str], ...]  # (namespace selector, host)


@dataclass(frozen=True)
class _Gateway:
    ctx: _Ctx
    selector: Mapping[str, str]
    servers: tuple[_Server, ...]


@dataclass(frozen=True)
class _Dest:
    service: Service
    subset: str
    weight: int
    headers: Mapping[str, list[Any]]  # envoy header-manipulation fields of this destination


@dataclass(frozen=True)
class _HttpRoute:
    name: str
    matches: tuple[dict[str, Any], ...]  # Envoy RouteMatch dicts (OR)
    dests: tuple[_Dest, ...]
    headers: Mapping[str, list[Any]]
    timeout: str


@dataclass(frozen=True)
class _VirtualService:
    ctx: _Ctx
    hosts: tuple[str, ...]
    gateways: tuple[tuple[str, str], ...]  # (namespace, name) or ("", "mesh")
    http: tuple[_HttpRoute, ...]


@dataclass(frozen=True)
class _Subset:
    name: str
    labels: Mapping[str, str]
    lb: str


@dataclass(frozen=True)
class _DestinationRule:
    ctx: _Ctx
    service: Service | None
    host: str
    lb: str
    subsets: tuple[_Subset, ...]


# ---------------------------------------------------------------------------------------------------------------
# small validators


def _mapping(value: Any, ctx: _Ctx, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ctx.err(path, f"must be a mapping, got {type(value).__name__}")
    return value


def _list(value: Any, ctx: _Ctx, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ctx.err(path, f"must be a list, got {type(value).__name__}")
    return value


def _string(value: Any, ctx: _Ctx, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise ctx.err(path, f"must be a non-empty string, got {value!r}")
    return value


def _only(obj: Mapping[str, Any], allowed: Iterable[str], ctx: _Ctx, path: str) -> None:
    """Reject every key the translation does not implement (never ignore a field silently)."""
    allowed = set(allowed)
    for key in obj:
        if key not in allowed:
            raise ctx.unsupported(f"{path}.{key}" if path else str(key))


def _labels(value: Any, ctx: _Ctx, path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, val in _mapping(value, ctx, path).items():
        if not isinstance(key, str) or not isinstance(val, str):
            raise ctx.err(f"{path}.{key}", f"must map strings to strings, got {val!r}")
        out[key] = val
    return out


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(h|m|s|ms|us|µs|ns)$")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def _duration(value: Any, ctx: _Ctx, path: str) -> str:
    """Istio duration ("5s", "250ms", "1m") -> Envoy JSON duration ("5s", "0.250s")."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match:
        raise ctx.err(path, f"must be a duration like 5s or 250ms, got {value!r}")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"


# ---------------------------------------------------------------------------------------------------------------
# hosts


def _resolve_host(host: str, namespace: str) -> str:
    """Short names are relative to the document's namespace, like istiod: ``svc`` -> ``svc.ns.svc.cluster.local``."""
    if host.endswith(".svc.cluster.local") or host.startswith("*"):
        return host
    parts = host.split(".")
    if len(parts) == 1:
        return f"{host}.{namespace}.svc.cluster.local"
    if len(parts) == 2:
        return f"{host}.svc.cluster.local"
    if len(parts) == 3 and parts[2] == "svc":
        return f"{host}.cluster.local"
    return host


def _host_intersection(a: str, b: str) -> str | None:
    """The more specific of two host patterns when one covers the other (Istio's gateway host matching)."""
    a, b = a.lower(), b.lower()
    if a == b:
        return a
    if fnmatch.fnmatchcase(b, a) and "*" in a:
        return b
    if fnmatch.fnmatchcase(a, b) and "*" in b:
        return a
    return None


def _domains(host: str) -> list[str]:
    return ["*"] if host == "*" else [host, f"{host}:*"]


# ---------------------------------------------------------------------------------------------------------------
# parsing Istio documents (validating every field)


def _header_ops(value: Any, ctx: _Ctx, path: str) -> dict[str, list[Any]]:
    """Istio Headers {request,response}{set,add,remove} -> Envoy header-manipulation fields."""
    out: dict[str, list[Any]] = {}
    headers = _mapping(value, ctx, path)
    _only(headers, ("request", "response"), ctx, path)
    for direction in ("request", "response"):
        ops = _mapping(headers.get(direction), ctx, f"{path}.{direction}")
        _only(ops, ("set", "add", "remove"), ctx, f"{path}.{direction}")
        to_add: list[Any] = []
        for op, action in (("set", "OVERWRITE_IF_EXISTS_OR_ADD"), ("add", "APPEND_IF_EXISTS_OR_ADD")):
            for key, val in _mapping(ops.get(op), ctx, f"{path}.{direction}.{op}").items():
                if not isinstance(key, str) or not isinstance(val, str):
                    raise ctx.err(f"{path}.{direction}.{op}.{key}", f"must be a string header value, got {val!r}")
                to_add.append({"header": {"key": key, "value": val}, "append_action": action})
        if to_add:
            out[f"{direction}_headers_to_add"] = to_add
        remove = _list(ops.get("remove"), ctx, f"{path}.{direction}.remove")
        if remove:
            out[f"{direction}_headers_to_remove"] = [_string(r, ctx, f"{path}.{direction}.remove") for r in remove]
    return out


def _string_match(value: Any, ctx: _Ctx, path: str) -> tuple[str, str]:
    m = _mapping(value, ctx, path)
    _only(m, ("exact", "prefix", "regex"), ctx, path)
    if len(m) != 1:
        raise ctx.err(path, "needs exactly one of exact, prefix, regex")
    (kind, val), = m.items()
    if not isinstance(val, str):
        raise ctx.err(f"{path}.{kind}", f"must be a string, got {val!r}")
    return kind, val


def _route_match(value: Any, ctx: _Ctx, path: str) -> dict[str, Any]:
    m = _mapping(value, ctx, path)
    _only(m, ("name", "uri", "headers", "ignoreUriCase"), ctx, path)
    out: dict[str, Any] = {}
    if "uri" in m:
        kind, val = _string_match(m["uri"], ctx, f"{path}.uri")
        out.update({"exact": {"path": val}, "prefix": {"prefix": val},
                    "regex": {"safe_regex": {"regex": val}}}[kind])
    else:
        out["prefix"] = "/"
    if m.get("ignoreUriCase"):
        out["case_sensitive"] = False
    headers = []
    for name, spec in _mapping(m.get("headers"), ctx, f"{path}.headers").items():
        kind, val = _string_match(spec, ctx, f"{path}.headers.{name}")
        matcher = {"exact": {"exact": val}, "prefix": {"prefix": val}, "regex": {"safe_regex": {"regex": val}}}[kind]
        headers.append({"name": str(name).lower(), "string_match": matcher})
    if headers:
        out["headers"] = headers
    return out


def _destination(value: Any, index: int, count: int, ctx: _Ctx, path: str, namespace: str,
                 services: Mapping[str, Service]) -> _Dest:
    d = _mapping(value, ctx, path)
    _only(d, ("destination", "weight", "headers"), ctx, path)
    dest = _mapping(d.get("destination"), ctx, f"{path}.destination")
    _only(dest, ("host", "subset", "port"), ctx, f"{path}.destination")
    host = _string(dest.get("host"), ctx, f"{path}.destination.host")
    svc = services.get(_resolve_host(host, namespace))
    if svc is None:
        known = ", ".join(sorted(s.name for s in services.values()))
        raise ctx.err(f"{path}.destination.host", f"{host!r} is not a service of the local mesh (known: {known})")
    port_spec = _mapping(dest.get("port"), ctx, f"{path}.destination.port")
    _only(port_spec, ("number",), ctx, f"{path}.destination.port")
    port = port_spec.get("number", svc.port)
    if port != svc.port:
        raise ctx.err(f"{path}.destination.port.number", f"{port!r} is not a port of {svc.name} ({svc.port})")
    subset = dest.get("subset", "")
    if subset != "":
        subset = _string(subset, ctx, f"{path}.destination.subset")
    weight = d.get("weight", 100 if count == 1 else None)
    if weight is None:
        raise ctx.err(f"{path}.weight", "is required when a route has several destinations")
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
        raise ctx.err(f"{path}.weight", f"must be an integer from 0 to 100, got {weight!r}")
    return _Dest(svc, subset, weight, _header_ops(d.get("headers"), ctx, f"{path}.headers"))


def _http_route(value: Any, i: int, ctx: _Ctx, namespace: str, services: Mapping[str, Service]) -> _HttpRoute:
    path = f"spec.http[{i}]"
    r = _mapping(value, ctx, path)
    _only(r, ("name", "match", "route", "headers", "timeout"), ctx, path)
    matches = tuple(_route_match(m, ctx, f"{path}.match[{j}]") for j, m in enumerate(_list(r.get("match"), ctx,
                                                                                               f"{path}.match")))
    routes = _list(r.get("route"), ctx, f"{path}.route")
    if not routes:
        raise ctx.err(f"{path}.route", "is required (redirects, rewrites and direct responses are not supported)")
    dests = tuple(_destination(d, j, len(routes), ctx, f"{path}.route[{j}]", namespace, services)
                  for j, d in enumerate(routes))
    total = sum(d.weight for d in dests)
    if total != 100:
        raise ctx.err(f"{path}.route[*].weight", f"must sum to 100, got {total}")
    timeout = _duration(r["timeout"], ctx, f"{path}.timeout") if "timeout" in r else "0s"
    name = r.get("name", "")
    return _HttpRoute(str(name), matches or ({"prefix": "/"},), dests,
                      _header_ops(r.get("headers"), ctx, f"{path}.headers"), timeout)


def _ctx_of(doc: Mapping[str, Any], index: int, default_namespace: str) -> _Ctx:
    where = _Ctx("document", "-", f"#{index}")
    if not isinstance(doc, Mapping):
        raise where.err("", f"must be a mapping, got {type(doc).__name__}")
    kind = doc.get("kind")
    api = doc.get("apiVersion")
    meta = _mapping(doc.get("metadata"), where, "metadata")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise InputError(f"document #{index} ({kind or 'no kind'}): metadata.name is required")
    ctx = _Ctx(str(kind), str(meta.get("namespace") or default_namespace), name)
    if kind not in SUPPORTED_KINDS:
        raise InputError(f"{kind} {ctx.namespace}/{name}: kind {kind!r} is not supported by the local mesh "
                          f"(supported: {', '.join(SUPPORTED_KINDS)})")
    if api not in API_VERSIONS:
        raise ctx.err("apiVersion", f"{api!r} is not one of {', '.join(API_VERSIONS)}")
    _only(doc, ("apiVersion", "kind", "metadata", "spec", "status"), ctx, "")
    return ctx


def _parse_gateway(doc: Mapping[str, Any], ctx: _Ctx) -> _Gateway:
    spec = _mapping(doc.get("spec"), ctx, "spec")
    _only(spec, ("selector", "servers"), ctx, "spec")
    servers = []
    for i, raw in enumerate(_list(spec.get("servers"), ctx, "spec.servers")):
        path = f"spec.servers[{i}]"
        s = _mapping(raw, ctx, path)
        _only(s, ("port", "hosts", "name"), ctx, path)
        port = _mapping(s.get("port"), ctx, f"{path}.port")
        _only(port, ("number", "name", "protocol", "targetPort"), ctx, f"{path}.port")
        number = port.get("number")
        if isinstance(number, bool) or not isinstance(number, int) or not 0 < number < 65536:
            raise ctx.err(f"{path}.port.number", f"must be a port number, got {number!r}")
        protocol = str(port.get("protocol", "")).upper()
        if protocol not in GATEWAY_PROTOCOLS:
            raise ctx.err(f"{path}.port.protocol", f"{port.get('protocol')!r} is not supported by the local mesh "
                          f"(supported: {', '.join(GATEWAY_PROTOCOLS)})")
        hosts = []
        for j, h in enumerate(_list(s.get("hosts"), ctx, f"{path}.hosts")):
            h = _string(h, ctx, f"{path}.hosts[{j}]")
            ns, sep, host = h.rpartition("/")
            hosts.append((ns if sep else "*", host))
        if not hosts:
            raise ctx.err(f"{path}.hosts", "must list at least one host")
        servers.append(_Server(number, protocol, tuple(hosts)))
    return _Gateway(ctx, _labels(spec.get("selector"), ctx, "spec.selector"), tuple(servers))


def _parse_virtual_service(doc: Mapping[str, Any], ctx: _Ctx, services: Mapping[str, Service]) -> _VirtualService:
    spec = _mapping(doc.get("spec"), ctx, "spec")
    _only(spec, ("hosts", "gateways", "http"), ctx, "spec")
    hosts = tuple(_string(h, ctx, f"spec.hosts[{i}]") for i, h in enumerate(_list(spec.get("hosts"), ctx,
                                                                                   "spec.hosts")))
    if not hosts:
        raise ctx.err("spec.hosts", "must list at least one host")
    gateways = []
    for i, g in enumerate(_list(spec.get("gateways"), ctx, "spec.gateways") or [MESH_GATEWAY]):
        g = _string(g, ctx, f"spec.gateways[{i}]")
        if g == MESH_GATEWAY:
            gateways.append(("", MESH_GATEWAY))
        else:
            ns, sep, name = g.rpartition("/")
            gateways.append((ns if sep else ctx.namespace, name))
    if ("", MESH_GATEWAY) in gateways:
        for i, h in enumerate(hosts):
            if "*" in h:
                raise ctx.err(f"spec.hosts[{i}]", f"wildcard host {h!r} is not allowed for the mesh gateway")
    http = tuple(_http_route(r, i, ctx, ctx.namespace, services)
                 for i, r in enumerate(_list(spec.get("http"), ctx, "spec.http")))
    if not http:
        raise ctx.err("spec.http", "must have at least one route (tcp/tls routes are not supported)")
    return _VirtualService(ctx, hosts, tuple(gateways), http)


def _traffic_policy(value: Any, ctx: _Ctx, path: str, default: str) -> str:
    tp = _mapping(value, ctx, path)
    _only(tp, ("loadBalancer",), ctx, path)
    lb = _mapping(tp.get("loadBalancer"), ctx, f"{path}.loadBalancer")
    _only(lb, ("simple",), ctx, f"{path}.loadBalancer")
    if "simple" not in lb:
        return default
    simple = str(lb["simple"]).upper()
    if simple not in LB_POLICIES:
        raise ctx.err(f"{path}.loadBalancer.simple", f"{lb['simple']!r} is not supported by the local mesh")
    return LB_POLICIES[simple]


def _parse_destination_rule(doc: Mapping[str, Any], ctx: _Ctx, services: Mapping[str, Service]) -> _DestinationRule:
    spec = _mapping(doc.get("spec"), ctx, "spec")
    _only(spec, ("host", "subsets", "trafficPolicy"), ctx, "spec")
    host = _string(spec.get("host"), ctx, "spec.host")
    lb = _traffic_policy(spec.get("trafficPolicy"), ctx, "spec.trafficPolicy", DEFAULT_LB)
    subsets: list[_Subset] = []
    for i, raw in enumerate(_list(spec.get("subsets"), ctx, "spec.subsets")):
        path = f"spec.subsets[{i}]"
        s = _mapping(raw, ctx, path)
        _only(s, ("name", "labels", "trafficPolicy"), ctx, path)
        name = _string(s.get("name"), ctx, f"{path}.name")
        if any(x.name == name for x in subsets):
            raise ctx.err(f"{path}.name", f"duplicates subset {name!r}")
        subsets.append(_Subset(name, _labels(s.get("labels"), ctx, f"{path}.labels"),
                               _traffic_policy(s.get("trafficPolicy"), ctx, f"{path}.trafficPolicy", lb)))
    return _DestinationRule(ctx, services.get(_resolve_host(host, ctx.namespace)), host, lb, tuple(subsets))


# ---------------------------------------------------------------------------------------------------------------
# Envoy building blocks


def _http_protocol_options(protocol: str) -> dict[str, Any]:
    explicit = {"http2_protocol_options": {}} if protocol == "grpc" else {"http_protocol_options": {}}
    return {HTTP_OPTIONS_KEY: {"@type": T_HTTP_OPTIONS, "explicit_http_config": explicit}}


def _cluster(name: str, svc: Service, endpoints: Sequence[Endpoint], lb: str, subset: str,
             selector: Mapping[str, str]) -> dict[str, Any]:
    lb_endpoints = [{
        "endpoint": {"address": {"socket_address": {"address": ep.address, "port_value": ep.port}}},
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


def _merge_headers(*parts: Mapping[str, list[Any]]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for part in parts:
        for key, values in part.items():
            out.setdefault(key, []).extend(values)
    return out


def _envoy_routes(http: Sequence[_HttpRoute], vs: _VirtualService, defined: set[str],
                  warnings: list[str]) -> list[dict[str, Any]]:
    out = []
    for i, r in enumerate(http):
        dests = [d for d in r.dests if d.weight > 0] or list(r.dests[:1])
        for d in dests:
            name = cluster_name(d.service.port, d.subset, d.service.fqdn)
            if d.subset and name not in defined:
                warnings.append(f"VirtualService {vs.ctx.namespace}/{vs.ctx.name}: spec.http[{i}] routes "
                                f"{d.weight}% to subset {d.subset!r} of {d.service.name}, which no "
                                f"DestinationRule defines: those requests get 503 (apply the DestinationRule)")
        action: dict[str, Any] = {"timeout": r.timeout, "retry_policy": ISTIO_DEFAULT_RETRY,
                                  "max_stream_duration": {"grpc_timeout_header_max": "0s"}}
        route_headers = dict(r.headers)
        if len(dests) == 1:
            d = dests[0]
            action["cluster"] = cluster_name(d.service.port, d.subset, d.service.fqdn)
            route_headers = _merge_headers(r.headers, d.headers)
        else:
            action["weighted_clusters"] = {"clusters": [
                {"name": cluster_name(d.service.port, d.subset, d.service.fqdn), "weight": d.weight, **d.headers}
                for d in dests]}
        for j, match in enumerate(r.matches):
            entry: dict[str, Any] = {"match": match, "route": action, **route_headers}
            label = r.name or f"{vs.ctx.name}.{i}"
            entry["name"] = label if len(r.matches) == 1 else f"{label}.{j}"
            out.append(entry)
    return out


def _default_route(svc: Service) -> dict[str, Any]:
    return {"name": "default", "match": {"prefix": "/"},
            "route": {"cluster": cluster_name(svc.port, "", svc.fqdn), "timeout": "0s",
                      "retry_policy": ISTIO_DEFAULT_RETRY, "max_stream_duration": {"grpc_timeout_header_max": "0s"}}}


def _listener(name: str, address: str, port: int, route: str, route_path: str) -> dict[str, Any]:
    hcm = {
        "@type": T_HCM,
        "stat_prefix": name,
        "codec_type": "AUTO",
        "rds": {"route_config_name": route,
                "config_source": {"path_config_source": {"path": route_path}, "resource_api_version": "V3"}},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": T_ROUTER}}],
    }
    return {
        "@type": T_LISTENER,
        "name": name,
        "address": {"socket_address": {"address": address, "port_value": port}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                        "typed_config": hcm}]}],
    }


def _route_config(name: str, virtual_hosts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"@type": T_ROUTE, "name": name, "virtual_hosts": virtual_hosts}


# ---------------------------------------------------------------------------------------------------------------
# the translation


def parse_documents(documents: Sequence[Any], services: Sequence[Service], default_namespace: str
                    ) -> tuple[list[_Gateway], list[_VirtualService], list[_DestinationRule]]:
    """Validate every document (InputError naming the first unsupported/invalid field)."""
    by_fqdn = {s.fqdn: s for s in services}
    gateways: list[_Gateway] = []
    vss: list[_VirtualService] = []
    drs: list[_DestinationRule] = []
    for index, doc in enumerate(documents):
        ctx = _ctx_of(doc, index, default_namespace)
        if ctx.kind == "Gateway":
            gateways.append(_parse_gateway(doc, ctx))
        elif ctx.kind == "VirtualService":
            vss.append(_parse_virtual_service(doc, ctx, by_fqdn))
        else:
            drs.append(_parse_destination_rule(doc, ctx, by_fqdn))
    return gateways, vss, drs


def translate(documents: Sequence[Any], *, services: Sequence[Service], endpoints: Sequence[Endpoint],
              ports: ListenerPorts, route_path: Callable[[str], str], default_namespace: str,
              ingress_labels: Mapping[str, str] = INGRESS_LABELS) -> EnvoyConfig:
    """Translate Istio documents for the given services and ready endpoints into Envoy resources.

    ``route_path(name)`` is the file each listener's RDS subscription watches for route configuration ``name``.
    """
    gateways, vss, drs = parse_documents(documents, services, default_namespace)
    out = EnvoyConfig()
    by_fqdn = {s.fqdn: s for s in services}

    # --- clusters: the whole service, then one per DestinationRule subset
    rules: dict[str, _DestinationRule] = {}
    for dr in drs:
        if dr.service is None:
            out.warnings.append(f"DestinationRule {dr.ctx.namespace}/{dr.ctx.name}: host {dr.host!r} is not a "
                                f"service of the local mesh (ignored)")
            continue
        if dr.service.fqdn in rules:
            other = rules[dr.service.fqdn].ctx
            raise dr.ctx.err("spec.host", f"{dr.host!r} already has DestinationRule {other.namespace}/{other.name}")
        rules[dr.service.fqdn] = dr
    defined: set[str] = set()
    for svc in services:
        mine = [ep for ep in endpoints if ep.service == svc.name]
        dr = rules.get(svc.fqdn)
        name = cluster_name(svc.port, "", svc.fqdn)
        out.clusters.append(_cluster(name, svc, mine, dr.lb if dr else DEFAULT_LB, "", {}))
        defined.add(name)
        for subset in dr.subsets if dr else ():
            selected = [ep for ep in mine if all(ep.labels.get(k) == v for k, v in subset.labels.items())]
            name = cluster_name(svc.port, subset.name, svc.fqdn)
            out.clusters.append(_cluster(name, svc, selected, subset.lb, subset.name, subset.labels))
            defined.add(name)

    # --- mesh ("sidecar") outbound listeners, one per service, each with its own route configuration
    mesh_vs: dict[str, _VirtualService] = {}
    for vs in vss:
        if ("", MESH_GATEWAY) not in vs.gateways:
            continue
        for i, host in enumerate(vs.hosts):
            fqdn = _resolve_host(host, vs.ctx.namespace)
            if fqdn not in by_fqdn:
                out.warnings.append(f"VirtualService {vs.ctx.namespace}/{vs.ctx.name}: spec.hosts[{i}] {host!r} is "
                                    f"not a service of the local mesh (no sidecar route for it)")
                continue
            if fqdn in mesh_vs:
                other = mesh_vs[fqdn].ctx
                raise vs.ctx.err(f"spec.hosts[{i}]", f"{host!r} is already routed by VirtualService "
                                 f"{other.namespace}/{other.name} (one mesh VirtualService per host)")
            mesh_vs[fqdn] = vs
    for svc in services:
        route = mesh_route_name(svc)
        vs = mesh_vs.get(svc.fqdn)
        routes = _envoy_routes(vs.http, vs, defined, out.warnings) if vs else [_default_route(svc)]
        out.routes[route] = _route_config(route, [{"name": f"{svc.fqdn}:{svc.port}", "domains": ["*"],
                                                    "routes": routes}])
        out.listeners.append(_listener(mesh_listener_name(svc.name), ports.address,
                                       ports.services.get(svc.name, 0), route, route_path(route)))

    # --- ingress: Gateway servers selecting the local ingress, by port
    servers_by_port: dict[int, list[tuple[_Gateway, _Server]]] = {}
    for gw in gateways:
        if not gw.selector or any(ingress_labels.get(k) != v for k, v in gw.selector.items()):
            sel = ",".join(f"{k}={v}" for k, v in gw.selector.items()) or "(none)"
            have = ",".join(f"{k}={v}" for k, v in ingress_labels.items())
            out.warnings.append(f"Gateway {gw.ctx.namespace}/{gw.ctx.name}: selector {sel} does not select the local "
                                f"ingress ({have}); no listener for it")
            continue
        for i, server in enumerate(gw.servers):
            if server.port not in ports.gateway:
                mapped = ", ".join(str(p) for p in ports.gateway) or "none"
                raise gw.ctx.err(f"spec.servers[{i}].port.number", f"{server.port} has no local port (the local "
                                 f"ingress maps Gateway port(s): {mapped})")
            servers_by_port.setdefault(server.port, []).append((gw, server))
    for gport, bound in sorted(servers_by_port.items()):
        route = ingress_route_name(gport)
        vhosts: dict[str, dict[str, Any]] = {}
        for vs in vss:
            attached = [(gw, server) for gw, server in bound
                        if (gw.ctx.namespace, gw.ctx.name) in vs.gateways]
            if not attached:
                continue
            for host in vs.hosts:
                for gw, server in attached:
                    for ns_sel, server_host in server.hosts:
                        if ns_sel not in ("*", vs.ctx.namespace) and not (ns_sel == "." and
                                                                          vs.ctx.namespace == gw.ctx.namespace):
                            continue
                        common = _host_intersection(host, server_host)
                        if common is None:
                            continue
                        if common in vhosts:
                            if vhosts[common]["_vs"] is not vs:
                                raise vs.ctx.err("spec.hosts", f"host {common!r} on Gateway port {gport} is already "
                                                 f"routed by VirtualService {vhosts[common]['_vs'].ctx.name}")
                            continue
                        vhosts[common] = {"_vs": vs, "name": f"{common}:{gport}", "domains": _domains(common),
                                          "routes": _envoy_routes(vs.http, vs, defined, out.warnings)}
        for vs in vss:
            for ns, name in vs.gateways:
                if name != MESH_GATEWAY and not any((g.ctx.namespace, g.ctx.name) == (ns, name) for g in gateways):
                    out.warnings.append(f"VirtualService {vs.ctx.namespace}/{vs.ctx.name}: gateway {ns}/{name} "
                                        f"does not exist (the VirtualService is not bound to any ingress)")
        virtual_hosts = [{k: v for k, v in vh.items() if k != "_vs"} for vh in vhosts.values()]
        out.routes[route] = _route_config(route, virtual_hosts)
        out.listeners.append(_listener(ingress_listener_name(gport), ports.address, ports.gateway[gport], route,
                                       route_path(route)))
    for gport in ports.gateway:
        if gport not in servers_by_port:
            out.warnings.append(f"no Gateway server on port {gport} selects the local ingress: the ingress does not "
                                f"listen")
    out.warnings = list(dict.fromkeys(out.warnings))
    return out


# ---------------------------------------------------------------------------------------------------------------
# reading configuration back (from our own output or from Envoy's config_dump)


def route_destinations(route: Mapping[str, Any]) -> dict[str, int]:
    """{cluster name: weight} of one Envoy route (a plain ``cluster`` counts as 100)."""
    action = route.get("route") or {}
    if "cluster" in action:
        return {action["cluster"]: 100}
    clusters = (action.get("weighted_clusters") or {}).get("clusters") or []
    return {c["name"]: int(c.get("weight", 0)) for c in clusters}


def matches_everything(route: Mapping[str, Any]) -> bool:
    """True for a catch-all Envoy route (prefix "/", no header or query condition): what a VirtualService http
    entry without ``match`` becomes -- the route that carries the split (verifier.istio.weighted_route). Accepts
    Envoy's JSON in either key spelling (our config: snake_case; ``istioctl proxy-config -o json``: camelCase)."""
    match = route.get("match") or {}
    conditions = ("headers", "query_parameters", "queryParameters", "path", "safe_regex", "safeRegex")
    if any(match.get(key) for key in conditions):
        return False
    return match.get("prefix", "/") == "/"


def subset_weights(route_config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per Envoy route: its name, {subset: weight} (subset "" = the whole service) and whether it is a catch-all."""
    out = []
    for vhost in route_config.get("virtual_hosts") or []:
        for route in vhost.get("routes") or []:
            weights: dict[str, int] = {}
            for name, weight in route_destinations(route).items():
                parsed = parse_cluster_name(name)
                weights[parsed[1] if parsed else name] = weight
            out.append({"virtual_host": vhost.get("name", ""), "route": route.get("name", ""), "weights": weights,
                        "catch_all": matches_everything(route)})
    return out


def split_route(routes: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """The weights of the route that carries the split among ``subset_weights`` entries: the last catch-all
    (testers' header routes come first), else the only route; {} when there is none."""
    chosen = split_carrier(routes, lambda r: bool(r.get("catch_all")))
    return dict(chosen["weights"]) if chosen else {}


def reweight(documents: Sequence[Any], service_fqdn: str, weights: Mapping[str, int],
             default_namespace: str) -> list[dict[str, Any]]:
    """Copy of ``documents`` where every VirtualService route splitting ``service_fqdn`` across subsets gets
    ``weights`` (by subset name). For meshes started from the user's own YAML (the templates re-render instead)."""
    import copy

    out = copy.deepcopy([dict(d) for d in documents])
    touched = 0
    for doc in out:
        if not isinstance(doc, dict) or doc.get("kind") != "VirtualService":
            continue
        meta = doc.get("metadata") or {}
        ns = meta.get("namespace") or default_namespace
        for i, route in enumerate((doc.get("spec") or {}).get("http") or []):
            dests = route.get("route") if isinstance(route, dict) else None
            if not isinstance(dests, list) or not dests:
                continue
            subsets = []
            for d in dests:
                dest = (d or {}).get("destination") or {}
                if _resolve_host(str(dest.get("host", "")), ns) != service_fqdn or not dest.get("subset"):
                    break
                subsets.append(str(dest["subset"]))
            else:
                missing = [s for s in subsets if s not in weights]
                extra = [s for s, w in weights.items() if s not in subsets and w]
                if missing or extra:
                    raise InputError(f"VirtualService {ns}/{meta.get('name')}: spec.http[{i}] splits across "
                                      f"subsets {', '.join(subsets)}; the new weights name {', '.join(weights)}")
                for d, subset in zip(dests, subsets, strict=True):
                    d["weight"] = int(weights[subset])
                touched += 1
    if not touched:
        raise InputError(f"no VirtualService route splits {service_fqdn} across subsets: nothing to reweight")
    return out


def split_of(documents: Sequence[Any], service_fqdn: str, default_namespace: str
             ) -> tuple[dict[str, dict[str, str]], dict[str, int]]:
    """(DestinationRule subsets, the split the service's mesh VirtualService configures) found in ``documents``.

    Used for a mesh started from the user's own YAML, so status can compare served and desired weights.
    """
    subsets: dict[str, dict[str, str]] = {}
    weights: dict[str, int] = {}
    for doc in documents:
        if not isinstance(doc, Mapping):
            continue
        ns = (doc.get("metadata") or {}).get("namespace") or default_namespace
        spec = doc.get("spec") or {}
        if doc.get("kind") == "DestinationRule" and _resolve_host(str(spec.get("host", "")), ns) == service_fqdn:
            for s in spec.get("subsets") or []:
                subsets[str(s.get("name"))] = {str(k): str(v) for k, v in (s.get("labels") or {}).items()}
        if doc.get("kind") == "VirtualService" and not weights and not spec.get("gateways") and any(
                _resolve_host(str(h), ns) == service_fqdn for h in spec.get("hosts") or []):
            try:
                weights = weighted_route(doc)  # the same reading as verify-split and cluster status
            except InputError:
                continue
    return subsets, weights
