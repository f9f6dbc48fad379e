"""The typed state of one local mesh -- what ``state.json`` holds -- and its JSON form.

Everything a second process needs (``local status|weights|down``) is here: what the mesh enforces (params, or the
user's own Istio documents), where it listens, and every process it runs, recorded as ``ProcRef`` (PID + start
time) so that ``down`` never kills a recycled PID. ``to_json``/``from_json`` keep the file format of FORMAT 1
key for key; setup.mesh.statedir reads and writes the file under the state lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from splitproof.setup.manifests import CanaryParams
from splitproof.setup.mesh.envoy_build import ListenerPorts
from splitproof.setup.mesh.faults import InstanceFaults, faults_from_json, faults_to_json
from splitproof.setup.net import LOOPBACK
from splitproof.setup.proc import ProcRef

FORMAT = 1
GATEWAY_PORT = 80  # the lab's Gateway server port, mapped to the local ingress port

# What an instance is doing (the supervisor's view; ``status`` shows "dead" for one whose process is gone).
PENDING, STARTING, READY, BACKOFF, STOPPED = "pending", "starting", "ready", "backoff", "stopped"
# The mesh as a whole.
MESH_STARTING, MESH_READY, MESH_STOPPING = "starting", "ready", "stopping"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def params_to_json(params: CanaryParams) -> dict[str, Any]:
    data = asdict(params)
    data["subsets"] = {k: dict(v) for k, v in params.subsets.items()}
    data["weights"] = dict(params.weights)
    return data


def params_from_json(data: Mapping[str, Any]) -> CanaryParams:
    return CanaryParams(**dict(data))


def _ref_json(ref: ProcRef | None) -> dict[str, int | None]:
    return ref.to_json() if ref else {"pid": None, "ticks": None}


@dataclass
class Listeners:
    """Local ports of the mesh's listeners: Gateway server port -> local port, service -> the local port of its
    outbound ("sidecar") listener. 0 = any free port (then resolved from what Envoy bound)."""

    gateway: dict[int, int] = field(default_factory=dict)
    services: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"gateway": {str(k): v for k, v in self.gateway.items()}, "services": dict(self.services)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Listeners:
        data = data or {}
        return cls({int(k): int(v) for k, v in (data.get("gateway") or {}).items()},
                   {str(k): int(v) for k, v in (data.get("services") or {}).items()})

    def for_translation(self, address: str = LOOPBACK) -> ListenerPorts:
        return ListenerPorts(gateway=dict(self.gateway), services=dict(self.services), address=address)


@dataclass
class Ports:
    """Requested ports (``--ingress-port`` & co.), what the listeners are written with, and what Envoy bound."""

    requested: dict[str, int]                  # ingress | grpc | admin
    listen: Listeners                          # written into the listeners ("lds" in state.json)
    bound: Listeners | None = None             # resolved once Envoy listens
    admin_url: str | None = None

    def to_json(self) -> dict[str, Any]:
        bound = {**self.bound.to_json(), "admin_url": self.admin_url} if self.bound is not None else {}
        return {"requested": dict(self.requested), "lds": self.listen.to_json(), "bound": bound}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Ports:
        bound = data.get("bound") or {}
        return cls({str(k): int(v) for k, v in (data.get("requested") or {}).items()},
                   Listeners.from_json(data.get("lds")),
                   Listeners.from_json(bound) if bound else None, bound.get("admin_url"))

    def ports_in_use(self) -> list[int]:
        """Every port the running mesh listens on (what ``down`` waits to see closed)."""
        if self.bound is None:
            return []
        ports = [*self.bound.gateway.values(), *self.bound.services.values()]
        if self.admin_url and self.admin_url.rpartition(":")[2].isdigit():
            ports.append(int(self.admin_url.rpartition(":")[2]))
        return ports


@dataclass
class EnvoyRecord:
    binary: str | None = None
    ref: ProcRef | None = None
    restarts: int = 0
    admin_url: str | None = None
    log: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"binary": self.binary, "restarts": self.restarts, **_ref_json(self.ref)}
        if self.admin_url is not None:
            out["admin_url"] = self.admin_url
        if self.log is not None:
            out["log"] = self.log
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> EnvoyRecord:
        data = data or {}
        return cls(data.get("binary"), ProcRef.from_json(data), int(data.get("restarts") or 0),
                   data.get("admin_url"), data.get("log"))


@dataclass
class TelemetryRecord:
    """The mesh's telemetry (setup.mesh.prometheus): the exporter, and Prometheus when started with --prometheus."""

    exporter_url: str | None = None
    prometheus_url: str | None = None
    prometheus: ProcRef | None = None
    prometheus_restarts: int = 0
    access_logs: str | None = None  # the directory of the TEXT access logs

    def to_json(self) -> dict[str, Any]:
        return {"exporter_url": self.exporter_url, "prometheus_url": self.prometheus_url,
                "prometheus": _ref_json(self.prometheus), "prometheus_restarts": self.prometheus_restarts,
                "access_logs": self.access_logs}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> TelemetryRecord:
        data = data or {}
        return cls(data.get("exporter_url"), data.get("prometheus_url"), ProcRef.from_json(data.get("prometheus")),
                   int(data.get("prometheus_restarts") or 0), data.get("access_logs"))


