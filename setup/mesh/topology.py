"""The local mesh's workloads: Kubernetes-like Services and labelled instances ("pods") on 127.0.0.1.

Pure data and planning; nothing here starts a process (see supervisor.py).

- Services mirror the Online Boutique manifests: ``frontend`` port 80 (http), ``productcatalogservice`` 3550 (grpc),
  the canaried service (``recommendationservice``) on ``CanaryParams.port`` (grpc).
- Instances carry pod labels: ``app`` like upstream, plus ``version`` on the canaried service (the lab's patch).
  DestinationRule subsets select instances by these labels, exactly as Istio selects pods.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from splitproof.setup.manifests import CanaryParams
from splitproof.setup.mesh.faults import InstanceFaults
from splitproof.setup.proc import python_argv
from splitproof.verifier.boutique import MAX_RESPONSES
from splitproof.verifier.errors import InputError

CATALOG = "productcatalogservice"
FRONTEND = "frontend"
CATALOG_PORT = 3550
FRONTEND_PORT = 80

# Version name -> MAX_RESPONSES of the recommendation instances carrying that `version` label.
VERSION_MAX_RESPONSES = dict(MAX_RESPONSES)
DEFAULT_REPLICAS = {"production": 1, "canary": 1, CATALOG: 1, FRONTEND: 1}
_REPLICA_ALIASES = {"catalog": CATALOG, "productcatalog": CATALOG}
MAX_REPLICAS = 8  # 2 shared cores: more would only measure the scheduler


@dataclass(frozen=True)
class Service:
    """A Kubernetes Service as the mesh sees it: one port, and a protocol from the port name (grpc -> HTTP/2)."""

    name: str
    namespace: str
    port: int
    protocol: str  # "grpc" or "http"

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.namespace}.svc.cluster.local"


@dataclass(frozen=True)
class Endpoint:
    """A ready instance of a service: where it listens and the labels its "pod" carries."""

    service: str
    address: str
    port: int
    labels: Mapping[str, str]
    instance: str = ""
    internal: str = ""  # an Envoy internal listener to reach it through (its inbound hop, setup.mesh.inbound)


@dataclass(frozen=True)
class InstanceSpec:
    """One local "pod": which boutique server to run and with which labels."""

    name: str
    service: str       # Service.name it backs
    kind: str          # setup.boutique server: catalog | recommendation | frontend
    labels: Mapping[str, str] = field(default_factory=dict)
    max_responses: int | None = None
    faults: InstanceFaults | None = None  # injected by this version's instances (setup.mesh.faults)

    def argv(self, port: int, *, catalog_addr: str, recommendation_addr: str,
             python: str | None = None) -> list[str]:
        """The launcher command line (setup.boutique); ``port`` 0 = ephemeral, the server prints READY host:port."""
        argv = python_argv("-m", "splitproof.setup.boutique", self.kind, "--host", "127.0.0.1", "--port", str(port),
                           python=python)
        if self.kind == "recommendation":
            argv += ["--catalog-addr", catalog_addr, "--max-responses", str(self.max_responses)]
            if self.faults is not None:
                argv += self.faults.serve_args()
        elif self.kind == "frontend":
            argv += ["--recommendation-addr", recommendation_addr, "--catalog-addr", catalog_addr]
        return argv


def services(params: CanaryParams) -> list[Service]:
    """The mesh's services in ``params.namespace``."""
    ns = params.namespace
    return [
        Service(FRONTEND, ns, FRONTEND_PORT, "http"),
        Service(CATALOG, ns, CATALOG_PORT, "grpc"),
        Service(params.service, ns, params.port, "grpc"),
    ]


def parse_replicas(spec: str | None) -> dict[str, int]:
    """``production=2,canary=1`` -> full replica map (defaults for what is not named). InputError on bad input."""
    out = dict(DEFAULT_REPLICAS)
    if not spec:
        return out
    seen: set[str] = set()
    for part in spec.split(","):
        name, sep, value = part.strip().partition("=")
        name = _REPLICA_ALIASES.get(name.strip(), name.strip())
        if not sep or not name:
            raise InputError(f"replicas must look like production=1,canary=1, got {spec!r}")
        if name in seen:
            raise InputError(f"replicas: {name!r} given twice in {spec!r}")
        seen.add(name)
        try:
            out[name] = int(value)
        except ValueError:
            raise InputError(f"replicas for {name!r} must be an integer, got {value.strip()!r}") from None
    validate_replicas(out)
    return out


def validate_replicas(replicas: Mapping[str, int]) -> None:
    for name, count in replicas.items():
        if name not in DEFAULT_REPLICAS:
            known = ", ".join(DEFAULT_REPLICAS)
            raise InputError(f"replicas: unknown workload {name!r} (known: {known})")
        low = 0 if name in VERSION_MAX_RESPONSES else 1
        if isinstance(count, bool) or not isinstance(count, int) or not low <= count <= MAX_REPLICAS:
            raise InputError(f"replicas for {name!r} must be an integer from {low} to {MAX_REPLICAS}, got {count!r}")


def plan_instances(params: CanaryParams, replicas: Mapping[str, int] | None = None,
                   faults: Mapping[str, InstanceFaults] | None = None) -> list[InstanceSpec]:
    """Every local instance, catalog first (the others call it), frontend last. Names look like pod names.
    ``faults``: version -> what its recommendation instances inject (a bad canary)."""
    full = {**DEFAULT_REPLICAS, **(replicas or {})}
    validate_replicas(full)
    out: list[InstanceSpec] = []
    for i in range(full[CATALOG]):
        out.append(InstanceSpec(f"{CATALOG}-{i}", CATALOG, "catalog", {"app": CATALOG}))
    for version, max_responses in VERSION_MAX_RESPONSES.items():
        for i in range(full[version]):
            out.append(InstanceSpec(f"{params.service}-{version}-{i}", params.service, "recommendation",
                                    {"app": params.service, "version": version}, max_responses,
                                    (faults or {}).get(version)))
    for i in range(full[FRONTEND]):
        out.append(InstanceSpec(f"{FRONTEND}-{i}", FRONTEND, "frontend", {"app": FRONTEND}))
    return out
