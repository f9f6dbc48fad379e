"""Step 6, the weights: the weighted VirtualService (and the gateway-bound one), applied through the ClusterRouter,
which then waits until the proxies serve them. Refuses to route before the DestinationRule defines the subsets."""

from __future__ import annotations

from splitproof.setup.cluster.context import Ctx, report
from splitproof.setup.cluster.options import SERVICE
from splitproof.setup.cluster.router import ClusterRouter, cluster_routing
from splitproof.setup.errors import SetupError
from splitproof.setup.router import describe
from splitproof.verifier.errors import InputError


def check_subsets(ctx: Ctx) -> None:
    """The live DestinationRule must exist and define every subset the weights route to (else: 503s)."""
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
