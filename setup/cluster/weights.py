"""Step 6, the weights: the weighted VirtualService (and the gateway-bound one) -- or the HTTPRoute with
``--routing gateway-api`` -- applied through the ClusterRouter, which then waits until the proxies serve them.
Refuses to route before the DestinationRule defines the subsets (the per-version Services exist)."""

from __future__ import annotations

from splitproof.setup.cluster.context import Ctx, report
from splitproof.setup.cluster.options import SERVICE
from splitproof.setup.cluster.router import ClusterRouter, cluster_routing
from splitproof.setup.errors import SetupError
from splitproof.setup.router import describe
from splitproof.verifier.errors import InputError


def check_version_services(ctx: Ctx) -> None:
    """Gateway API routing: every per-version Service the weights send to must exist (else: 500s)."""
    params = ctx.opts.params()
    missing = [params.version_service(v) for v, w in ctx.opts.weights.items()
               if w and ctx.kube.get("Service", params.version_service(v), ctx.ns) is None]
    if missing and not ctx.dry:
        raise SetupError(f"Service {', '.join(missing)} not found in {ctx.ns}: run `canary-setup canary --routing "
                         "gateway-api` first (an HTTPRoute to a missing backend answers 500)")


def check_subsets(ctx: Ctx) -> None:
    """The live DestinationRule must exist and define every subset the weights route to (else: 503s)."""
    if ctx.opts.gateway_api:
        check_version_services(ctx)
        return
    rule = ctx.kube.get("DestinationRule", SERVICE, ctx.ns)
    if rule is None and not ctx.dry:
        raise SetupError(f"DestinationRule {SERVICE} not found in {ctx.ns}: run `canary-setup canary` first "
                         "(a route to subsets no DestinationRule defines gets 503s)")
    if rule is not None:
        defined = {str(s.get("name")) for s in rule.get("spec", {}).get("subsets") or []}
        undefined = [name for name, weight in ctx.opts.weights.items() if weight and name not in defined]
        if undefined:
            raise InputError(f"the live DestinationRule {SERVICE} defines no subset {', '.join(undefined)} "
                             f"(it has: {', '.join(sorted(defined)) or 'none'})")


def step_weights(ctx: Ctx) -> None:
    check_subsets(ctx)
    router = ClusterRouter(ctx, cluster_routing(ctx))
    router.set_weights(ctx.opts.weights)
    served = router.wait_served()
    for proxy in served.proxies:
        report(ctx, "serving", f"{describe(served.desired)} on {proxy.proxy}")
