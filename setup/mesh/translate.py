"""Istio networking documents -> Envoy configuration, the way istiod does it, for the local mesh. Pure functions.

Input: Gateway / VirtualService / DestinationRule documents (networking.istio.io v1, v1beta1 or v1alpha3 -- the
same documents setup.manifests renders for the cluster), the mesh's Services and the ready instances (Endpoints
with pod labels). Output: Envoy listeners, clusters and route configurations (setup.mesh.envoy_build).

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

Anything a document asks for that this translation does not implement raises InputError naming the field path
(``VirtualService ns/name: spec.http[0].retries is not supported by the local mesh``) -- never silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from splitproof.setup.mesh import envoy_build as build
from splitproof.setup.mesh import inbound
from splitproof.setup.mesh.envoy_build import EnvoyConfig, ListenerPorts
from splitproof.setup.mesh.hosts import domains, host_intersection, resolve_host
from splitproof.setup.mesh.inbound import Telemetry
from splitproof.setup.mesh.istio_model import (
    DEFAULT_LB,
    MESH_GATEWAY,
    DestinationRule,
    Gateway,
    Model,
    Server,
    VirtualService,
    parse_documents,
)
from splitproof.setup.mesh.topology import Endpoint, Service

INGRESS_LABELS: Mapping[str, str] = {"istio": "ingressgateway"}  # the labels of the local ingress "pod"


def translate(documents: Sequence[Any], *, services: Sequence[Service], endpoints: Sequence[Endpoint],
              ports: ListenerPorts, route_path: Callable[[str], str], default_namespace: str,
              ingress_labels: Mapping[str, str] = INGRESS_LABELS, telemetry: Telemetry | None = None) -> EnvoyConfig:
    """Translate Istio documents for the given services and ready endpoints into Envoy resources.

    ``route_path(name)`` is the file each listener's RDS subscription watches for route configuration ``name``.
    With ``telemetry`` (setup.mesh.inbound), every HCM writes access logs and every planned instance gets an inbound
    hop: the service clusters reach its ready instances through their inbound listeners.
    """
    model = parse_documents(documents, services, default_namespace)
    out = EnvoyConfig()
    if telemetry is not None:
        _inbound(services, endpoints, telemetry, out)
        endpoints = [inbound.internal_endpoint(ep) for ep in endpoints]
    defined = _clusters(model, services, endpoints, out)
    _mesh_listeners(model, services, defined, ports, route_path, out, telemetry)
    _ingress_listeners(model, defined, ports, route_path, ingress_labels, out, telemetry)
    out.warnings = list(dict.fromkeys(out.warnings))
    return out


def _inbound(services: Sequence[Service], endpoints: Sequence[Endpoint], telemetry: Telemetry,
             out: EnvoyConfig) -> None:
    """An inbound listener per planned instance (stable, so listeners never change while Envoy runs) and its
    inbound cluster: the instance's real port when it is ready, empty (503 UH) while it is not."""
    by_name = {s.name: s for s in services}
    ready = {ep.instance: ep for ep in endpoints}
    for instance, service, _labels in telemetry.instances:
        svc = by_name.get(service)
        if svc is None:
            continue
        ep = ready.get(instance)
        name = inbound.inbound_cluster_name(svc, instance)
        out.clusters.append(build.cluster(name, svc, [ep] if ep else [], DEFAULT_LB, "", {}))
        out.listeners.append(inbound.inbound_listener(instance, svc, telemetry))


def _logs(telemetry: Telemetry | None, listener: str, statics: Mapping[str, str]) -> list[dict[str, Any]] | None:
    return inbound.access_logs(telemetry, listener, "outbound", statics) if telemetry is not None else None


