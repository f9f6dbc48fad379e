"""LocalMesh: start the lab's topology on 127.0.0.1 behind a real Envoy, supervise it, change it, stop it.

One supervisor thread owns every child process (Envoy and the boutique instances): it starts them, restarts a
crashed instance with exponential backoff (like a kubelet; the instance's endpoint leaves the Envoy clusters while
it is down, as a NotReady pod leaves its EDS), and stops them. Children get SIGTERM when that thread's process
dies (Envoy sets PR_SET_PDEATHSIG itself; instances are started through a tiny exec wrapper that sets it), so
nothing outlives its supervisor. Everything a second process needs (``local status|weights|down``) is in the
state directory (see state.py); configuration changes go through ``reconfigure``, under the state lock.

``python -m setup.mesh.supervisor --state-dir DIR --launch FILE`` runs a detached supervisor (``local up
--detach``): it starts the mesh, then waits for SIGTERM/SIGINT/SIGHUP and stops everything.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from splitproof.setup.boutique.launcher import parse_ready
from splitproof.setup.errors import NotRunningError, PortInUseError, SetupError, WaitTimeoutError
from splitproof.setup.manifests import CanaryParams, mesh_documents
from splitproof.setup.mesh import envoy as envoy_mod
from splitproof.setup.mesh.envoy import (
    Admin,
    ConfigFiles,
    Written,
    find_envoy,
    log_tail,
    parse_config_dump,
    wait_applied,
)
from splitproof.setup.mesh.state import (
    FORMAT,
    default_state_dir,
    locked,
    proc_ref,
    read_state,
    remove_state,
    same_process,
    terminate,
    write_state,
)
from splitproof.setup.mesh.topology import (
    CATALOG,
    DEFAULT_REPLICAS,
    Endpoint,
    InstanceSpec,
    plan_instances,
    services,
    validate_replicas,
)
from splitproof.setup.mesh.translate import (
    EnvoyConfig,
    ListenerPorts,
    ingress_listener_name,
    mesh_listener_name,
    mesh_route_name,
    reweight,
    route_destinations,
    split_route,
    subset_weights,
    translate,
)
from splitproof.setup.privatefs import open_private, private_dir, write_private
from splitproof.setup.proc import LOOPBACK, bindable, grpc_healthy, http_ok
from splitproof.verifier.errors import InputError, SplitproofError
from splitproof.verifier.istio import canary_weights, format_weights, parse_cluster_name, validate_weights

GATEWAY_PORT = 80              # the lab's Gateway server port, mapped to the local ingress port
BACKOFF_START = 0.2            # seconds before the first restart of a crashed instance
BACKOFF_MAX = 10.0
BACKOFF_RESET_AFTER = 10.0     # ready this long -> the next crash starts the backoff again from BACKOFF_START
INSTANCE_START_TIMEOUT = 30.0
ENVOY_START_TIMEOUT = 15.0
APPLY_TIMEOUT = 10.0
TICK = 0.05

# Sets PR_SET_PDEATHSIG (1) = SIGTERM, checks the parent is still the one that started us, then execs the real
# command: the instance dies with its supervisor even if the supervisor is SIGKILLed.
# It also sets umask 077: what the children create (Envoy's admin-address and base-id files) is owner-only.
_PDEATHSIG_EXEC = (
    "import ctypes,os,signal,sys\n"
    "ctypes.CDLL(None).prctl(1, signal.SIGTERM)\n"
    "os.getppid() == int(sys.argv[1]) or sys.exit(1)\n"
    "os.umask(0o077)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def spawn(argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv`` (never through a shell) in its own session, output to ``log``, dying with this process."""
    wrapped = [sys.executable, "-I", "-S", "-c", _PDEATHSIG_EXEC, str(os.getpid()), *argv]
    private_dir(log.parent)
    with os.fdopen(open_private(log), "ab") as out:
        return subprocess.Popen(wrapped, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})}, start_new_session=True)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------------------------
# state <-> inputs of the translation


def params_to_json(params: CanaryParams) -> dict[str, Any]:
    data = asdict(params)
    data["subsets"] = {k: dict(v) for k, v in params.subsets.items()}
    data["weights"] = dict(params.weights)
    return data


def params_from_json(data: Mapping[str, Any]) -> CanaryParams:
    return CanaryParams(**dict(data))


