"""The supervisor of one local mesh: it owns every child process -- Envoy and the boutique instances.

It starts them, restarts a crashed instance with exponential backoff (like a kubelet; the instance's endpoint
leaves the Envoy clusters while it is down, as a NotReady pod leaves its EDS), restarts a crashed Envoy on the same
ports, and stops them all. Every child is started with ``die_with_parent`` (setup.proc.spawn), so nothing outlives
the supervisor's process even when it is SIGKILLed. Every change it makes is recorded in the state directory
(setup.mesh.statedir) under the lock, for ``canary-setup local status|weights|down`` in other processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from splitproof.setup import net
from splitproof.setup.errors import PortInUseError, SetupError, WaitTimeoutError
from splitproof.setup.manifests import CanaryParams
from splitproof.setup.mesh import envoy as envoy_mod
from splitproof.setup.mesh.admin import Admin
from splitproof.setup.mesh.envoy_build import EnvoyConfig, ingress_listener_name, mesh_listener_name
from splitproof.setup.mesh.faults import InstanceFaults
from splitproof.setup.mesh.inbound import is_internal
from splitproof.setup.mesh.prometheus import MeshTelemetry
from splitproof.setup.mesh.reconfigure import envoy_log, mesh_telemetry, reconfigure, render, xds_files
from splitproof.setup.mesh.state import (
    BACKOFF,
    MESH_STOPPING,
    PENDING,
    READY,
    STARTING,
    STOPPED,
    EnvoyRecord,
    InstanceRecord,
    Listeners,
    MeshState,
    now,
)
from splitproof.setup.mesh.statedir import locked, read_state, remove_state, write_state
from splitproof.setup.mesh.topology import CATALOG, InstanceSpec, plan_instances
from splitproof.setup.net import LOOPBACK
from splitproof.setup.privatefs import private_dir, write_private
from splitproof.setup.proc import Backoff, Child, ProcRef, ReadyLine, log_tail, spawn, stop_all, wait_until
from splitproof.verifier.errors import SplitproofError

INSTANCE_START_TIMEOUT = 30.0
ENVOY_START_TIMEOUT = 15.0
TICK = 0.05


@dataclass
class InstanceRun:
    """One instance's current process and its restart bookkeeping."""

    spec: InstanceSpec
    log: Path
    child: Child | None = None
    ready: ReadyLine | None = None
    ref: ProcRef | None = None
    port: int = 0
    state: str = PENDING
    restarts: int = 0
    last_exit: int | None = None
    started: float = 0.0
    ready_since: float = 0.0
    next_start: float = 0.0
    backoff: Backoff = field(default_factory=Backoff)

    def record(self) -> InstanceRecord:
        return InstanceRecord(self.spec.name, self.spec.service, self.spec.kind, dict(self.spec.labels),
                              str(self.log), self.ref, self.port or None, self.state, self.restarts, self.last_exit)


def cleanup_processes(state: MeshState) -> list[int]:
    """Terminate every process the state ever recorded that still runs (by PID + start time); return them."""
    killed = []
    for ref in state.recorded_processes():
        if ref.alive():
            ref.terminate()
            killed.append(ref.pid)
    return killed


def refuse_running(state_dir: Path, state: MeshState | None) -> None:
    """SetupError when a live supervisor already runs a mesh in ``state_dir``."""
    if state is not None and state.supervisor_alive():
        pid = state.supervisor.pid if state.supervisor else None
        raise SetupError(f"a local mesh is already running in {state_dir} (supervisor pid {pid}): "
                         f"`canary-setup local down` first")


