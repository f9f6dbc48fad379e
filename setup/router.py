"""The one Router interface: set the weights, read back what the proxies *serve*, wait until they serve them.

Modelled on Flagger's ``pkg/router`` (one ``Interface`` -- SetRoutes / GetRoutes -- and one implementation per
provider, https://github.com/fluxcd/flagger/blob/main/pkg/router/router.go), with one difference that is the point
of this project: the weights read back are the ones the *proxies* hold, not the ones the API object declares.

Implementations, each built from a ``Routing`` (what carries the split and in which API):

- setup.mesh.router.LocalRouter -- the local mesh: the state directory + Envoy's admin ``config_dump``;
- setup.cluster.router.ClusterRouter -- a cluster: ``kubectl apply`` of the VirtualService, then ``istioctl
  proxy-config routes`` on a frontend pod (and the ingress gateway when a gRPC gateway carries the split too).

Both read a proxy's routes the same way (setup.envoyroutes.served_split). A rollout driver needs only this
interface; each routing API is a ``Routing.kind`` the implementations handle: ``VirtualService`` (DestinationRule
subsets) or ``HTTPRoute`` (the Gateway API: per-version Services, named by their version when read back).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from splitproof.setup.errors import WaitTimeoutError
from splitproof.setup.proc import wait_until
from splitproof.verifier.istio import format_weights

Weights = dict[str, int]
VIRTUAL_SERVICE = "VirtualService"   # Istio networking.istio.io
HTTP_ROUTE = "HTTPRoute"             # the Gateway API, gateway.networking.k8s.io (per-version Services)
KINDS = (VIRTUAL_SERVICE, HTTP_ROUTE)


def normalize(weights: Mapping[str, int]) -> Weights:
    """The weights as a proxy holds them: zero weights dropped (Istio does), a lone destination carries 100."""
    kept = {k: int(v) for k, v in weights.items() if int(v) != 0}
    if len(kept) == 1:
        return {next(iter(kept)): 100}
    return kept


def proportions(weights: Mapping[str, int]) -> dict[str, float]:
    """The normalized weights as fractions (Gateway API weights are relative; Istio's sum to 100)."""
    kept = normalize(weights)
    total = sum(kept.values())
    return {k: round(v / total, 12) for k, v in kept.items()} if total else {}


def describe(weights: Mapping[str, int] | None) -> str:
    """``production=80,canary=20``; ``(no route)`` when a proxy holds none; ``(none)`` for empty weights."""
    if weights is None:
        return "(no route)"
    return format_weights(weights) or "(none)"


@dataclass(frozen=True)
class Routing:
    """What carries the split: the service whose traffic is split, in which namespace, through which API, the
    ingress gateway hosts that route it too (a gRPC gateway), and for an HTTPRoute the version each backend
    Service carries. Routers are built from this, not hard-wired."""

    service: str
    namespace: str
    kind: str = VIRTUAL_SERVICE
    gateway_hosts: tuple[str, ...] = ()
    versions: tuple[tuple[str, str], ...] = ()   # HTTPRoute: (per-version Service fqdn, version) pairs

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown routing kind {self.kind!r} (known: {', '.join(KINDS)})")

    @property
    def fqdn(self) -> str:
        return f"{self.service}.{self.namespace}.svc.cluster.local"

    @property
    def version_of(self) -> dict[str, str]:
        """{Service fqdn: version}: how a proxy's whole-service clusters are named when read back."""
        return dict(self.versions)


@dataclass(frozen=True)
class ProxyWeights:
    """What one proxy holds for the split. ``weights`` None: it holds no route for the service; ``error``: it
    could not be read; ``synced`` False: it has not yet taken the latest configuration it was given."""

    proxy: str
    weights: Weights | None
    error: str | None = None
    synced: bool = True

    def holds(self, width: int = 200) -> str:
        """What it holds, for messages (an error shortened to its last ``width`` characters)."""
        if self.error is not None:
            return f"error: {self.error[-width:]}"
        return describe(self.weights)

    def serves(self, weights: Mapping[str, int]) -> bool:
        """Holds ``weights`` in proportion (an HTTPRoute's relative weights 4:1 serve 80:20)."""
        return (self.error is None and self.synced and self.weights is not None
                and proportions(self.weights) == proportions(weights))


@dataclass(frozen=True)
class ServedWeights:
    """The weights the proxies that matter serve, next to the desired ones."""

    desired: Weights
    proxies: tuple[ProxyWeights, ...] = field(default_factory=tuple)

    @property
    def serving(self) -> bool:
        """Every proxy serves the desired weights (and there is at least one proxy)."""
        return bool(self.proxies) and all(p.serves(self.desired) for p in self.proxies)

    @property
    def weights(self) -> Weights | None:
        """The split as served by the first proxy (the one every request of the split passes)."""
        return self.proxies[0].weights if self.proxies else None

    def held(self) -> str:
        """``frontend sidecar frontend-abc holds production=80,canary=20; ingress gateway ... holds ...``."""
        return "; ".join(f"{p.proxy} holds {p.holds()}" for p in self.proxies) or "no proxy to read"


class Router(Protocol):
    """Set the split, read back what the proxies serve, wait until they serve it."""

    @property
    def routing(self) -> Routing: ...

    def set_weights(self, weights: Mapping[str, int]) -> None:
        """Declare new weights (validated first: InputError); returns without waiting for the proxies."""

    def served_weights(self) -> ServedWeights:
        """What each proxy that matters serves now, next to the declared weights."""

    def wait_served(self, weights: Mapping[str, int] | None = None, timeout: float | None = None) -> ServedWeights:
        """Return once every proxy serves ``weights`` (default: the declared ones); WaitTimeoutError after
        ``timeout`` seconds naming what each proxy holds."""


def wait_served(read: Callable[[], ServedWeights], weights: Mapping[str, int], timeout: float, *,
                interval: float, max_interval: float, hint: str = "") -> ServedWeights:
    """The wait every Router implements: poll ``read`` until every proxy serves ``weights``; WaitTimeoutError
    naming what each proxy holds (``hint`` is appended: where to look next)."""
    last: list[ServedWeights] = []

    def serving() -> bool:
        served = read()
        last[:] = [ServedWeights(dict(weights), served.proxies)]
        return last[0].serving

    try:
        wait_until(serving, timeout, "the proxies", interval, max_interval=max_interval)
    except WaitTimeoutError:
        held = last[0].held() if last else "nothing read"
        raise WaitTimeoutError(f"the proxies did not serve {describe(dict(weights))} within {timeout:g}s: "
                               f"{held}{hint}") from None
    return last[0]
