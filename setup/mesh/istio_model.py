"""Istio networking documents -> a typed, validated model (Gateway, VirtualService, DestinationRule).

Every field is checked on the way in (setup.mesh.fields: errors name the document and the field path); a field
the local mesh does not implement is refused, never ignored. Nothing here knows Envoy: setup.mesh.envoy_build
turns the model into Envoy resources. Field names and defaults follow Istio's reference,
https://istio.io/latest/docs/reference/config/networking/ (gateway, virtual-service, destination-rule).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from splitproof.setup.mesh import fields as f
from splitproof.setup.mesh.fields import DocRef
from splitproof.setup.mesh.hosts import resolve_host
from splitproof.setup.mesh.topology import Service
from splitproof.verifier.errors import InputError
from splitproof.verifier.istio import API_VERSIONS

SUPPORTED_KINDS = ("Gateway", "VirtualService", "DestinationRule")
MESH_GATEWAY = "mesh"
GATEWAY_PROTOCOLS = ("HTTP", "HTTP2", "GRPC")
DEFAULT_LB = "LEAST_REQUEST"  # Istio's default load balancer
LB_POLICIES = {"ROUND_ROBIN": "ROUND_ROBIN", "LEAST_REQUEST": "LEAST_REQUEST", "LEAST_CONN": "LEAST_REQUEST",
               "RANDOM": "RANDOM", "UNSPECIFIED": DEFAULT_LB}
DIRECTIONS = ("request", "response")


@dataclass(frozen=True)
class Server:
    port: int
    protocol: str
    hosts: tuple[tuple[str, str], ...]  # (namespace selector, host)


@dataclass(frozen=True)
class Gateway:
    ref: DocRef
    selector: Mapping[str, str]
    servers: tuple[Server, ...]

    @property
    def key(self) -> tuple[str, str]:
        return self.ref.namespace, self.ref.name


@dataclass(frozen=True)
class HeaderOps:
    """Istio ``headers``: per direction (request, response), headers to set, to add, and to remove."""

    set: Mapping[str, tuple[tuple[str, str], ...]]
    add: Mapping[str, tuple[tuple[str, str], ...]]
    remove: Mapping[str, tuple[str, ...]]


NO_HEADERS = HeaderOps({}, {}, {})


@dataclass(frozen=True)
class StringMatch:
    kind: str   # exact | prefix | regex
    value: str


@dataclass(frozen=True)
class HttpMatch:
    """One ``match`` block (its conditions are ANDed; several blocks are ORed)."""

    uri: StringMatch | None
    headers: tuple[tuple[str, StringMatch], ...]
    ignore_uri_case: bool = False


@dataclass(frozen=True)
class Destination:
    service: Service
    subset: str          # "" = the whole service
    weight: int
    headers: HeaderOps


@dataclass(frozen=True)
class HttpRoute:
    name: str
    matches: tuple[HttpMatch, ...]   # empty: matches everything
    destinations: tuple[Destination, ...]
    headers: HeaderOps
    timeout: str                     # Envoy duration; "0s" = none (Istio's default)


@dataclass(frozen=True)
class VirtualService:
    ref: DocRef
    hosts: tuple[str, ...]
    gateways: tuple[tuple[str, str], ...]  # (namespace, name), or ("", "mesh")
    http: tuple[HttpRoute, ...]

    @property
    def in_mesh(self) -> bool:
        return ("", MESH_GATEWAY) in self.gateways


@dataclass(frozen=True)
class Subset:
    name: str
    labels: Mapping[str, str]
    lb: str


@dataclass(frozen=True)
class DestinationRule:
    ref: DocRef
    service: Service | None   # None: not a service of the local mesh
    host: str
    lb: str
    subsets: tuple[Subset, ...]


@dataclass(frozen=True)
class Model:
    gateways: tuple[Gateway, ...]
    virtual_services: tuple[VirtualService, ...]
    destination_rules: tuple[DestinationRule, ...]


# ---------------------------------------------------------------------------------------------------- documents


def parse_documents(documents: Sequence[Any], services: Sequence[Service], default_namespace: str) -> Model:
    """Validate every document (InputError naming the first unsupported or invalid field)."""
    by_fqdn = {s.fqdn: s for s in services}
    gateways: list[Gateway] = []
    vss: list[VirtualService] = []
    drs: list[DestinationRule] = []
    for index, doc in enumerate(documents):
        ref = _ref_of(doc, index, default_namespace)
        if ref.kind == "Gateway":
            gateways.append(_gateway(doc, ref))
        elif ref.kind == "VirtualService":
            vss.append(_virtual_service(doc, ref, by_fqdn))
        else:
            drs.append(_destination_rule(doc, ref, by_fqdn))
    return Model(tuple(gateways), tuple(vss), tuple(drs))


def _ref_of(doc: Any, index: int, default_namespace: str) -> DocRef:
    where = DocRef("document", "-", f"#{index}")
    if not isinstance(doc, Mapping):
        raise where.err("", f"must be a mapping, got {type(doc).__name__}")
    kind = doc.get("kind")
    api = doc.get("apiVersion")
    meta = f.mapping(doc.get("metadata"), where, "metadata")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise InputError(f"document #{index} ({kind or 'no kind'}): metadata.name is required")
    ref = DocRef(str(kind), str(meta.get("namespace") or default_namespace), name)
    if kind not in SUPPORTED_KINDS:
        raise InputError(f"{kind} {ref.namespace}/{name}: kind {kind!r} is not supported by the local mesh "
                         f"(supported: {', '.join(SUPPORTED_KINDS)})")
    if api not in API_VERSIONS:
        raise ref.err("apiVersion", f"{api!r} is not one of {', '.join(API_VERSIONS)}")
    f.only(doc, ("apiVersion", "kind", "metadata", "spec", "status"), ref, "")
    return ref


def _gateway(doc: Mapping[str, Any], ref: DocRef) -> Gateway:
    spec = f.mapping(doc.get("spec"), ref, "spec")
    f.only(spec, ("selector", "servers"), ref, "spec")
    servers = []
    for i, raw in enumerate(f.listing(spec.get("servers"), ref, "spec.servers")):
        path = f"spec.servers[{i}]"
        s = f.mapping(raw, ref, path)
        f.only(s, ("port", "hosts", "name"), ref, path)
        port = f.mapping(s.get("port"), ref, f"{path}.port")
        f.only(port, ("number", "name", "protocol", "targetPort"), ref, f"{path}.port")
        number = port.get("number")
        if isinstance(number, bool) or not isinstance(number, int) or not 0 < number < 65536:
            raise ref.err(f"{path}.port.number", f"must be a port number, got {number!r}")
        protocol = str(port.get("protocol", "")).upper()
        if protocol not in GATEWAY_PROTOCOLS:
            raise ref.err(f"{path}.port.protocol", f"{port.get('protocol')!r} is not supported by the local mesh "
                          f"(supported: {', '.join(GATEWAY_PROTOCOLS)})")
        hosts = []
        for j, h in enumerate(f.listing(s.get("hosts"), ref, f"{path}.hosts")):
            h = f.string(h, ref, f"{path}.hosts[{j}]")
            ns, sep, host = h.rpartition("/")
            hosts.append((ns if sep else "*", host))
        if not hosts:
            raise ref.err(f"{path}.hosts", "must list at least one host")
        servers.append(Server(number, protocol, tuple(hosts)))
    return Gateway(ref, f.labels(spec.get("selector"), ref, "spec.selector"), tuple(servers))


def _virtual_service(doc: Mapping[str, Any], ref: DocRef, services: Mapping[str, Service]) -> VirtualService:
    spec = f.mapping(doc.get("spec"), ref, "spec")
    f.only(spec, ("hosts", "gateways", "http"), ref, "spec")
    hosts = tuple(f.string(h, ref, f"spec.hosts[{i}]")
                  for i, h in enumerate(f.listing(spec.get("hosts"), ref, "spec.hosts")))
    if not hosts:
        raise ref.err("spec.hosts", "must list at least one host")
    gateways = []
    for i, g in enumerate(f.listing(spec.get("gateways"), ref, "spec.gateways") or [MESH_GATEWAY]):
        g = f.string(g, ref, f"spec.gateways[{i}]")
        if g == MESH_GATEWAY:
            gateways.append(("", MESH_GATEWAY))
        else:
            ns, sep, name = g.rpartition("/")
            gateways.append((ns if sep else ref.namespace, name))
    if ("", MESH_GATEWAY) in gateways:
        for i, h in enumerate(hosts):
            if "*" in h:
                raise ref.err(f"spec.hosts[{i}]", f"wildcard host {h!r} is not allowed for the mesh gateway")
    http = tuple(_http_route(r, i, ref, services) for i, r in enumerate(f.listing(spec.get("http"), ref, "spec.http")))
    if not http:
        raise ref.err("spec.http", "must have at least one route (tcp/tls routes are not supported)")
    return VirtualService(ref, hosts, tuple(gateways), http)


def _destination_rule(doc: Mapping[str, Any], ref: DocRef, services: Mapping[str, Service]) -> DestinationRule:
    spec = f.mapping(doc.get("spec"), ref, "spec")
    f.only(spec, ("host", "subsets", "trafficPolicy"), ref, "spec")
    host = f.string(spec.get("host"), ref, "spec.host")
    lb = _traffic_policy(spec.get("trafficPolicy"), ref, "spec.trafficPolicy", DEFAULT_LB)
    subsets: list[Subset] = []
    for i, raw in enumerate(f.listing(spec.get("subsets"), ref, "spec.subsets")):
        path = f"spec.subsets[{i}]"
        s = f.mapping(raw, ref, path)
        f.only(s, ("name", "labels", "trafficPolicy"), ref, path)
        name = f.string(s.get("name"), ref, f"{path}.name")
        if any(x.name == name for x in subsets):
            raise ref.err(f"{path}.name", f"duplicates subset {name!r}")
        subsets.append(Subset(name, f.labels(s.get("labels"), ref, f"{path}.labels"),
                              _traffic_policy(s.get("trafficPolicy"), ref, f"{path}.trafficPolicy", lb)))
    return DestinationRule(ref, services.get(resolve_host(host, ref.namespace)), host, lb, tuple(subsets))


# ------------------------------------------------------------------------------------------------ route parts


def _http_route(value: Any, i: int, ref: DocRef, services: Mapping[str, Service]) -> HttpRoute:
    path = f"spec.http[{i}]"
    r = f.mapping(value, ref, path)
    f.only(r, ("name", "match", "route", "headers", "timeout"), ref, path)
    matches = tuple(_match(m, ref, f"{path}.match[{j}]")
                    for j, m in enumerate(f.listing(r.get("match"), ref, f"{path}.match")))
    routes = f.listing(r.get("route"), ref, f"{path}.route")
    if not routes:
        raise ref.err(f"{path}.route", "is required (redirects, rewrites and direct responses are not supported)")
    dests = tuple(_destination(d, len(routes), ref, f"{path}.route[{j}]", services) for j, d in enumerate(routes))
    total = sum(d.weight for d in dests)
    if total != 100:
        raise ref.err(f"{path}.route[*].weight", f"must sum to 100, got {total}")
    timeout = f.duration(r["timeout"], ref, f"{path}.timeout") if "timeout" in r else "0s"
    return HttpRoute(str(r.get("name", "")), matches, dests, _header_ops(r.get("headers"), ref, f"{path}.headers"),
                     timeout)


def _destination(value: Any, count: int, ref: DocRef, path: str, services: Mapping[str, Service]) -> Destination:
    d = f.mapping(value, ref, path)
    f.only(d, ("destination", "weight", "headers"), ref, path)
    dest = f.mapping(d.get("destination"), ref, f"{path}.destination")
    f.only(dest, ("host", "subset", "port"), ref, f"{path}.destination")
    host = f.string(dest.get("host"), ref, f"{path}.destination.host")
    svc = services.get(resolve_host(host, ref.namespace))
    if svc is None:
        known = ", ".join(sorted(s.name for s in services.values()))
        raise ref.err(f"{path}.destination.host", f"{host!r} is not a service of the local mesh (known: {known})")
    port_spec = f.mapping(dest.get("port"), ref, f"{path}.destination.port")
    f.only(port_spec, ("number",), ref, f"{path}.destination.port")
    port = port_spec.get("number", svc.port)
    if port != svc.port:
        raise ref.err(f"{path}.destination.port.number", f"{port!r} is not a port of {svc.name} ({svc.port})")
    subset = dest.get("subset", "")
    if subset != "":
        subset = f.string(subset, ref, f"{path}.destination.subset")
    weight = d.get("weight", 100 if count == 1 else None)
    if weight is None:
        raise ref.err(f"{path}.weight", "is required when a route has several destinations")
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
        raise ref.err(f"{path}.weight", f"must be an integer from 0 to 100, got {weight!r}")
    return Destination(svc, subset, weight, _header_ops(d.get("headers"), ref, f"{path}.headers"))


def _string_match(value: Any, ref: DocRef, path: str) -> StringMatch:
    m = f.mapping(value, ref, path)
    f.only(m, ("exact", "prefix", "regex"), ref, path)
    if len(m) != 1:
        raise ref.err(path, "needs exactly one of exact, prefix, regex")
    (kind, val), = m.items()
    if not isinstance(val, str):
        raise ref.err(f"{path}.{kind}", f"must be a string, got {val!r}")
    return StringMatch(kind, val)


def _match(value: Any, ref: DocRef, path: str) -> HttpMatch:
    m = f.mapping(value, ref, path)
    f.only(m, ("name", "uri", "headers", "ignoreUriCase"), ref, path)
    uri = _string_match(m["uri"], ref, f"{path}.uri") if "uri" in m else None
    headers = tuple((str(name), _string_match(spec, ref, f"{path}.headers.{name}"))
                    for name, spec in f.mapping(m.get("headers"), ref, f"{path}.headers").items())
    return HttpMatch(uri, headers, bool(m.get("ignoreUriCase")))


def _header_ops(value: Any, ref: DocRef, path: str) -> HeaderOps:
    headers = f.mapping(value, ref, path)
    f.only(headers, DIRECTIONS, ref, path)
    sets: dict[str, tuple[tuple[str, str], ...]] = {}
    adds: dict[str, tuple[tuple[str, str], ...]] = {}
    removes: dict[str, tuple[str, ...]] = {}
    for direction in DIRECTIONS:
        where = f"{path}.{direction}"
        ops = f.mapping(headers.get(direction), ref, where)
        f.only(ops, ("set", "add", "remove"), ref, where)
        for op, into in (("set", sets), ("add", adds)):
            pairs = []
            for key, val in f.mapping(ops.get(op), ref, f"{where}.{op}").items():
                if not isinstance(key, str) or not isinstance(val, str):
                    raise ref.err(f"{where}.{op}.{key}", f"must be a string header value, got {val!r}")
                pairs.append((key, val))
            if pairs:
                into[direction] = tuple(pairs)
        remove = f.listing(ops.get("remove"), ref, f"{where}.remove")
        if remove:
            removes[direction] = tuple(f.string(r, ref, f"{where}.remove") for r in remove)
    return HeaderOps(sets, adds, removes)


def _traffic_policy(value: Any, ref: DocRef, path: str, default: str) -> str:
    tp = f.mapping(value, ref, path)
    f.only(tp, ("loadBalancer",), ref, path)
    lb = f.mapping(tp.get("loadBalancer"), ref, f"{path}.loadBalancer")
    f.only(lb, ("simple",), ref, f"{path}.loadBalancer")
    if "simple" not in lb:
        return default
    simple = str(lb["simple"]).upper()
    if simple not in LB_POLICIES:
        raise ref.err(f"{path}.loadBalancer.simple", f"{lb['simple']!r} is not supported by the local mesh")
    return LB_POLICIES[simple]
