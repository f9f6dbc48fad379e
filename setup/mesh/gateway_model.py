"""Gateway API documents -> the same typed model as Istio's (setup.mesh.istio_model): an HTTPRoute bound to a
Service (GAMMA mesh routing) becomes a mesh VirtualService of that Service's host, and each core ``Service``
document is a backend the route may send to, selecting instances by labels.

This is what istiod itself does (istio/istio ``pilot/pkg/config/kube/gateway/conversion.go`` turns every HTTPRoute
into VirtualService config): a rule becomes an ``http`` route named ``<namespace>.<name>.<index>``; ``matches``
become ``match`` blocks (``path`` PathPrefix / Exact / RegularExpression, ``headers`` Exact / RegularExpression;
a PathPrefix's trailing ``/`` is dropped); ``backendRefs`` become destinations with their relative weights as they
are (default 1; a 0-weight backend is dropped; Envoy draws weight / sum); Request/ResponseHeaderModifier filters
become header operations, on the rule or on one backend; ``timeouts.request`` the route timeout. Field names follow
the spec, https://github.com/kubernetes-sigs/gateway-api ``apis/v1/httproute_types.go`` (standard channel).

Anything else -- a Gateway parent (the local ingress is an Istio Gateway), ``hostnames``, ``queryParams``,
``method``, other filters, ``retry``, ``sessionPersistence``, a non-Service backend -- is refused with its path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from splitproof.setup.mesh import fields as f
from splitproof.setup.mesh.fields import DocRef
from splitproof.setup.mesh.istio_model import (
    MESH_GATEWAY,
    NO_HEADERS,
    SUPPORTED_KINDS,
    Destination,
    HeaderOps,
    HttpMatch,
    HttpRoute,
    Model,
    StringMatch,
    VirtualService,
    parse_documents,
)
from splitproof.setup.mesh.topology import Service
from splitproof.verifier import gatewayapi as gw
from splitproof.verifier.errors import InputError

SERVICE_API = "v1"
_PATH_KINDS = {"PathPrefix": "prefix", "Exact": "exact", "RegularExpression": "regex"}
_HEADER_KINDS = {"Exact": "exact", "RegularExpression": "regex"}
_HEADER_FILTERS = {"RequestHeaderModifier": ("request", "requestHeaderModifier"),
                   "ResponseHeaderModifier": ("response", "responseHeaderModifier")}


def _is_ours(doc: Any) -> bool:
    """A Gateway API document or a core (``v1``) one: this module's; everything else is Istio's."""
    api = doc.get("apiVersion") if isinstance(doc, Mapping) else None
    return isinstance(api, str) and (api == SERVICE_API or api.startswith(gw.GROUP + "/"))


def parse_all(documents: Sequence[Any], services: Sequence[Service], default_namespace: str
              ) -> tuple[Model, tuple[BackendService, ...]]:
    """Every document validated: Istio's through setup.mesh.istio_model, the Services and HTTPRoutes here (Services
    first: routes send to them). Returns the one model (HTTPRoutes as mesh VirtualServices) and the backends."""
    ours = [(i, d) for i, d in enumerate(documents) if _is_ours(d)]
    model = parse_documents([d for d in documents if not _is_ours(d)], services, default_namespace)
    known = {s.fqdn: s for s in services}
    backends: list[BackendService] = []
    routes: list[tuple[int, Mapping[str, Any]]] = []
    for index, doc in ours:
        meta = f.mapping(doc.get("metadata"), DocRef("document", "-", f"#{index}"), "metadata")
        kind, name = doc.get("kind"), meta.get("name")
        if not isinstance(name, str) or not name:
            raise InputError(f"document #{index} ({kind or 'no kind'}): metadata.name is required")
        ref = DocRef(str(kind), str(meta.get("namespace") or default_namespace), name)
        f.only(doc, ("apiVersion", "kind", "metadata", "spec", "status"), ref, "")
        if kind == "Service" and doc["apiVersion"] == SERVICE_API:
            backend = backend_service(doc, ref)
            if backend.service.fqdn in known:   # the mesh's own Service (the instances are already its own)
                continue
            backends.append(backend)
            known[backend.service.fqdn] = backend.service
        elif kind == gw.HTTPROUTE and doc["apiVersion"] in gw.API_VERSIONS:
            routes.append((index, doc))
        else:
            supported = (*SUPPORTED_KINDS, "HTTPRoute (gateway.networking.k8s.io/v1)", "Service (v1)")
            raise InputError(f"{kind} {ref.namespace}/{name}: {doc['apiVersion']} {kind} is not supported by the "
                             f"local mesh (supported: {', '.join(supported)})")
    converted = tuple(http_route(doc, DocRef(gw.HTTPROUTE, str((doc.get("metadata") or {}).get("namespace")
                                                                   or default_namespace),
                                             str(doc["metadata"]["name"])), known) for _i, doc in routes)
    return replace(model, virtual_services=model.virtual_services + converted), tuple(backends)


@dataclass(frozen=True)
class BackendService:
    """A core Service document: a backend an HTTPRoute may send to (its cluster holds the instances it selects)."""

    ref: DocRef
    service: Service
    selector: Mapping[str, str]


def backend_service(doc: Mapping[str, Any], ref: DocRef) -> BackendService:
    spec = f.mapping(doc.get("spec"), ref, "spec")
    f.only(spec, ("selector", "ports", "type", "clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy",
                  "sessionAffinity", "internalTrafficPolicy"), ref, "spec")
    if spec.get("type", "ClusterIP") != "ClusterIP":
        raise ref.err("spec.type", f"{spec.get('type')!r} is not supported by the local mesh (ClusterIP only)")
    selector = f.labels(spec.get("selector"), ref, "spec.selector")
    if not selector:
        raise ref.err("spec.selector", "is required (a Service without a selector selects no instance here)")
    ports = f.listing(spec.get("ports"), ref, "spec.ports")
    if len(ports) != 1:
        raise ref.err("spec.ports", f"must list exactly one port in the local mesh, got {len(ports)}")
    port = f.mapping(ports[0], ref, "spec.ports[0]")
    f.only(port, ("name", "port", "targetPort", "protocol", "appProtocol"), ref, "spec.ports[0]")
    number = port.get("port")
    if isinstance(number, bool) or not isinstance(number, int) or not 0 < number < 65536:
        raise ref.err("spec.ports[0].port", f"must be a port number, got {number!r}")
    name, app = str(port.get("name", "")), str(port.get("appProtocol", ""))
    grpc = name == "grpc" or name.startswith("grpc-") or app in ("grpc", "kubernetes.io/h2c")
    return BackendService(ref, Service(ref.name, ref.namespace, number, "grpc" if grpc else "http"), selector)


def _parent(value: Any, ref: DocRef, path: str, services: Mapping[str, Service]) -> Service:
    p = f.mapping(value, ref, path)
    f.only(p, ("group", "kind", "name", "namespace", "port", "sectionName"), ref, path)
    if p.get("sectionName"):
        raise ref.unsupported(f"{path}.sectionName")
    kind, group = p.get("kind", "Gateway"), p.get("group", gw.GROUP)
    if kind != "Service" or group != "":
        raise ref.err(path, f"{group or 'core'}/{kind} parents are not supported by the local mesh: bind the route "
                      "to the Service (group: \"\", kind: Service; the local ingress is an Istio Gateway)")
    name = f.string(p.get("name"), ref, f"{path}.name")
    fqdn = f"{name}.{p.get('namespace') or ref.namespace}.svc.cluster.local"
    svc = services.get(fqdn)
    if svc is None:
        known = ", ".join(sorted(s.name for s in services.values()))
        raise ref.err(f"{path}.name", f"{name!r} is not a service of the local mesh (known: {known})")
    if "port" in p and p["port"] != svc.port:
        raise ref.err(f"{path}.port", f"{p['port']!r} is not a port of {svc.name} ({svc.port})")
    return svc


def http_route(doc: Mapping[str, Any], ref: DocRef, services: Mapping[str, Service]) -> VirtualService:
    """An HTTPRoute with Service parents -> a mesh VirtualService of those hosts (istiod's conversion)."""
    spec = f.mapping(doc.get("spec"), ref, "spec")
    f.only(spec, ("parentRefs", "rules"), ref, "spec")
    parents = [_parent(p, ref, f"spec.parentRefs[{i}]", services)
               for i, p in enumerate(f.listing(spec.get("parentRefs"), ref, "spec.parentRefs"))]
    if not parents:
        raise ref.err("spec.parentRefs", "must name the Service whose traffic the route splits")
    rules = f.listing(spec.get("rules"), ref, "spec.rules") or [{}]   # the spec's default: one rule, everything
    http = [_rule(r, i, ref, services) for i, r in enumerate(rules)]
    order = sorted(range(len(http)), key=lambda i: _precedence(http[i]))   # the spec's precedence, stable
    return VirtualService(ref, tuple(s.fqdn for s in parents), (("", MESH_GATEWAY),),
                          tuple(http[i] for i in order))


def _precedence(route: HttpRoute) -> tuple[int, int, int]:
    """Sort key: an Exact path first, then the longest prefix, then the most header matches (a catch-all last)."""
    best = (2, 0, 0)
    for m in route.matches:
        uri = m.uri or StringMatch("prefix", "/")
        key = (0 if uri.kind == "exact" else 1, -len(uri.value) if uri.kind == "prefix" else 0, -len(m.headers))
        best = min(best, key)
    return best if route.matches else (1, -1, 0)


def _rule(value: Any, i: int, ref: DocRef, services: Mapping[str, Service]) -> HttpRoute:
    path = f"spec.rules[{i}]"
    r = f.mapping(value, ref, path)
    f.only(r, ("name", "matches", "filters", "backendRefs", "timeouts"), ref, path)
    matches = tuple(_match(m, ref, f"{path}.matches[{j}]")
                    for j, m in enumerate(f.listing(r.get("matches"), ref, f"{path}.matches")))
    refs = f.listing(r.get("backendRefs"), ref, f"{path}.backendRefs")
    if not refs:
        raise ref.err(f"{path}.backendRefs", "is required (redirects and rewrites are not supported)")
    dests = tuple(_backend(b, ref, f"{path}.backendRefs[{j}]", services) for j, b in enumerate(refs))
    if not any(d.weight for d in dests):
        raise ref.err(f"{path}.backendRefs[*].weight", "are all 0 (Istio answers 500 to every request of this "
                      "rule; not supported by the local mesh)")
    timeouts = f.mapping(r.get("timeouts"), ref, f"{path}.timeouts")
    f.only(timeouts, ("request",), ref, f"{path}.timeouts")
    timeout = f.duration(timeouts["request"], ref, f"{path}.timeouts.request") if "request" in timeouts else "0s"
    name = str(r.get("name") or f"{ref.namespace}.{ref.name}.{i}")
    return HttpRoute(name, matches, dests, _filters(r.get("filters"), ref, f"{path}.filters"), timeout)


def _backend(value: Any, ref: DocRef, path: str, services: Mapping[str, Service]) -> Destination:
    b = f.mapping(value, ref, path)
    f.only(b, ("group", "kind", "name", "namespace", "port", "weight", "filters"), ref, path)
    if b.get("group", "") != "" or b.get("kind", "Service") != "Service":
        raise ref.err(path, f"{b.get('group')}/{b.get('kind')} backends are not supported (Service only)")
    name = f.string(b.get("name"), ref, f"{path}.name")
    fqdn = f"{name}.{b.get('namespace') or ref.namespace}.svc.cluster.local"
    svc = services.get(fqdn)
    if svc is None:
        known = ", ".join(sorted(s.name for s in services.values()))
        raise ref.err(f"{path}.name", f"{name!r} is not a Service of the local mesh or the documents (known: "
                      f"{known})")
    port = b.get("port", svc.port)
    if port != svc.port:
        raise ref.err(f"{path}.port", f"{port!r} is not a port of {svc.name} ({svc.port})")
    weight = b.get("weight", gw.DEFAULT_WEIGHT)
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= gw.MAX_WEIGHT:
        raise ref.err(f"{path}.weight", f"must be an integer from 0 to {gw.MAX_WEIGHT}, got {weight!r}")
    return Destination(svc, "", weight, _filters(b.get("filters"), ref, f"{path}.filters"))


def _match(value: Any, ref: DocRef, path: str) -> HttpMatch:
    m = f.mapping(value, ref, path)
    f.only(m, ("path", "headers"), ref, path)
    uri = None
    if "path" in m:
        p = f.mapping(m["path"], ref, f"{path}.path")
        f.only(p, ("type", "value"), ref, f"{path}.path")
        kind = p.get("type", "PathPrefix")
        if kind not in _PATH_KINDS:
            raise ref.err(f"{path}.path.type", f"{kind!r} is not one of {', '.join(_PATH_KINDS)}")
        val = f.string(p.get("value", "/"), ref, f"{path}.path.value")
        if kind == "PathPrefix" and val != "/":
            val = val.rstrip("/")   # "When specified, a trailing `/` is ignored" (istiod does the same)
        uri = StringMatch(_PATH_KINDS[kind], val)
    headers = []
    for j, h in enumerate(f.listing(m.get("headers"), ref, f"{path}.headers")):
        hp = f"{path}.headers[{j}]"
        h = f.mapping(h, ref, hp)
        f.only(h, ("type", "name", "value"), ref, hp)
        kind = h.get("type", "Exact")
        if kind not in _HEADER_KINDS:
            raise ref.err(f"{hp}.type", f"{kind!r} is not one of {', '.join(_HEADER_KINDS)}")
        headers.append((f.string(h.get("name"), ref, f"{hp}.name"),
                        StringMatch(_HEADER_KINDS[kind], f.string(h.get("value"), ref, f"{hp}.value"))))
    return HttpMatch(uri, tuple(headers))


def _filters(value: Any, ref: DocRef, path: str) -> HeaderOps:
    sets: dict[str, tuple[tuple[str, str], ...]] = {}
    adds: dict[str, tuple[tuple[str, str], ...]] = {}
    removes: dict[str, tuple[str, ...]] = {}
    for i, raw in enumerate(f.listing(value, ref, path)):
        fp = f"{path}[{i}]"
        flt = f.mapping(raw, ref, fp)
        kind = flt.get("type")
        if kind not in _HEADER_FILTERS:
            raise ref.err(f"{fp}.type", f"{kind!r} is not supported by the local mesh (supported: "
                          f"{', '.join(_HEADER_FILTERS)})")
        direction, key = _HEADER_FILTERS[kind]
        f.only(flt, ("type", key), ref, fp)
        ops = f.mapping(flt.get(key), ref, f"{fp}.{key}")
        f.only(ops, ("set", "add", "remove"), ref, f"{fp}.{key}")
        for op, into in (("set", sets), ("add", adds)):
            pairs = []
            for j, h in enumerate(f.listing(ops.get(op), ref, f"{fp}.{key}.{op}")):
                hp = f"{fp}.{key}.{op}[{j}]"
                h = f.mapping(h, ref, hp)
                f.only(h, ("name", "value"), ref, hp)
                pairs.append((f.string(h.get("name"), ref, f"{hp}.name"), f.string(h.get("value"), ref,
                                                                                    f"{hp}.value")))
            if pairs:
                into[direction] = into.get(direction, ()) + tuple(pairs)
        remove = f.listing(ops.get("remove"), ref, f"{fp}.{key}.remove")
        if remove:
            removes[direction] = tuple(f.string(r, ref, f"{fp}.{key}.remove") for r in remove)
    return HeaderOps(sets, adds, removes) if sets or adds or removes else NO_HEADERS