class Supervisor:
    """Starts, restarts and stops the children of the mesh in ``state_dir`` (whose state must exist)."""

    def __init__(self, state_dir: Path, params: CanaryParams, replicas: dict[str, int], *, binary: str,
                 admin_port: int, concurrency: int, python: str, startup_timeout: float,
                 faults: Mapping[str, InstanceFaults] | None = None,
                 prometheus: bool = False, prometheus_binary: str | None = None) -> None:
        self.state_dir = state_dir
        self.params = params
        self.binary = binary
        self.admin_port = admin_port
        self.concurrency = concurrency
        self.python = python
        self.startup_timeout = startup_timeout
        self.files = xds_files(state_dir)
        self.logs = state_dir / "logs"
        self.runs = [InstanceRun(spec, self.logs / f"{spec.name}.log")
                     for spec in plan_instances(params, replicas, faults)]
        self.envoy: Child | None = None
        self.envoy_ref: ProcRef | None = None
        self.envoy_restarts = 0
        self.envoy_next = 0.0
        self.envoy_backoff = Backoff()
        self.bound = Listeners()
        self.admin_url: str | None = None
        with locked(state_dir):
            planned = mesh_telemetry(state_dir, self._state())
        self.telemetry = MeshTelemetry(state_dir, planned, params.namespace, prometheus=prometheus,
                                       binary=prometheus_binary)

    # --- the loop ----------------------------------------------------------------------------------------------

    def run(self, stop: threading.Event, started: Callable[[BaseException | None], None]) -> None:
        """Start everything, report to ``started`` (None or the error), supervise until ``stop``, stop everything."""
        try:
            self.startup(stop)
        except BaseException as exc:  # reported to the starting thread
            self.teardown()
            started(exc)
            return
        started(None)
        try:
            while not stop.wait(TICK):
                try:
                    self.tick()
                except Exception as exc:  # a transient failure (e.g. Envoy slow to confirm) must not end the mesh
                    self.note_error(exc)
        finally:
            self.teardown()

    def startup(self, stop: threading.Event) -> None:
        self.telemetry.fresh_log()
        exporter_url = self.telemetry.start_exporter()
        self.start_envoy(first=True)
        self.telemetry.set_envoy_admin(self.admin_url)
        ref = self.telemetry.start_prometheus()
        self.record_telemetry(exporter_url, ref)
        for run in self.runs:
            self.launch(run)

        def all_ready() -> bool:
            if stop.is_set():
                raise SetupError("stopped while starting")
            for run in self.runs:
                if run.state == STARTING and self.check_starting(run) == "exited":
                    code = run.last_exit if run.last_exit is not None else "?"
                    raise SetupError(f"{run.spec.name} exited with code {code} while starting: "
                                     f"{log_tail(run.log, 1) or 'no output'}")
            return all(run.state == READY for run in self.runs)

        try:
            wait_until(all_ready, self.startup_timeout, "the instances", TICK / 2, max_interval=TICK / 2)
        except WaitTimeoutError:
            waiting = ", ".join(r.spec.name for r in self.runs if r.state != READY)
            raise WaitTimeoutError(f"timed out after {self.startup_timeout:g}s waiting for {waiting} "
                                   f"(logs in {self.logs})") from None
        self.sync(status=READY, apply_config=True)

    def tick(self) -> None:
        now_ = time.monotonic()
        changed = False   # the set of ready instances (or Envoy) changed: re-render the clusters
        touched = False   # something to record in the state
        if self.envoy is not None and self.envoy.poll() is not None:
            self.envoy_restarts += 1
            self.envoy = None
            self.envoy_next = now_ + self.envoy_backoff.next_delay()
            touched = True
        if self.envoy is None and now_ >= self.envoy_next:
            try:
                self.start_envoy(first=False)
                self.telemetry.set_envoy_admin(self.admin_url)
                changed = True
            except SplitproofError:
                self.envoy_next = time.monotonic() + self.envoy_backoff.next_delay()
        restarted = self.telemetry.tick()
        if restarted is not None:
            self.record_telemetry(None, restarted)
        for run in self.runs:
            if run.state == STARTING:
                outcome = self.check_starting(run)
                changed |= outcome == "ready"
                touched |= outcome == "exited"
                if outcome == "exited":
                    self.crashed(run, now_)
            elif run.state == READY:
                if run.child is not None and run.child.poll() is not None:
                    self.crashed(run, now_)
                    changed = True  # its endpoint leaves Envoy's clusters right away
                else:
                    run.backoff.ran_for(now_ - run.ready_since)
            elif run.state == BACKOFF and now_ >= run.next_start:
                self.launch(run)
                touched = True
        if changed or touched:
            self.sync(apply_config=changed)

    # --- instances ---------------------------------------------------------------------------------------------

    def launch(self, run: InstanceRun) -> None:
        private_dir(run.log.parent)
        argv = run.spec.argv(0, catalog_addr=f"{LOOPBACK}:{self.bound.services[CATALOG]}",
                             recommendation_addr=f"{LOOPBACK}:{self.bound.services[self.params.service]}",
                             python=self.python)
        run.ready = ReadyLine(run.log, run.spec.kind)
        run.child = spawn(argv, log=run.log, env={"PYTHONUNBUFFERED": "1"}, die_with_parent=True)
        run.ref = ProcRef.of(run.child.pid)
        run.port = 0
        run.state = STARTING
        run.started = time.monotonic()
        self.remember(run.ref)

    def check_starting(self, run: InstanceRun) -> str:
        """'exited', 'ready' or 'waiting': READY line, then its health check (gRPC health, frontend /_healthz)."""
        assert run.child is not None and run.ready is not None
        if run.child.poll() is not None:
            run.last_exit = run.child.returncode
            return "exited"
        found = run.ready.poll()
        if found:
            run.port = found[1]
            addr = f"{LOOPBACK}:{run.port}"
            healthy = (net.http_ok(f"http://{addr}/_healthz") if run.spec.kind == "frontend"
                       else net.grpc_healthy(addr, timeout=0.5))
            if healthy:
                run.state = READY
                run.ready_since = time.monotonic()
                return "ready"
        if time.monotonic() - run.started > INSTANCE_START_TIMEOUT:
            run.child.kill()
            run.last_exit = run.child.wait()
            return "exited"
        return "waiting"

    def crashed(self, run: InstanceRun, now_: float) -> None:
        run.last_exit = run.child.returncode if run.child else None
        run.child = None
        run.restarts += 1
        run.state = BACKOFF
        run.next_start = now_ + run.backoff.next_delay()

    # --- Envoy -------------------------------------------------------------------------------------------------

    def start_envoy(self, first: bool) -> None:
        """(Re)start Envoy on the xDS files. The first start resolves ephemeral listener ports; a restart reuses
        them (listeners are written with the bound ports), so clients keep their addresses."""
        with locked(self.state_dir):
            state = self._state()
            if not first:
                state.ports.listen = Listeners(dict(self.bound.gateway), dict(self.bound.services))
            cfg = render(state, self.files)
            self.files.write_all(cfg)
            boot = self.state_dir / "envoy-bootstrap.json"
            write_private(boot, json.dumps(envoy_mod.bootstrap(self.files, self.admin_port,
                                                               f"splitproof-{os.getpid()}"), indent=1))
            addr_file = self.state_dir / "envoy-admin-address"
            with contextlib.suppress(FileNotFoundError):
                addr_file.unlink()
            log = envoy_log(self.state_dir)
            private_dir(log.parent)
            private_dir(self.state_dir / "telemetry")  # the access logs' JSON lines (setup.mesh.inbound)
            argv = envoy_mod.envoy_argv(self.binary, boot, addr_file, self.state_dir / "envoy-base-id",
                                        self.concurrency)
            self.envoy = spawn(argv, log=log, die_with_parent=True)
            self.envoy_ref = ProcRef.of(self.envoy.pid)
            state.remember(self.envoy_ref)
            try:
                self._await_envoy(state, cfg, addr_file, log)
            except BaseException:
                # never leave a half-started Envoy (not ready, or missing a listener): the next tick retries
                self.envoy.kill()
                self.envoy.wait()
                raise

    def _await_envoy(self, state: MeshState, cfg: EnvoyConfig, addr_file: Path, log: Path) -> None:
        """Wait for /ready, resolve the bound listener ports, record them (caller holds the lock)."""
        assert self.envoy is not None
        envoy = self.envoy
        found: list[Admin] = []

        def ready() -> Admin | None:
            if envoy.poll() is not None:
                tail = log_tail(log, 2)
                if "ddress already in use" in tail:
                    raise PortInUseError(f"admin port {self.admin_port} is already in use")
                raise SetupError(f"envoy exited with code {envoy.returncode}: {tail}")
            if not found and addr_file.exists() and addr_file.read_text().strip():
                found.append(Admin("http://" + addr_file.read_text().strip()))
            return found[0] if found and found[0].ready() else None

        try:
            admin = wait_until(ready, ENVOY_START_TIMEOUT, "Envoy /ready", 0.01, max_interval=0.02)
        except WaitTimeoutError:
            raise WaitTimeoutError(f"timed out after {ENVOY_START_TIMEOUT:g}s waiting for Envoy /ready "
                                   f"({log_tail(log, 2)})") from None
        bound = admin.listener_ports()
        listen = state.ports.listen
        gateway = {k: bound.get(ingress_listener_name(k)) for k in listen.gateway}
        services = {k: bound.get(mesh_listener_name(k)) for k in listen.services}
        missing = [name for name in (l_["name"] for l_ in cfg.listeners if not is_internal(l_)) if name not in bound]
        if missing:
            wanted = {ingress_listener_name(k): v for k, v in listen.gateway.items()}
            wanted.update({mesh_listener_name(k): v for k, v in listen.services.items()})
            where = ", ".join(f"{LOOPBACK}:{wanted.get(name)} ({name})" for name in sorted(missing))
            raise PortInUseError(f"Envoy could not listen on {where}: address already in use (see {log})")
        self.bound = Listeners({k: v for k, v in gateway.items() if v}, {k: v for k, v in services.items() if v})
        self.admin_url = admin.url
        # a restart keeps the admin address too (as a sidecar keeps :15000/:15090): one Prometheus series per stat
        self.admin_port = self.admin_port or int(admin.url.rpartition(":")[2])
        state.ports.bound = self.bound
        state.ports.admin_url = admin.url
        state.envoy = EnvoyRecord(state.envoy.binary, self.envoy_ref, self.envoy_restarts, admin.url, str(log))
        state.warnings = cfg.warnings
        write_state(self.state_dir, state)

    # --- the state ---------------------------------------------------------------------------------------------

    def _state(self) -> MeshState:
        state = read_state(self.state_dir)
        if state is None:
            raise SetupError(f"the state of the local mesh in {self.state_dir} disappeared")
        return state

    def remember(self, ref: ProcRef) -> None:
        """Record a new child for `local down`."""
        with locked(self.state_dir):
            state = read_state(self.state_dir)
            if state is not None:
                state.remember(ref)
                write_state(self.state_dir, state)

    def sync(self, status: str | None = None, apply_config: bool = False) -> None:
        """Record the instances in the state (and, when ``apply_config``, give Envoy the ready ones)."""
        with locked(self.state_dir):
            state = read_state(self.state_dir)
            if state is None:
                return
            state.instances = [run.record() for run in self.runs]
            state.envoy.ref = self.envoy_ref if self.envoy is not None else None
            state.envoy.restarts = self.envoy_restarts
            if apply_config:
                reconfigure(self.state_dir, state, wait=self.envoy is not None and self.envoy.poll() is None)
            if status:
                state.status = status
            write_state(self.state_dir, state)

    def record_telemetry(self, exporter_url: str | None, prometheus: ProcRef | None) -> None:
        with locked(self.state_dir):
            state = read_state(self.state_dir)
            if state is not None:
                self.telemetry.record(state, exporter_url, prometheus, self.logs)
                write_state(self.state_dir, state)

    def note_error(self, exc: Exception) -> None:
        with contextlib.suppress(Exception), locked(self.state_dir):
            state = read_state(self.state_dir)
            if state is not None:
                state.supervisor_error = f"{now()} {type(exc).__name__}: {exc}"
                write_state(self.state_dir, state)

    def teardown(self) -> None:
        """Stop every child (instances and Envoy together), then forget the state."""
        with contextlib.suppress(Exception), locked(self.state_dir):
            state = read_state(self.state_dir)
            if state is not None:
                state.status = MESH_STOPPING
                write_state(self.state_dir, state)
        children = [run.child for run in self.runs if run.child is not None]
        if self.envoy is not None:
            children.append(self.envoy)
        children += self.telemetry.children()
        try:
            stop_all(children)
            self.telemetry.stop()
        finally:
            for run in self.runs:
                run.child = None
                run.state = STOPPED
            self.envoy = None
            with contextlib.suppress(Exception), locked(self.state_dir):
                state = read_state(self.state_dir)
                if state is not None:
                    cleanup_processes(state)
                    remove_state(self.state_dir)