@dataclass
class InstanceRecord:
    """One local "pod" as the supervisor last recorded it."""

    name: str
    service: str
    kind: str
    labels: dict[str, str]
    log: str
    ref: ProcRef | None = None
    port: int | None = None
    state: str = PENDING
    restarts: int = 0
    last_exit: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "service": self.service, "kind": self.kind, "labels": dict(self.labels),
                **_ref_json(self.ref), "port": self.port, "state": self.state, "restarts": self.restarts,
                "last_exit": self.last_exit, "log": self.log}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InstanceRecord:
        return cls(str(data["name"]), str(data["service"]), str(data["kind"]), dict(data.get("labels") or {}),
                   str(data.get("log") or ""), ProcRef.from_json(data),
                   int(data["port"]) if data.get("port") else None, str(data.get("state") or PENDING),
                   int(data.get("restarts") or 0), data.get("last_exit"))

    @property
    def address(self) -> str | None:
        return f"{LOOPBACK}:{self.port}" if self.port else None


@dataclass
class MeshState:
    """Everything ``state.json`` records about one local mesh."""

    params: CanaryParams
    ports: Ports
    supervisor: ProcRef | None
    documents: list[dict[str, Any]] | None = None   # the user's own Istio documents, else the templates'
    replicas: dict[str, int] = field(default_factory=dict)
    status: str = MESH_STARTING
    started_at: str = field(default_factory=now)
    applied_at: str | None = None
    envoy: EnvoyRecord = field(default_factory=EnvoyRecord)
    instances: list[InstanceRecord] = field(default_factory=list)
    pids: list[ProcRef] = field(default_factory=list)    # every child ever started and maybe still running
    warnings: list[str] = field(default_factory=list)    # the translation's
    supervisor_error: str | None = None
    faults: dict[str, InstanceFaults] = field(default_factory=dict)  # version -> injected (a bad canary)
    telemetry: TelemetryRecord = field(default_factory=TelemetryRecord)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": FORMAT,
            "status": self.status,
            "started_at": self.started_at,
            "supervisor": _ref_json(self.supervisor),
            "params": params_to_json(self.params),
            "documents": self.documents,
            "replicas": dict(self.replicas),
            "ports": self.ports.to_json(),
            "envoy": self.envoy.to_json(),
            "instances": [i.to_json() for i in self.instances],
            "pids": [r.to_json() for r in self.pids],
            "warnings": list(self.warnings),
        }
        if self.applied_at is not None:
            out["applied_at"] = self.applied_at
        if self.supervisor_error is not None:
            out["supervisor_error"] = self.supervisor_error
        if self.faults:
            out["faults"] = faults_to_json(self.faults)
        if self.telemetry.exporter_url is not None:
            out["telemetry"] = self.telemetry.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MeshState:
        """KeyError/TypeError/ValueError for a file that does not have this shape (statedir says so in one line)."""
        return cls(
            params=params_from_json(data["params"]),
            ports=Ports.from_json(data["ports"]),
            supervisor=ProcRef.from_json(data.get("supervisor")),
            documents=[dict(d) for d in data["documents"]] if data.get("documents") is not None else None,
            replicas={str(k): int(v) for k, v in (data.get("replicas") or {}).items()},
            status=str(data.get("status") or "?"),
            started_at=str(data.get("started_at") or ""),
            applied_at=data.get("applied_at"),
            envoy=EnvoyRecord.from_json(data.get("envoy")),
            instances=[InstanceRecord.from_json(i) for i in data.get("instances") or []],
            pids=[r for r in (ProcRef.from_json(p) for p in data.get("pids") or []) if r is not None],
            warnings=[str(w) for w in data.get("warnings") or []],
            supervisor_error=data.get("supervisor_error"),
            faults=faults_from_json(data.get("faults")),
            telemetry=TelemetryRecord.from_json(data.get("telemetry")),
        )

    # --- what the rest of the mesh asks of it ------------------------------------------------------------------

    def supervisor_alive(self) -> bool:
        return self.supervisor is not None and self.supervisor.alive()

    def running(self) -> bool:
        """A mesh that is (being) started and whose supervisor still runs."""
        return self.status in (MESH_READY, MESH_STARTING) and self.supervisor_alive()

    def recorded_processes(self) -> list[ProcRef]:
        """Every process this state ever recorded (Envoy, the instances, every child started since)."""
        refs = [self.envoy.ref, *(i.ref for i in self.instances), self.telemetry.prometheus, *self.pids]
        return [r for r in refs if r is not None]

    def remember(self, ref: ProcRef) -> None:
        """Record a new child for ``down``; dead ones are dropped (a crash loop must not grow the state)."""
        self.pids = [r for r in self.pids if r.alive()] + [ref]

    def ingress_url(self) -> str | None:
        port = self.ports.bound.gateway.get(GATEWAY_PORT) if self.ports.bound else None
        return f"http://{LOOPBACK}:{port}" if port else None

    def mesh_addresses(self) -> dict[str, str]:
        """Service -> "127.0.0.1:PORT" of its outbound ("sidecar") listener."""
        bound = self.ports.bound.services if self.ports.bound else {}
        return {name: f"{LOOPBACK}:{port}" for name, port in bound.items()}
