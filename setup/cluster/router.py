"""The cluster's Router (setup.router): the weights are declared with ``kubectl apply`` of the weighted VirtualService
(and of the one bound to the gRPC gateway, same weights), or of the HTTPRoute (``--routing gateway-api``: its
backends, the per-version Services, are named by their version when read back); what is served is read with
``istioctl proxy-config routes <pod> -o json`` on the proxies that apply the split -- a frontend pod's sidecar (its
calls to the service are split there) and, when a gateway route carries the split too, the ingress gateway. Mesh
routes never live on the gateway, so the gateway is only asked for the hosts bound to it.
Reference: https://istio.io/latest/docs/reference/commands/istioctl/#istioctl-proxy-config-route
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from splitproof.setup.cluster import resources
from splitproof.setup.cluster.context import Ctx, ensure
from splitproof.setup.cluster.declared import fqdn
from splitproof.setup.cluster.live import running_pod
from splitproof.setup.cluster.options import FRONTEND_SELECTOR, INGRESS_SELECTOR, ISTIO_NAMESPACE, SERVICE, Options
from splitproof.setup.cluster.runner import READ, WAIT
from splitproof.setup.envoyroutes import served_split
from splitproof.setup.errors import SetupError
from splitproof.setup.router import (
    HTTP_ROUTE,
    VIRTUAL_SERVICE,
    ProxyWeights,
    Routing,
    ServedWeights,
    Weights,
    describe,
    normalize,
    wait_served,
)

PROXY_POLL_S = 0.5  # between `istioctl proxy-config routes` rounds: each is a call against the cluster
READ_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ProxyTarget:
    """A proxy to ask: which one (for messages), its pod, and the hosts whose routes carry the split there."""

    label: str
    pod: str
    namespace: str
    hosts: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.label} {self.pod}"


def _virtual_services(opts: Options, routing: Routing) -> list[dict[str, Any]]:
    return resources.routing_documents(opts, routing.gateway_hosts)


def _http_routes(opts: Options, routing: Routing) -> list[dict[str, Any]]:
    return [resources.http_route(opts)]


# Routing kind -> the documents that declare the split in that API.
DOCUMENTS: dict[str, Callable[[Options, Routing], list[dict[str, Any]]]] = {VIRTUAL_SERVICE: _virtual_services,
                                                                            HTTP_ROUTE: _http_routes}


def routing_of(opts: Options, namespace: str, grpc_live: Mapping[str, Any] | None) -> Routing:
    """The lab's routing: the mesh VirtualService of the service, plus the gateway-bound one when --grpc-gateway is
    on or was exposed before (``grpc_live``: then it keeps the host it was exposed with) -- or with
    ``--routing gateway-api`` the HTTPRoute, whose per-version Services name the versions read back."""
    if opts.gateway_api:
        params = opts.params()
        versions = tuple((fqdn(params.version_service(v), namespace), v) for v in params.subsets)
        return Routing(SERVICE, namespace, HTTP_ROUTE, versions=versions)
    hosts: tuple[str, ...] = ()
    if opts.grpc_gateway:
        hosts = (opts.grpc_authority,)
    elif grpc_live is not None:
        hosts = tuple((grpc_live.get("spec") or {}).get("hosts") or [opts.grpc_authority])
    return Routing(SERVICE, namespace, gateway_hosts=hosts)


def cluster_routing(ctx: Ctx) -> Routing:
    """``routing_of`` with the live gateway-bound VirtualService looked up (only without --grpc-gateway)."""
    live = None if ctx.opts.grpc_gateway or ctx.opts.gateway_api else ctx.kube.get(
        "VirtualService", resources.GRPC_VS_NAME, ctx.ns)
    return routing_of(ctx.opts, ctx.ns, live)


class ClusterRouter:
    """Router over a cluster through kubectl and istioctl (the Ctx's runner: dry runs print instead)."""

    def __init__(self, ctx: Ctx, routing: Routing) -> None:
        self.ctx = ctx
        self._routing = routing
        self.desired: Weights = dict(ctx.opts.weights)

    @property
    def routing(self) -> Routing:
        return self._routing

    def documents(self, weights: Mapping[str, int]) -> list[dict[str, Any]]:
        """The routing documents carrying ``weights`` in the routing's API (rendered from the same templates as the
        local mesh's); InputError for weights the params refuse."""
        opts = replace(self.ctx.opts, weights=dict(weights))
        opts.params().validate()
        return DOCUMENTS[self._routing.kind](opts, self._routing)

    def set_weights(self, weights: Mapping[str, int]) -> None:
        """``kubectl apply`` each routing document that differs from the live one (reported line by line)."""
        for doc in self.documents(weights):
            ensure(self.ctx, doc)
        self.desired = dict(weights)

    def targets(self, *, required: bool = True) -> list[ProxyTarget]:
        """The frontend sidecar and, with gateway hosts, the ingress gateway. A missing pod is a SetupError when
        ``required``, else left out (status reports it)."""
        ctx, kube = self.ctx, self.ctx.kube
        found: list[ProxyTarget] = []
        frontend = running_pod(kube.list("Pod", ctx.ns, FRONTEND_SELECTOR)) or ("<frontend-pod>" if ctx.dry else None)
        if frontend is not None:
            found.append(ProxyTarget("frontend sidecar", frontend, ctx.ns,
                                     (fqdn(self._routing.service, self._routing.namespace),)))
        elif required:
            raise SetupError(f"no running frontend pod in {ctx.ns} to check the route on (`kubectl get pods -n "
                             f"{ctx.ns}`)")
        if self._routing.gateway_hosts:
            gateway = running_pod(kube.list("Pod", ISTIO_NAMESPACE, INGRESS_SELECTOR)) or (
                "<ingressgateway-pod>" if ctx.dry else None)
            if gateway is not None:
                found.append(ProxyTarget("ingress gateway", gateway, ISTIO_NAMESPACE, self._routing.gateway_hosts))
            elif required:
                raise SetupError("no running istio-ingressgateway pod in istio-system")
        return found

    def routes_argv(self, target: ProxyTarget) -> list[str]:
        return self.ctx.kube.istioctl("proxy-config", "routes", target.pod, "-n", target.namespace, "-o", "json")

    def read(self, target: ProxyTarget, kind: str = READ) -> ProxyWeights:
        """What one proxy serves: the route carrying the split for its hosts (setup.envoyroutes.served_split)."""
        result = self.ctx.runner.run(self.routes_argv(target), kind=kind, check=False, timeout=READ_TIMEOUT_S)
        if not result.ok:
            return ProxyWeights(target.name, None, error=result.stderr.strip())
        try:
            return ProxyWeights(target.name, served_split(result.stdout, target.hosts, self._routing.version_of))
        except ValueError:
            return ProxyWeights(target.name, None, error="unreadable proxy-config output")

    def served_weights(self, targets: list[ProxyTarget] | None = None) -> ServedWeights:
        targets = self.targets(required=False) if targets is None else targets
        return ServedWeights(dict(self.desired), tuple(self.read(t) for t in targets))

    def wait_served(self, weights: Mapping[str, int] | None = None, timeout: float | None = None) -> ServedWeights:
        """Poll every proxy until each holds ``weights`` (Istio's form: zero weights dropped); WaitTimeoutError
        after ``timeout`` (default --proxy-timeout) naming what each proxy holds."""
        ctx = self.ctx
        want = normalize(self.desired if weights is None else weights)
        timeout = ctx.opts.proxy_timeout if timeout is None else timeout
        targets = self.targets()
        if ctx.dry:
            for target in targets:
                ctx.runner.run(self.routes_argv(target), kind=WAIT)
            ctx.ui.info(f"(polled until every proxy above routes {describe(want)}; up to {timeout:g}s)")
            return ServedWeights(want, tuple(ProxyWeights(t.name, None) for t in targets))
        with ctx.ui.waiting(f"waiting for the proxies to serve {describe(want)}"):
            return wait_served(lambda: ServedWeights(want, tuple(self.read(t, WAIT) for t in targets)), want,
                               timeout, interval=PROXY_POLL_S, max_interval=PROXY_POLL_S,
                               hint=" (check `istioctl proxy-status`)")