def desired_documents(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Istio documents the mesh enforces: the user's own, or the templates rendered with the params."""
    docs = state.get("documents")
    if docs is not None:
        return list(docs)
    return json.loads(_rendered(json.dumps(state["params"])))  # key order matters: weights order


@functools.lru_cache(maxsize=32)
def _rendered(params_json: str) -> str:
    """mesh_documents() for these params, as JSON (render + YAML parse cost ~20 ms; weights flip back and forth)."""
    return json.dumps(mesh_documents(params_from_json(json.loads(params_json))))


def _listener_ports(ports: Mapping[str, Any]) -> ListenerPorts:
    return ListenerPorts(gateway={int(k): int(v) for k, v in ports["gateway"].items()},
                         services={k: int(v) for k, v in ports["services"].items()})


def _endpoints(state: Mapping[str, Any]) -> list[Endpoint]:
    return [Endpoint(i["service"], LOOPBACK, int(i["port"]), dict(i["labels"]), i["name"])
            for i in state.get("instances", []) if i.get("state") == "ready" and i.get("port")]


def render(state: Mapping[str, Any], files: ConfigFiles, endpoints: Sequence[Endpoint] | None = None) -> EnvoyConfig:
    params = params_from_json(state["params"])
    return translate(desired_documents(state), services=services(params),
                     endpoints=_endpoints(state) if endpoints is None else endpoints,
                     ports=_listener_ports(state["ports"]["lds"]), route_path=files.route_path,
                     default_namespace=params.namespace)


def reconfigure(state_dir: Path, state: dict[str, Any], *, wait: bool = True,
                timeout: float = APPLY_TIMEOUT) -> float:
    """Render from ``state`` and write the xDS files -- clusters first, then routes -- waiting (when ``wait``)
    until Envoy's config_dump serves each. Listeners are never rewritten while Envoy runs. Caller holds the lock.
    Returns the seconds from the first write to Envoy serving everything."""
    files = ConfigFiles(state_dir / "xds")
    cfg = render(state, files)  # InputError before anything is written
    lds = files.check_listeners(cfg)
    admin = Admin(state["envoy"]["admin_url"]) if wait and state.get("envoy", {}).get("admin_url") else None
    log = state_dir / "logs" / "envoy.log"
    start = time.monotonic()
    before = files.current_cds_version()
    cds = files.write_clusters(cfg)
    if admin and cds != before:  # new clusters must be served before routes may point at them
        wait_applied(admin, cfg, Written(lds, cds, {}), timeout, log)
    routes = files.write_routes(cfg)
    if admin:
        wait_applied(admin, cfg, Written(lds, cds, routes), timeout, log, clusters=False)
    state["warnings"] = cfg.warnings
    return time.monotonic() - start


def change(state_dir: Path, params: CanaryParams | None = None, documents: Sequence[Mapping[str, Any]] | None = None,
           weights: Mapping[str, int] | None = None, timeout: float = APPLY_TIMEOUT) -> float:
    """Apply new params, documents or weights to a running mesh; return once Envoy serves them (seconds taken).

    Weights re-render the templates (``CanaryParams.with_weights``) or, for a mesh started from the user's own
    documents, rewrite the weights of the VirtualService routes that split the canaried service.
    """
    with locked(state_dir):
        state = read_state(state_dir)
        if state is None or state.get("status") not in ("ready", "starting"):
            raise NotRunningError(f"no local mesh is running in {state_dir}")
        if not same_process(state.get("supervisor")):
            raise NotRunningError(f"the local mesh supervisor in {state_dir} is not running "
                                  f"(`canary-setup local down` cleans up)")
        new = dict(state)
        if params is not None:
            params.validate()
            new["params"] = params_to_json(params)
            if documents is None:
                new["documents"] = None  # new params = the templates rendered with them
        if documents is not None:
            new["documents"] = [dict(d) for d in documents]
        if weights is not None:
            current = params_from_json(new["params"])
            if new.get("documents") is None:
                updated = current.with_weights(weights)
                updated.validate()
                new["params"] = params_to_json(updated)
            else:
                validate_weights(weights)
                svc = next(s for s in services(current) if s.name == current.service)
                new["documents"] = reweight(new["documents"], svc.fqdn, weights, current.namespace)
                new["params"] = params_to_json(current.with_weights(weights))
        took = reconfigure(state_dir, new, timeout=timeout)
        new["applied_at"] = _now()
        write_state(state_dir, new)
        return took


# ---------------------------------------------------------------------------------------------------------------
# status


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _served_subsets(clusters: Mapping[str, dict[str, Any]], fqdn: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, cluster in clusters.items():
        parsed = parse_cluster_name(name)
        if not parsed or parsed[2] != fqdn or not parsed[1]:
            continue
        meta = ((cluster.get("metadata") or {}).get("filter_metadata") or {}).get("splitproof") or {}
        out[parsed[1]] = {"selector": meta.get("selector", {}), "instances": _cluster_instances(cluster)}
    return out


def _cluster_instances(cluster: Mapping[str, Any]) -> list[str]:
    names = []
    for group in (cluster.get("load_assignment") or {}).get("endpoints") or []:
        for lb in group.get("lb_endpoints") or []:
            meta = ((lb.get("metadata") or {}).get("filter_metadata") or {}).get("splitproof") or {}
            addr = ((lb.get("endpoint") or {}).get("address") or {}).get("socket_address") or {}
            names.append(meta.get("instance") or f"{addr.get('address')}:{addr.get('port_value')}")
    return names


def served_warnings(routes: Mapping[str, tuple[str, dict[str, Any]]],
                    clusters: Mapping[str, dict[str, Any]]) -> list[str]:
    """Warnings from what Envoy serves: weighted destinations with no cluster or no endpoint; shared instances."""
    out: list[str] = []
    for rc_name, (_version, rc) in sorted(routes.items()):
        for vhost in rc.get("virtual_hosts") or []:
            for route in vhost.get("routes") or []:
                dests = route_destinations(route)
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
                    elif not _cluster_instances(clusters[cname]):
                        sel = ((clusters[cname].get("metadata") or {}).get("filter_metadata") or {}).get(
                            "splitproof", {}).get("selector") or {}
                        labels = ",".join(f"{k}={v}" for k, v in sel.items()) or "(any)"
                        out.append(f"route {rc_name}: {share} goes to {what}, which selects no ready instance "
                                   f"(labels {labels}): empty subset, 503 / UNAVAILABLE for that share")
    by_service: dict[str, dict[str, list[str]]] = {}
    for name, cluster in clusters.items():
        parsed = parse_cluster_name(name)
        if parsed and parsed[1]:
            for inst in _cluster_instances(cluster):
                by_service.setdefault(parsed[2], {}).setdefault(inst, []).append(parsed[1])
    for fqdn, members in sorted(by_service.items()):
        for inst, subs in sorted(members.items()):
            if len(subs) > 1:
                out.append(f"{fqdn.split('.')[0]}: instance {inst} is in subsets {', '.join(sorted(subs))} "
                           f"(a subset selecting only `app` includes the other versions: the split is skewed)")
    return out


def instance_state(recorded: str | None, alive: bool, supervisor_alive: bool) -> str:
    """What ``status`` shows for an instance: the recorded state, unless its process is gone -- "dead" when it was
    ready or starting (SIGKILLed, or died with a SIGKILLed supervisor) or nobody supervises it any more."""
    if not alive and (recorded in ("ready", "starting") or not supervisor_alive):
        return "dead"
    return str(recorded)


def mesh_status(state_dir: Path | str | None = None) -> MeshStatus:
    """Status of the mesh in ``state_dir``; NotRunningError when there is none."""
    state_dir = Path(state_dir) if state_dir else default_state_dir()
    state = read_state(state_dir)
    if state is None:
        raise NotRunningError(f"no local mesh is running in {state_dir}")
    warnings: list[str] = []
    params = params_from_json(state["params"])
    svc_by_name = {s.name: s for s in services(params)}
    canaried = svc_by_name[params.service]
    processes: list[dict[str, Any]] = []
    sup = state.get("supervisor") or {}
    sup_alive = same_process(sup)
    processes.append({"name": "supervisor", "pid": sup.get("pid"), "alive": sup_alive})
    if not sup_alive:
        warnings.append(f"the supervisor (pid {sup.get('pid')}) is not running: `canary-setup local down` "
                        f"cleans up")
    env = state.get("envoy") or {}
    env_alive = same_process(env)
    processes.append({"name": "envoy", "pid": env.get("pid"), "alive": env_alive,
                      "restarts": env.get("restarts", 0), "admin": env.get("admin_url")})
    if not env_alive:
        warnings.append("Envoy is not running")
    elif env.get("restarts"):
        warnings.append(f"Envoy restarted {env['restarts']} time(s)")
    for inst in state.get("instances", []):
        alive = same_process(inst)
        shown = instance_state(inst.get("state"), alive, sup_alive)
        processes.append({**{k: inst.get(k) for k in ("name", "service", "labels", "pid", "port", "restarts",
                                                       "last_exit")}, "state": shown, "alive": alive})
        if inst.get("restarts"):
            code = inst.get("last_exit")
            how = f"killed by signal {-code}" if isinstance(code, int) and code < 0 else f"exit code {code}"
            warnings.append(f"instance {inst['name']} crashed and was restarted {inst['restarts']} time(s) "
                            f"(last: {how})")
        if shown != "ready":
            warnings.append(f"instance {inst['name']} is not ready ({shown}): no traffic reaches it")
    routes: dict[str, list[dict[str, Any]]] = {}
    weights: dict[str, int] = {}
    subsets: dict[str, dict[str, Any]] = {}
    admin_url = env.get("admin_url")
    if env_alive and admin_url:
        try:
            served = parse_config_dump(Admin(admin_url).config_dump())
        except (OSError, ValueError) as exc:
            warnings.append(f"Envoy admin {admin_url} unreachable: {exc}")
        else:
            routes = {name: subset_weights(rc) for name, (_v, rc) in served.routes.items()}
            weights = split_route(routes.get(mesh_route_name(canaried)) or [])
            for name in params.weights:
                weights.setdefault(name, 0)
            subsets = _served_subsets(served.clusters, canaried.fqdn)
            warnings.extend(served_warnings(served.routes, served.clusters))
            if weights and {k: v for k, v in weights.items() if v} != {k: v for k, v in params.weights.items() if v}:
                warnings.append(f"Envoy serves {format_weights(weights)} but the desired weights are "
                                f"{format_weights(params.weights)}")
    warnings.extend(state.get("warnings") or [])
    if state.get("supervisor_error"):
        warnings.append(f"last supervisor error: {state['supervisor_error']}")
    bound = state["ports"].get("bound") or {}
    gw = (bound.get("gateway") or {}).get(str(GATEWAY_PORT))
    svc_ports = bound.get("services") or {}
    return MeshStatus(
        state_dir=str(state_dir),
        status=state.get("status", "?") if sup_alive else "dead",
        ingress_url=f"http://{LOOPBACK}:{gw}" if gw else None,
        grpc_entry=f"{LOOPBACK}:{svc_ports[params.service]}" if params.service in svc_ports else None,
        admin_url=admin_url,
        mesh={name: f"{LOOPBACK}:{port}" for name, port in svc_ports.items()},
        weights=weights,
        desired_weights=dict(params.weights),
        routes=routes,
        subsets=subsets,
        processes=processes,
        warnings=list(dict.fromkeys(warnings)),
    )



# ---------------------------------------------------------------------------------------------------------------
# the supervisor


@dataclass
class _Run:
    """One instance's current process and its restart bookkeeping."""

    spec: InstanceSpec
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    state: str = "pending"     # pending | starting | ready | backoff | stopped
    restarts: int = 0
    last_exit: int | None = None
    log_offset: int = 0
    started: float = 0.0
    ready_since: float = 0.0
    next_start: float = 0.0
    backoff: float = BACKOFF_START
    ref: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.spec.name, "service": self.spec.service, "kind": self.spec.kind,
                "labels": dict(self.spec.labels), "pid": self.ref.get("pid"), "ticks": self.ref.get("ticks"),
                "port": self.port or None, "state": self.state, "restarts": self.restarts,
                "last_exit": self.last_exit, "log": str(self.log)}


class LocalMesh:
    """The lab's mesh on 127.0.0.1 behind a real Envoy. See the package docstring for the API."""

    def __init__(self, params: CanaryParams | None = None, *, replicas: Mapping[str, int] | None = None,
                 state_dir: Path | str | None = None, documents: Sequence[Mapping[str, Any]] | None = None,
                 ingress_port: int = 0, grpc_port: int = 0, admin_port: int = 0, envoy: str | None = None,
                 concurrency: int = 1, startup_timeout: float = 60.0, python: str = sys.executable) -> None:
        self.params = params or CanaryParams()
        self.replicas = {**DEFAULT_REPLICAS, **(replicas or {})}
        self.documents = [dict(d) for d in documents] if documents is not None else None
        self._own_dir = state_dir is None
        self.state_dir = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="splitproof-mesh-"))
        self.requested = {"ingress": ingress_port, "grpc": grpc_port, "admin": admin_port}
        self.envoy_arg = envoy
        self.concurrency = concurrency
        self.startup_timeout = startup_timeout
        self.python = python
        self.files = ConfigFiles(self.state_dir / "xds")
        self.logs = self.state_dir / "logs"
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._runs: list[_Run] = []
        self._envoy: subprocess.Popen[bytes] | None = None
        self._envoy_ref: dict[str, Any] = {}
        self._envoy_restarts = 0
        self._envoy_next = 0.0
        self._envoy_backoff = BACKOFF_START
        self._bound: dict[str, Any] = {}

    # --- public API ------------------------------------------------------------------------------------------

    def __enter__(self) -> LocalMesh:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def ingress_url(self) -> str:
        port = (self._bound.get("gateway") or {}).get(str(GATEWAY_PORT))
        if not port:
            raise NotRunningError("the local ingress is not listening (no Gateway selects it on port 80)")
        return f"http://{LOOPBACK}:{port}"

    @property
    def grpc_entry(self) -> str:
        return f"{LOOPBACK}:{self._bound['services'][self.params.service]}"

    @property
    def admin_url(self) -> str:
        return str(self._bound["admin_url"])

    def mesh_address(self, service: str) -> str:
        """The outbound ("sidecar") listener of any mesh service, e.g. ``productcatalogservice``."""
        return f"{LOOPBACK}:{self._bound['services'][service]}"

    def start(self) -> LocalMesh:
        """Start everything and return once Envoy and every instance are ready (SetupError otherwise)."""
        if self._thread is not None:
            raise SetupError("this LocalMesh was already started")
        self._preflight()
        self._thread = threading.Thread(target=self._supervise, name="mesh-supervisor", daemon=True)
        self._thread.start()
        try:
            self._started.wait()
        except BaseException:  # Ctrl-C while starting (a `with` block has no __exit__ yet): stop what started
            self.stop()
            raise
        if self._error is not None:
            self._thread.join()
            if self._own_dir:
                shutil.rmtree(self.state_dir, ignore_errors=True)
            raise self._error
        return self

    def stop(self) -> None:
        """Stop every process this mesh started (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._own_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def set_weights(self, weights: Mapping[str, int] | int) -> float:
        """New weights (``{"production": 50, "canary": 50}`` or the canary percentage); returns once Envoy serves
        them (seconds taken). Envoy is not restarted; in-flight and concurrent requests are not failed."""
        mapping = canary_weights(weights) if isinstance(weights, int) else dict(weights)
        took = change(self.state_dir, weights=mapping)
        self.params = self.params.with_weights(mapping)
        return took

    def apply(self, params: CanaryParams | None = None,
              documents: Sequence[Mapping[str, Any]] | None = None) -> float:
        """Enforce new params (templates re-rendered) or new Istio documents; returns once Envoy serves them."""
        took = change(self.state_dir, params=params, documents=documents)
        if params is not None:
            self.params = params
        if documents is not None:
            self.documents = [dict(d) for d in documents]
        return took

    def status(self) -> MeshStatus:
        return mesh_status(self.state_dir)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until every instance is ready again (after a crash) and Envoy has their endpoints."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = read_state(self.state_dir) or {}
            if state.get("instances") and all(i.get("state") == "ready" for i in state["instances"]):
                return
            time.sleep(0.05)
        raise WaitTimeoutError(f"timed out after {timeout:g}s waiting for every instance to be ready")

    # --- startup -----------------------------------------------------------------------------------------------

    def check(self) -> None:
        """Every user mistake detectable before starting anything: config, Envoy binary, ports, a running mesh."""
        self.params.validate()
        validate_replicas(self.replicas)
        self.binary = find_envoy(self.envoy_arg)
        for what, port in self.requested.items():
            if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
                raise InputError(f"{what} port must be 0 (any free port) or 1-65535, got {port!r}")
        render(self._initial_state(), self.files, [])  # InputError for unsupported fields
        _refuse_running(self.state_dir, read_state(self.state_dir))
        for what, port in self.requested.items():
            if port and not bindable(LOOPBACK, port):
                raise PortInUseError(f"{what} port {LOOPBACK}:{port} is already in use")

    def _preflight(self) -> None:
        self.check()
        with locked(self.state_dir):
            old = read_state(self.state_dir)
            if old is not None:
                _refuse_running(self.state_dir, old)
                cleanup_processes(old)
            write_state(self.state_dir, self._initial_state())

    def _initial_state(self) -> dict[str, Any]:
        plan = plan_instances(self.params, self.replicas)
        lds = {"gateway": {str(GATEWAY_PORT): self.requested["ingress"]},
               "services": {s.name: (self.requested["grpc"] if s.name == self.params.service else 0)
                            for s in services(self.params)}}
        return {
            "format": FORMAT,
            "status": "starting",
            "started_at": _now(),
            "supervisor": proc_ref(os.getpid()),
            "params": params_to_json(self.params),
            "documents": self.documents,
            "replicas": self.replicas,
            "ports": {"requested": self.requested, "lds": lds, "bound": {}},
            "envoy": {"binary": self.binary, "restarts": 0},
            "instances": [_Run(spec, self.logs / f"{spec.name}.log").to_json() for spec in plan],
            "pids": [],
            "warnings": [],
        }

    def _supervise(self) -> None:
        try:
            self._startup()
        except BaseException as exc:  # reported to start() in the caller's thread
            self._error = exc
            self._teardown()
            self._started.set()
            return
        self._started.set()
        try:
            while not self._stop.wait(TICK):
                try:
                    self._tick()
                except Exception as exc:  # a transient failure (e.g. Envoy slow to confirm) must not end the mesh
                    self._note_error(exc)
        finally:
            self._teardown()

    def _note_error(self, exc: Exception) -> None:
        with contextlib.suppress(Exception), locked(self.state_dir):
            state = read_state(self.state_dir)
            if state is not None:
                state["supervisor_error"] = f"{_now()} {type(exc).__name__}: {exc}"
                write_state(self.state_dir, state)

    def _startup(self) -> None:
        self._start_envoy(first=True)
        plan = plan_instances(self.params, self.replicas)
        self._runs = [_Run(spec, self.logs / f"{spec.name}.log") for spec in plan]
        for run in self._runs:
            self._launch(run)
        deadline = time.monotonic() + self.startup_timeout
        while not all(run.state == "ready" for run in self._runs):
            if self._stop.is_set():
                raise SetupError("stopped while starting")
            for run in self._runs:
                if run.state == "starting":
                    outcome = self._check_starting(run)
                    if outcome == "exited":
                        raise SetupError(f"{run.spec.name} exited with code {run.proc.returncode if run.proc else '?'}"
                                         f" while starting: {log_tail(run.log, 1) or 'no output'}")
            if time.monotonic() > deadline:
                waiting = ", ".join(r.spec.name for r in self._runs if r.state != "ready")
                raise WaitTimeoutError(f"timed out after {self.startup_timeout:g}s waiting for {waiting} "
                                       f"(logs in {self.logs})")
            time.sleep(TICK / 2)
        self._sync(status="ready", apply_config=True)

    def _spawn_argv(self, spec: InstanceSpec) -> list[str]:
        svc = self._bound["services"]
        return spec.argv(0, catalog_addr=f"{LOOPBACK}:{svc[CATALOG]}",
                         recommendation_addr=f"{LOOPBACK}:{svc[self.params.service]}", python=self.python)

    def _launch(self, run: _Run) -> None:
        private_dir(run.log.parent)
        run.log_offset = run.log.stat().st_size if run.log.exists() else 0
        run.proc = spawn(self._spawn_argv(run.spec), run.log, env={"PYTHONUNBUFFERED": "1"})
        run.ref = proc_ref(run.proc.pid)
        run.port = 0
        run.state = "starting"
        run.started = time.monotonic()
        self._record_pid(run.ref)

    def _check_starting(self, run: _Run) -> str:
        """'exited', 'ready' or 'waiting'."""
        assert run.proc is not None
        if run.proc.poll() is not None:
            return "exited"
        if not run.port:
            try:
                with open(run.log, "rb") as fh:
                    fh.seek(run.log_offset)
                    ready = parse_ready(fh.read().decode("utf-8", "replace"), run.spec.kind)
            except OSError:
                ready = None
            if ready:
                run.port = ready[1]
        if run.port:
            addr = f"{LOOPBACK}:{run.port}"
            healthy = (http_ok(f"http://{addr}/_healthz") if run.spec.kind == "frontend"
                       else grpc_healthy(addr, timeout=0.5))
            if healthy:
                run.state = "ready"
                run.ready_since = time.monotonic()
                return "ready"
        if time.monotonic() - run.started > INSTANCE_START_TIMEOUT:
            run.proc.kill()
            run.proc.wait()
            return "exited"
        return "waiting"

    def _start_envoy(self, first: bool) -> None:
        """(Re)start Envoy on the xDS files. The first start resolves ephemeral listener ports; a restart reuses
        them (listeners are written with the bound ports), so clients keep their addresses."""
        with locked(self.state_dir):
            state = read_state(self.state_dir) or {}
            if not first:
                state["ports"]["lds"] = {"gateway": self._bound["gateway"], "services": self._bound["services"]}
            cfg = render(state, self.files)
            self.files.write_listeners(cfg)
            self.files.write_clusters(cfg)
            self.files.write_routes(cfg)
            boot = self.state_dir / "envoy-bootstrap.json"
            write_private(boot, json.dumps(envoy_mod.bootstrap(self.files, self.requested["admin"],
                                                               f"splitproof-{os.getpid()}"), indent=1))
            addr_file = self.state_dir / "envoy-admin-address"
            with contextlib.suppress(FileNotFoundError):
                addr_file.unlink()
            log = self.logs / "envoy.log"
            argv = envoy_mod.envoy_argv(self.binary, boot, addr_file, self.state_dir / "envoy-base-id",
                                        self.concurrency)
            self._envoy = spawn(argv, log)
            self._envoy_ref = proc_ref(self._envoy.pid)
            self._record_pid(self._envoy_ref, state)
            try:
                self._await_envoy(state, cfg, addr_file, log)
            except BaseException:
                # never leave a half-started Envoy (not ready, or missing a listener): the next tick retries
                self._envoy.kill()
                self._envoy.wait()
                raise

    def _await_envoy(self, state: dict[str, Any], cfg: EnvoyConfig, addr_file: Path, log: Path) -> None:
        """Wait for /ready, resolve the bound listener ports, record them (caller holds the lock)."""
        assert self._envoy is not None
        deadline = time.monotonic() + ENVOY_START_TIMEOUT
        admin: Admin | None = None
        while admin is None or not admin.ready():
            if self._envoy.poll() is not None:
                tail = log_tail(log, 2)
                if "ddress already in use" in tail:
                    raise PortInUseError(f"admin port {self.requested['admin']} is already in use")
                raise SetupError(f"envoy exited with code {self._envoy.returncode}: {tail}")
            if time.monotonic() > deadline:
                raise WaitTimeoutError(f"timed out after {ENVOY_START_TIMEOUT:g}s waiting for Envoy /ready "
                                       f"({log_tail(log, 2)})")
            if admin is None and addr_file.exists() and addr_file.read_text().strip():
                admin = Admin("http://" + addr_file.read_text().strip())
            time.sleep(0.01)
        bound = admin.listener_ports()
        lds = state["ports"]["lds"]
        gateway = {k: bound.get(ingress_listener_name(int(k))) for k in lds["gateway"]}
        svc = {k: bound.get(mesh_listener_name(k)) for k in lds["services"]}
        expected = {l_["name"] for l_ in cfg.listeners}
        missing = [name for name in expected if name not in bound]
        if missing:
            wanted = {ingress_listener_name(int(k)): v for k, v in lds["gateway"].items()}
            wanted.update({mesh_listener_name(k): v for k, v in lds["services"].items()})
            where = ", ".join(f"{LOOPBACK}:{wanted.get(name)} ({name})" for name in sorted(missing))
            raise PortInUseError(f"Envoy could not listen on {where}: address already in use (see {log})")
        self._bound = {"gateway": {k: v for k, v in gateway.items() if v},
                       "services": {k: v for k, v in svc.items() if v}, "admin_url": admin.url}
        state["ports"]["bound"] = self._bound
        state["envoy"] = {**state.get("envoy", {}), **self._envoy_ref, "admin_url": admin.url,
                          "restarts": self._envoy_restarts, "log": str(log)}
        state["warnings"] = cfg.warnings
        write_state(self.state_dir, state)

    # --- supervision -------------------------------------------------------------------------------------------

    def _tick(self) -> None:
        now = time.monotonic()
        changed = False   # the set of ready instances (or Envoy) changed: re-render the clusters
        touched = False   # something to record in the state
        if self._envoy is not None and self._envoy.poll() is not None:
            self._envoy_restarts += 1
            self._envoy = None
            self._envoy_next = now + self._envoy_backoff
            self._envoy_backoff = min(self._envoy_backoff * 2, BACKOFF_MAX)
            touched = True
        if self._envoy is None and now >= self._envoy_next:
            try:
                self._start_envoy(first=False)
                changed = True
            except SplitproofError:
                self._envoy_next = time.monotonic() + self._envoy_backoff
                self._envoy_backoff = min(self._envoy_backoff * 2, BACKOFF_MAX)
        for run in self._runs:
            if run.state == "starting":
                outcome = self._check_starting(run)
                if outcome == "ready":
                    changed = True
                elif outcome == "exited":
                    self._crashed(run, now)
                    touched = True
            elif run.state == "ready":
                if run.proc is not None and run.proc.poll() is not None:
                    self._crashed(run, now)
                    changed = True  # its endpoint leaves Envoy's clusters right away
                elif now - run.ready_since > BACKOFF_RESET_AFTER:
                    run.backoff = BACKOFF_START
            elif run.state == "backoff" and now >= run.next_start:
                self._launch(run)
                touched = True
        if changed or touched:
            self._sync(apply_config=changed)

    def _crashed(self, run: _Run, now: float) -> None:
        run.last_exit = run.proc.returncode if run.proc else None
        run.proc = None
        run.restarts += 1
        run.state = "backoff"
        run.next_start = now + run.backoff
        run.backoff = min(run.backoff * 2, BACKOFF_MAX)

    def _record_pid(self, ref: dict[str, Any], state: dict[str, Any] | None = None) -> None:
        """Remember every child for `local down` (dead ones are dropped: a crash loop must not grow the state)."""
        def add(st: dict[str, Any]) -> None:
            st["pids"] = [r for r in st.get("pids", []) if same_process(r)] + [ref]

        if state is not None:
            add(state)
            return
        with locked(self.state_dir):
            st = read_state(self.state_dir)
            if st is not None:
                add(st)
                write_state(self.state_dir, st)

    def _sync(self, status: str | None = None, apply_config: bool = False) -> None:
        """Record the instances in the state (and, when ``apply_config``, give Envoy the ready ones)."""
        with locked(self.state_dir):
            state = read_state(self.state_dir)
            if state is None:
                return
            state["instances"] = [run.to_json() for run in self._runs]
            state["envoy"] = {**state.get("envoy", {}), **self._envoy_ref, "restarts": self._envoy_restarts}
            if self._envoy is None:
                state["envoy"]["pid"] = None
            if apply_config:
                reconfigure(self.state_dir, state, wait=self._envoy is not None and self._envoy.poll() is None)
            if status:
                state["status"] = status
            write_state(self.state_dir, state)

    def _teardown(self) -> None:
        """Stop every child (instances and Envoy together), then forget the state."""
        with contextlib.suppress(Exception), locked(self.state_dir):
            state = read_state(self.state_dir)
            if state is not None:
                state["status"] = "stopping"
                write_state(self.state_dir, state)
        procs = [run.proc for run in self._runs if run.proc is not None]
        if self._envoy is not None:
            procs.append(self._envoy)
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for run in self._runs:
            run.proc = None
            run.state = "stopped"
        self._envoy = None
        with contextlib.suppress(Exception), locked(self.state_dir):
            state = read_state(self.state_dir)
            if state is not None:
                cleanup_processes(state)
                remove_state(self.state_dir)


def _refuse_running(state_dir: Path, state: Mapping[str, Any] | None) -> None:
    if state is not None and same_process(state.get("supervisor")):
        raise SetupError(f"a local mesh is already running in {state_dir} (supervisor pid "
                         f"{state['supervisor'].get('pid')}): `canary-setup local down` first")


def cleanup_processes(state: Mapping[str, Any]) -> list[int]:
    """Terminate every process the state ever recorded that still runs (by PID + start time); return them."""
    refs = [state.get("envoy"), *state.get("instances", []), *state.get("pids", [])]
    killed = []
    for ref in refs:
        if ref and same_process(ref):
            terminate(ref)
            killed.append(int(ref["pid"]))
    return killed


# ---------------------------------------------------------------------------------------------------------------
# detached supervisor process


def _signal_stop(event: threading.Event) -> None:
    def handler(signum: int, frame: object) -> None:
        event.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m setup.mesh.supervisor")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--launch", required=True, help="JSON file with the LocalMesh arguments")
    args = parser.parse_args(argv)
    os.umask(0o077)  # this process only runs the mesh: everything it creates in the state dir is owner-only
    stop = threading.Event()
    _signal_stop(stop)
    try:
        spec = json.loads(Path(args.launch).read_text(encoding="utf-8"))
        params = params_from_json(spec.pop("params"))
        mesh = LocalMesh(params, state_dir=args.state_dir, **spec)
        mesh.start()
    except SplitproofError as exc:
        print(f"canary-setup: error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    print(f"READY local mesh {mesh.grpc_entry}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        mesh.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