def _clusters(model: Model, services: Sequence[Service], endpoints: Sequence[Endpoint], out: EnvoyConfig) -> set[str]:
    """The whole service's cluster, then one per DestinationRule subset; returns the cluster names defined."""
    rules: dict[str, DestinationRule] = {}
    for dr in model.destination_rules:
        if dr.service is None:
            out.warnings.append(f"DestinationRule {dr.ref.namespace}/{dr.ref.name}: host {dr.host!r} is not a "
                                f"service of the local mesh (ignored)")
            continue
        if dr.service.fqdn in rules:
            other = rules[dr.service.fqdn].ref
            raise dr.ref.err("spec.host", f"{dr.host!r} already has DestinationRule {other.namespace}/{other.name}")
        rules[dr.service.fqdn] = dr
    defined: set[str] = set()
    for svc in services:
        mine = [ep for ep in endpoints if ep.service == svc.name]
        dr = rules.get(svc.fqdn)
        name = build.service_cluster(svc)
        out.clusters.append(build.cluster(name, svc, mine, dr.lb if dr else DEFAULT_LB, "", {}))
        defined.add(name)
        for subset in dr.subsets if dr else ():
            selected = [ep for ep in mine if all(ep.labels.get(k) == v for k, v in subset.labels.items())]
            name = build.service_cluster(svc, subset.name)
            out.clusters.append(build.cluster(name, svc, selected, subset.lb, subset.name, subset.labels))
            defined.add(name)
    return defined


def _vs_routes(vs: VirtualService, defined: set[str], warnings: list[str]) -> list[dict[str, Any]]:
    """The Envoy routes of ``vs``, warning about every weighted subset no DestinationRule defines."""
    for i, r in enumerate(vs.http):
        for d in build.forwarded(r):
            if d.subset and build.service_cluster(d.service, d.subset) not in defined:
                warnings.append(f"VirtualService {vs.ref.namespace}/{vs.ref.name}: spec.http[{i}] routes "
                                f"{d.weight}% to subset {d.subset!r} of {d.service.name}, which no "
                                f"DestinationRule defines: those requests get 503 (apply the DestinationRule)")
    return build.routes(vs.http, vs.ref.name)


def _mesh_listeners(model: Model, services: Sequence[Service], defined: set[str], ports: ListenerPorts,
                    route_path: Callable[[str], str], out: EnvoyConfig, telemetry: Telemetry | None) -> None:
    """One outbound ("sidecar") listener per service, each with its own route configuration."""
    by_fqdn = {s.fqdn: s for s in services}
    mesh_vs: dict[str, VirtualService] = {}
    for vs in model.virtual_services:
        if not vs.in_mesh:
            continue
        for i, host in enumerate(vs.hosts):
            fqdn = resolve_host(host, vs.ref.namespace)
            if fqdn not in by_fqdn:
                out.warnings.append(f"VirtualService {vs.ref.namespace}/{vs.ref.name}: spec.hosts[{i}] {host!r} is "
                                    f"not a service of the local mesh (no sidecar route for it)")
                continue
            if fqdn in mesh_vs:
                other = mesh_vs[fqdn].ref
                raise vs.ref.err(f"spec.hosts[{i}]", f"{host!r} is already routed by VirtualService "
                                 f"{other.namespace}/{other.name} (one mesh VirtualService per host)")
            mesh_vs[fqdn] = vs
    for svc in services:
        route = build.mesh_route_name(svc)
        vs = mesh_vs.get(svc.fqdn)
        routes = _vs_routes(vs, defined, out.warnings) if vs else [build.default_route(svc)]
        out.routes[route] = build.route_config(route, [{"name": f"{svc.fqdn}:{svc.port}", "domains": ["*"],
                                                        "routes": routes}])
        name = build.mesh_listener_name(svc.name)
        out.listeners.append(build.listener(name, ports.address, ports.services.get(svc.name, 0), route,
                                            route_path(route), _logs(telemetry, name, {})))


