"""LocalMesh: the lab's mesh on 127.0.0.1 behind a real Envoy, as a Python object (see setup.mesh for the API).

It checks every user mistake before starting anything, writes the initial state, and runs the supervisor
(setup.mesh.supervise) in a thread of this process; weight changes go through its Router (setup.mesh.router).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from splitproof.setup.errors import NotRunningError, PortInUseError, SetupError
from splitproof.setup.manifests import CanaryParams
from splitproof.setup.mesh.envoy import find_envoy
from splitproof.setup.mesh.faults import InstanceFaults
from splitproof.setup.mesh.prometheus import find_prometheus
from splitproof.setup.mesh.reconfigure import change, render, xds_files
from splitproof.setup.mesh.router import LocalRouter
from splitproof.setup.mesh.state import GATEWAY_PORT, READY, InstanceRecord, Listeners, MeshState, Ports
from splitproof.setup.mesh.statedir import locked, read_state, write_state
from splitproof.setup.mesh.status import MeshStatus, mesh_status
from splitproof.setup.mesh.supervise import Supervisor, cleanup_processes, refuse_running
from splitproof.setup.mesh.topology import DEFAULT_REPLICAS, plan_instances, services, validate_replicas
from splitproof.setup.net import LOOPBACK, bindable
from splitproof.setup.proc import ProcRef, wait_until
from splitproof.verifier.errors import InputError
from splitproof.verifier.istio import canary_weights


class LocalMesh:
    """The lab's mesh on 127.0.0.1 behind a real Envoy. See the setup.mesh docstring for the API."""

    def __init__(self, params: CanaryParams | None = None, *, replicas: Mapping[str, int] | None = None,
                 state_dir: Path | str | None = None, documents: Sequence[Mapping[str, Any]] | None = None,
                 ingress_port: int = 0, grpc_port: int = 0, admin_port: int = 0, envoy: str | None = None,
                 concurrency: int = 1, startup_timeout: float = 60.0, python: str = sys.executable,
                 faults: Mapping[str, InstanceFaults] | None = None, prometheus: bool = False) -> None:
        self.params = params or CanaryParams()
        self.faults = {v: f for v, f in (faults or {}).items() if f.active}  # version -> injected faults
        self.replicas = {**DEFAULT_REPLICAS, **(replicas or {})}
        self.documents = [dict(d) for d in documents] if documents is not None else None
        self._own_dir = state_dir is None
        self.state_dir = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="splitproof-mesh-"))
        self.requested = {"ingress": ingress_port, "grpc": grpc_port, "admin": admin_port}
        self.envoy_arg = envoy
        self.concurrency = concurrency
        self.startup_timeout = startup_timeout
        self.python = python
        self.prometheus = prometheus
        self.router = LocalRouter(self.state_dir)
        self._supervisor: Supervisor | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._started = threading.Event()
        self._error: BaseException | None = None

    # --- public API ------------------------------------------------------------------------------------------

    def __enter__(self) -> LocalMesh:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _bound(self) -> Supervisor:
        if self._supervisor is None or self._supervisor.admin_url is None:
            raise NotRunningError("this LocalMesh is not running (use it inside `with LocalMesh(...)`)")
        return self._supervisor

    @property
    def ingress_url(self) -> str:
        port = self._bound().bound.gateway.get(GATEWAY_PORT)
        if not port:
            raise NotRunningError("the local ingress is not listening (no Gateway selects it on port 80)")
        return f"http://{LOOPBACK}:{port}"

    @property
    def grpc_entry(self) -> str:
        return self.mesh_address(self.params.service)

    @property
    def admin_url(self) -> str:
        return str(self._bound().admin_url)

    @property
    def exporter_url(self) -> str:
        """Istio's standard metrics of the mesh (``/metrics``, setup.mesh.exporter)."""
        exporter = self._bound().telemetry.exporter
        if exporter is None:
            raise NotRunningError("the mesh's exporter is not running")
        return exporter.url

    @property
    def prometheus_url(self) -> str:
        """The mesh's Prometheus (started with ``prometheus=True``)."""
        url = self._bound().telemetry.prometheus_url
        if url is None:
            raise NotRunningError("this mesh was started without Prometheus (LocalMesh(prometheus=True))")
        return url

    @property
    def access_log_dir(self) -> Path:
        """``access-<listener>.log`` files in Istio's default TEXT format."""
        return self.state_dir / "logs"

    def mesh_address(self, service: str) -> str:
        """The outbound ("sidecar") listener of any mesh service, e.g. ``productcatalogservice``."""
        return f"{LOOPBACK}:{self._bound().bound.services[service]}"

    def start(self) -> LocalMesh:
        """Start everything and return once Envoy and every instance are ready (SetupError otherwise)."""
        if self._thread is not None:
            raise SetupError("this LocalMesh was already started")
        self._preflight()
        self._supervisor = Supervisor(self.state_dir, self.params, self.replicas, binary=self.binary,
                                      admin_port=self.requested["admin"], concurrency=self.concurrency,
                                      python=self.python, startup_timeout=self.startup_timeout,
                                      faults=self.faults, prometheus=self.prometheus)
        self._thread = threading.Thread(target=self._supervisor.run, args=(self._stop, self._on_started),
                                        name="mesh-supervisor", daemon=True)
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

    def _on_started(self, error: BaseException | None) -> None:
        self._error = error
        self._started.set()

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
        start = time.monotonic()
        self.router.set_weights(mapping)
        self.router.wait_served(mapping)
        self.params = self.params.with_weights(mapping)
        return time.monotonic() - start

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
        def all_ready() -> bool:
            state = read_state(self.state_dir)
            return bool(state and state.instances and all(i.state == READY for i in state.instances))

        wait_until(all_ready, timeout, "every instance to be ready", 0.05, max_interval=0.05)

    # --- startup -----------------------------------------------------------------------------------------------

    def check(self) -> None:
        """Every user mistake detectable before starting anything: config, Envoy binary, ports, a running mesh."""
        self.params.validate()
        validate_replicas(self.replicas)
        self.binary = find_envoy(self.envoy_arg)
        if self.prometheus:
            find_prometheus()  # MissingBinaryError (exit 5) before anything starts
        for what, port in self.requested.items():
            if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
                raise InputError(f"{what} port must be 0 (any free port) or 1-65535, got {port!r}")
        render(self._initial_state(), xds_files(self.state_dir), [])  # InputError for unsupported fields
        refuse_running(self.state_dir, read_state(self.state_dir))
        for what, port in self.requested.items():
            if port and not bindable(LOOPBACK, port):
                raise PortInUseError(f"{what} port {LOOPBACK}:{port} is already in use")

    def _preflight(self) -> None:
        self.check()
        with locked(self.state_dir):
            old = read_state(self.state_dir)
            if old is not None:
                refuse_running(self.state_dir, old)
                cleanup_processes(old)
            write_state(self.state_dir, self._initial_state())

    def _initial_state(self) -> MeshState:
        listen = Listeners({GATEWAY_PORT: self.requested["ingress"]},
                           {s.name: (self.requested["grpc"] if s.name == self.params.service else 0)
                            for s in services(self.params)})
        logs = self.state_dir / "logs"
        state = MeshState(params=self.params, ports=Ports(dict(self.requested), listen),
                          supervisor=ProcRef.of(os.getpid()), documents=self.documents, replicas=dict(self.replicas),
                          faults=dict(self.faults))
        state.envoy.binary = getattr(self, "binary", None)
        state.instances = [InstanceRecord(spec.name, spec.service, spec.kind, dict(spec.labels),
                                          str(logs / f"{spec.name}.log"))
                           for spec in plan_instances(self.params, self.replicas, self.faults)]
        return state
