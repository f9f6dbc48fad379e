"""The cluster workflow's settings as immutable values (built from the command line, rendered back for resume)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from splitproof.setup.manifests import CanaryParams
from splitproof.verifier.istio import format_weights

PROVIDERS = ("existing", "gke", "kind")

# Online Boutique release applied by default (pinned: the manifests change between releases).
OB_RELEASE = "v0.10.2"
OB_MANIFESTS_URL = ("https://raw.githubusercontent.com/GoogleCloudPlatform/microservices-demo/"
                    f"{OB_RELEASE}/release/kubernetes-manifests.yaml")

SERVICE = "recommendationservice"
SERVICE_PORT = 8080
PRODUCTION_DEPLOYMENT = "recommendationservice"
CANARY_DEPLOYMENT = "recommendationservice-canary"
ISTIO_NAMESPACE = "istio-system"
INGRESS_NAME = "istio-ingressgateway"
INGRESS_SELECTOR = "istio=ingressgateway"
FRONTEND_SELECTOR = "app=frontend"

# The GKE cluster of the lab (section 0).
LAB_CLUSTER = "istio-traffic-lab"
LAB_REGION = "us-central1"
LAB_MACHINE_TYPE = "e2-standard-2"


def _default_weights() -> dict[str, int]:
    return {"production": 80, "canary": 20}


@dataclass(frozen=True)
class Options:
    provider: str = "existing"
    context: str | None = None
    cluster_name: str = LAB_CLUSTER
    region: str = LAB_REGION
    project: str | None = None
    network: str = "default"
    num_nodes: int = 1
    machine_type: str = LAB_MACHINE_TYPE
    release_channel: str = "stable"
    static_ip: str | None = None
    prometheus_addon: bool = False   # step 2 also installs Istio's Prometheus addon (setup.cluster.promaddon)
    namespace: str = "online-boutique"
    manifests: str = OB_MANIFESTS_URL
    host: str = "*"
    grpc_gateway: bool = False
    grpc_host: str | None = None
    weights: Mapping[str, int] = field(default_factory=_default_weights)
    canary_image: str | None = None
    boutique_src: str | None = None
    image_repo: str | None = None
    api_version: str = "networking.istio.io/v1"
    wait_timeout: float = 300.0   # rollouts, Istio install readiness
    proxy_timeout: float = 120.0  # proxies serving the new weights
    dry_run: bool = False
    verbose: bool = False

    @property
    def kube_context(self) -> str | None:
        """The context every kubectl/istioctl call uses (None: the current context), before any lookup."""
        if self.context:
            return self.context
        if self.provider == "kind":
            return f"kind-{self.cluster_name}"
        return None

    @property
    def grpc_authority(self) -> str:
        """The host the gRPC gateway server answers (a distinct host, so the frontend's route keeps the rest)."""
        if self.grpc_host:
            return self.grpc_host
        return "recommendations.local" if self.host in ("*", "") else f"recommendations.{self.host}"

    @property
    def manifests_is_url(self) -> bool:
        return self.manifests.startswith(("http://", "https://"))

    def params(self) -> CanaryParams:
        return CanaryParams(namespace=self.namespace, host=self.host, service=SERVICE, port=SERVICE_PORT,
                            weights=dict(self.weights), api_version=self.api_version)

    def to_argv(self) -> list[str]:
        """The options that differ from the defaults, as command-line flags (for 'resume with ...' hints)."""
        defaults = Options()
        out: list[str] = []
        for f in fields(self):
            value, default = getattr(self, f.name), getattr(defaults, f.name)
            if f.name in ("dry_run",) or value == default:
                continue
            flag = "--" + f.name.replace("_", "-")
            if f.name == "weights":
                out += ["--weights", format_weights(value)]
            elif isinstance(value, bool):
                out.append(flag)
            elif isinstance(value, float):
                out += [flag, f"{value:g}"]
            else:
                out += [flag, str(value)]
        return out


@dataclass(frozen=True)
class DownOptions:
    """``canary-setup down``: what else to remove besides the app."""

    delete_cluster: bool = False
    uninstall_istio: bool = False


DEFAULT_CLASSES = ("ShopperUser", "RecommendationUser")


@dataclass(frozen=True)
class LoadtestOptions:
    """``canary-setup loadtest``: the Locust run inside the mesh."""

    users: int = 20
    spawn_rate: float = 20.0
    duration: str = "60s"
    workers: int = 2
    results: str = "out/cluster-results.jsonl"
    locustfile: str | None = None  # default: loadtest/boutique.py of this checkout
    image: str | None = None       # default: this project's image (built and pushed/loaded when docker exists)
    keep: bool = False
    classes: tuple[str, ...] = DEFAULT_CLASSES
    startup_timeout: float = 300.0


def repo_root() -> Path:
    """The source checkout this package runs from (the project's Dockerfile builds from it)."""
    return Path(__file__).resolve().parents[2]