def _ingress_servers(model: Model, ports: ListenerPorts, ingress_labels: Mapping[str, str],
                     warnings: list[str]) -> dict[int, list[tuple[Gateway, Server]]]:
    """Gateway servers selecting the local ingress, by Gateway port."""
    by_port: dict[int, list[tuple[Gateway, Server]]] = {}
    for gw in model.gateways:
        if not gw.selector or any(ingress_labels.get(k) != v for k, v in gw.selector.items()):
            sel = ",".join(f"{k}={v}" for k, v in gw.selector.items()) or "(none)"
            have = ",".join(f"{k}={v}" for k, v in ingress_labels.items())
            warnings.append(f"Gateway {gw.ref.namespace}/{gw.ref.name}: selector {sel} does not select the local "
                            f"ingress ({have}); no listener for it")
            continue
        for i, server in enumerate(gw.servers):
            if server.port not in ports.gateway:
                mapped = ", ".join(str(p) for p in ports.gateway) or "none"
                raise gw.ref.err(f"spec.servers[{i}].port.number", f"{server.port} has no local port (the local "
                                 f"ingress maps Gateway port(s): {mapped})")
            by_port.setdefault(server.port, []).append((gw, server))
    return by_port


def _admits(server_ns: str, vs: VirtualService, gw: Gateway) -> bool:
    """Whether a Gateway server's host namespace selector (``*``, ``.``, or a namespace) admits ``vs``."""
    return server_ns in ("*", vs.ref.namespace) or (server_ns == "." and vs.ref.namespace == gw.ref.namespace)


def _virtual_hosts(model: Model, bound: list[tuple[Gateway, Server]], gport: int, defined: set[str],
                   warnings: list[str]) -> list[dict[str, Any]]:
    """The virtual hosts of one ingress port: every VirtualService bound to one of its Gateways, per host the
    VirtualService and a server have in common; a host claimed by two VirtualServices is an error."""
    vhosts: dict[str, tuple[VirtualService, dict[str, Any]]] = {}
    for vs in model.virtual_services:
        attached = [(gw, server) for gw, server in bound if gw.key in vs.gateways]
        for host in vs.hosts if attached else ():
            for gw, server in attached:
                for ns_sel, server_host in server.hosts:
                    common = host_intersection(host, server_host) if _admits(ns_sel, vs, gw) else None
                    if common is None:
                        continue
                    if common in vhosts:
                        if vhosts[common][0] is not vs:
                            raise vs.ref.err("spec.hosts", f"host {common!r} on Gateway port {gport} is already "
                                             f"routed by VirtualService {vhosts[common][0].ref.name}")
                        continue
                    vhosts[common] = (vs, {"name": f"{common}:{gport}", "domains": domains(common),
                                           "routes": _vs_routes(vs, defined, warnings)})
    return [vh for _vs, vh in vhosts.values()]


def _ingress_listeners(model: Model, defined: set[str], ports: ListenerPorts, route_path: Callable[[str], str],
                       ingress_labels: Mapping[str, str], out: EnvoyConfig, telemetry: Telemetry | None) -> None:
    """One ingress listener per Gateway port that a Gateway server selecting the local ingress uses."""
    servers = _ingress_servers(model, ports, ingress_labels, out.warnings)
    known = {gw.key for gw in model.gateways}
    for gport, bound in sorted(servers.items()):
        route = build.ingress_route_name(gport)
        virtual_hosts = _virtual_hosts(model, bound, gport, defined, out.warnings)
        for vs in model.virtual_services:
            for ns, name in vs.gateways:
                if name != MESH_GATEWAY and (ns, name) not in known:
                    out.warnings.append(f"VirtualService {vs.ref.namespace}/{vs.ref.name}: gateway {ns}/{name} "
                                        f"does not exist (the VirtualService is not bound to any ingress)")
        out.routes[route] = build.route_config(route, virtual_hosts)
        name = build.ingress_listener_name(gport)
        out.listeners.append(build.listener(name, ports.address, ports.gateway[gport], route, route_path(route),
                                            _logs(telemetry, name, {"source": "istio-ingressgateway"})))
    for gport in ports.gateway:
        if gport not in servers:
            out.warnings.append(f"no Gateway server on port {gport} selects the local ingress: the ingress does not "
                                f"listen")
