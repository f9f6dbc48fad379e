"""Step 4, exposure: the frontend Gateway and VirtualServices, the egress ServiceEntries, and with
``--grpc-gateway`` a GRPC server on the ingress gateway (its weighted route comes with the weights step)."""

from __future__ import annotations

from splitproof.setup.cluster import resources
from splitproof.setup.cluster.context import Ctx, ensure


def step_expose(ctx: Ctx) -> None:
    docs = resources.ingress_documents(ctx.opts) + resources.egress_documents(ctx.opts)
    if ctx.opts.grpc_gateway:
        docs += resources.grpc_gateway_documents(ctx.opts)
    for doc in docs:
        ensure(ctx, doc)
    if ctx.opts.grpc_gateway:
        ctx.ui.info(f"gRPC gateway host: {ctx.opts.grpc_authority} (the weighted route bound to it is applied by "
                    "the weights step, after the DestinationRule)")
