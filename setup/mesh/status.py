"""What the local mesh is doing: its state, and what Envoy itself serves (``canary-setup local status``).

Weights come from the Router (setup.mesh.router: Envoy's config_dump, not our memory); subsets and warnings from
the served clusters and routes: a weighted subset without an instance (its share gets 503 / UNAVAILABLE), a
route to a subset no DestinationRule defines, an instance in two subsets, crashes and restarts, a dead supervisor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from splitproof.setup.envoyroutes import route_destinations, subset_weights
from splitproof.setup.errors import NotRunningError
from splitproof.setup.mesh.admin import ADMIN_ERRORS, Admin, parse_config_dump
from splitproof.setup.mesh.router import LocalRouter, shown_weights
from splitproof.setup.mesh.state import READY, STARTING, MeshState
from splitproof.setup.mesh.statedir import default_state_dir, read_state
from splitproof.setup.mesh.topology import services
from splitproof.verifier.istio import format_weights, parse_cluster_name


@dataclass
class MeshStatus:
    """What the local mesh is doing, read from its state and from Envoy itself (weights: Envoy's config_dump)."""

    state_dir: str
    status: str
    ingress_url: str | None
    grpc_entry: str | None
    admin_url: str | None
    mesh: dict[str, str]                  # service -> "127.0.0.1:PORT" of its outbound (sidecar) listener
    weights: dict[str, int]               # canaried service's subsets as Envoy serves them (its catch-all route)
    desired_weights: dict[str, int]
    routes: dict[str, list[dict[str, Any]]]  # route config -> [{virtual_host, route, weights}]
    subsets: dict[str, dict[str, Any]]    # canaried service's subsets -> {selector, instances} as Envoy has them
    processes: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    faults: dict[str, dict[str, Any]] = field(default_factory=dict)  # version -> injected faults (a bad canary)
    exporter_url: str | None = None       # Istio's standard metrics (setup.mesh.exporter)
    prometheus_url: str | None = None     # with `up --prometheus`
    access_logs: str | None = None        # directory of access-<listener>.log (Istio's TEXT format)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _splitproof_meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return ((obj.get("metadata") or {}).get("filter_metadata") or {}).get("splitproof") or {}


def cluster_instances(cluster: Mapping[str, Any]) -> list[str]:
    names = []
    for group in (cluster.get("load_assignment") or {}).get("endpoints") or []:
        for lb in group.get("lb_endpoints") or []:
            addr = ((lb.get("endpoint") or {}).get("address") or {}).get("socket_address") or {}
            names.append(_splitproof_meta(lb).get("instance") or f"{addr.get('address')}:{addr.get('port_value')}")
    return names


def served_subsets(clusters: Mapping[str, dict[str, Any]], fqdn: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, cluster in clusters.items():
        parsed = parse_cluster_name(name)
        if not parsed or parsed[2] != fqdn or not parsed[1]:
            continue
        out[parsed[1]] = {"selector": _splitproof_meta(cluster).get("selector", {}),
                          "instances": cluster_instances(cluster)}
    return out


def served_warnings(routes: Mapping[str, tuple[str, dict[str, Any]]],
                    clusters: Mapping[str, dict[str, Any]]) -> list[str]:
    """Warnings from what Envoy serves: weighted destinations with no cluster or no endpoint; shared instances."""
    out: list[str] = []
    for rc_name, (_version, rc) in sorted(routes.items()):
        for vhost in rc.get("virtual_hosts") or []:
            for route in vhost.get("routes") or []:
                out.extend(_destination_warnings(rc_name, route_destinations(route), clusters))
    by_service: dict[str, dict[str, list[str]]] = {}
    for name, cluster in clusters.items():
        parsed = parse_cluster_name(name)
        if parsed and parsed[1]:
            for inst in cluster_instances(cluster):
                by_service.setdefault(parsed[2], {}).setdefault(inst, []).append(parsed[1])
    for fqdn, members in sorted(by_service.items()):
        for inst, subs in sorted(members.items()):
            if len(subs) > 1:
                out.append(f"{fqdn.split('.')[0]}: instance {inst} is in subsets {', '.join(sorted(subs))} "
                           f"(a subset selecting only `app` includes the other versions: the split is skewed)")
    return out


def _destination_warnings(rc_name: str, dests: Mapping[str, int], clusters: Mapping[str, dict[str, Any]]) -> list[str]:
    out = []
    total = sum(dests.values()) or 1
    for cname, weight in dests.items():
        if weight <= 0:
            continue
        share = f"{100 * weight / total:g}%"
        parsed = parse_cluster_name(cname)
        what = f"subset {parsed[1]!r} of {parsed[2].split('.')[0]}" if parsed and parsed[1] else cname
        if cname not in clusters:
            out.append(f"route {rc_name}: {share} goes to {what}, which no DestinationRule defines "
                       f"(503 / UNAVAILABLE for that share)")
        elif not cluster_instances(clusters[cname]):
            sel = _splitproof_meta(clusters[cname]).get("selector") or {}
            labels = ",".join(f"{k}={v}" for k, v in sel.items()) or "(any)"
            out.append(f"route {rc_name}: {share} goes to {what}, which selects no ready instance "
                       f"(labels {labels}): empty subset, 503 / UNAVAILABLE for that share")
    return out


def instance_state(recorded: str | None, alive: bool, supervisor_alive: bool) -> str:
    """What ``status`` shows for an instance: the recorded state, unless its process is gone -- "dead" when it was
    ready or starting (SIGKILLed, or died with a SIGKILLed supervisor) or nobody supervises it any more."""
    if not alive and (recorded in (READY, STARTING) or not supervisor_alive):
        return "dead"
    return str(recorded)


def _processes(state: MeshState, warnings: list[str]) -> list[dict[str, Any]]:
    sup_alive = state.supervisor_alive()
    sup_pid = state.supervisor.pid if state.supervisor else None
    processes: list[dict[str, Any]] = [{"name": "supervisor", "pid": sup_pid, "alive": sup_alive}]
    if not sup_alive:
        warnings.append(f"the supervisor (pid {sup_pid}) is not running: `canary-setup local down` cleans up")
    env = state.envoy
    env_alive = env.ref is not None and env.ref.alive()
    processes.append({"name": "envoy", "pid": env.ref.pid if env.ref else None, "alive": env_alive,
                      "restarts": env.restarts, "admin": env.admin_url})
    if not env_alive:
        warnings.append("Envoy is not running")
    elif env.restarts:
        warnings.append(f"Envoy restarted {env.restarts} time(s)")
    for inst in state.instances:
        alive = inst.ref is not None and inst.ref.alive()
        shown = instance_state(inst.state, alive, sup_alive)
        processes.append({"name": inst.name, "service": inst.service, "labels": dict(inst.labels),
                          "pid": inst.ref.pid if inst.ref else None, "port": inst.port, "restarts": inst.restarts,
                          "last_exit": inst.last_exit, "state": shown, "alive": alive})
        if inst.restarts:
            code = inst.last_exit
            how = f"killed by signal {-code}" if isinstance(code, int) and code < 0 else f"exit code {code}"
            warnings.append(f"instance {inst.name} crashed and was restarted {inst.restarts} time(s) (last: {how})")
        if shown != READY:
            warnings.append(f"instance {inst.name} is not ready ({shown}): no traffic reaches it")
    prom = state.telemetry.prometheus
    if prom is not None:
        alive = prom.alive()
        processes.append({"name": "prometheus", "pid": prom.pid, "alive": alive,
                          "restarts": state.telemetry.prometheus_restarts, "url": state.telemetry.prometheus_url})
        if not alive:
            warnings.append("Prometheus is not running")
    return processes


def mesh_status(state_dir: Path | str | None = None) -> MeshStatus:
    """Status of the mesh in ``state_dir``; NotRunningError when there is none."""
    state_dir = Path(state_dir) if state_dir else default_state_dir()
    state = read_state(state_dir)
    if state is None:
        raise NotRunningError(f"no local mesh is running in {state_dir}")
    warnings: list[str] = []
    params = state.params
    canaried = next(s for s in services(params) if s.name == params.service)
    processes = _processes(state, warnings)
    routes: dict[str, list[dict[str, Any]]] = {}
    weights: dict[str, int] = {}
    subsets: dict[str, dict[str, Any]] = {}
    admin_url = state.envoy.admin_url
    if processes[1]["alive"] and admin_url:
        try:
            served = parse_config_dump(Admin(admin_url).config_dump())
        except ADMIN_ERRORS as exc:
            warnings.append(f"Envoy admin {admin_url} unreachable: {exc}")
        else:
            routes = {name: subset_weights(rc) for name, (_v, rc) in served.routes.items()}
            weights = shown_weights(LocalRouter(state_dir).served_weights())
            subsets = served_subsets(served.clusters, canaried.fqdn)
            warnings.extend(served_warnings(served.routes, served.clusters))
            if weights and {k: v for k, v in weights.items() if v} != {k: v for k, v in params.weights.items() if v}:
                warnings.append(f"Envoy serves {format_weights(weights)} but the desired weights are "
                                f"{format_weights(params.weights)}")
    warnings.extend(state.warnings)
    if state.supervisor_error:
        warnings.append(f"last supervisor error: {state.supervisor_error}")
    mesh = state.mesh_addresses()
    return MeshStatus(
        state_dir=str(state_dir),
        status=state.status if processes[0]["alive"] else "dead",
        ingress_url=state.ingress_url(),
        grpc_entry=mesh.get(params.service),
        admin_url=admin_url,
        mesh=mesh,
        weights=weights,
        desired_weights=dict(params.weights),
        routes=routes,
        subsets=subsets,
        processes=processes,
        warnings=list(dict.fromkeys(warnings)),
        faults={version: {**f.to_json(), "description": f.describe()} for version, f in state.faults.items()},
        exporter_url=state.telemetry.exporter_url,
        prometheus_url=state.telemetry.prometheus_url,
        access_logs=state.telemetry.access_logs,
    )
