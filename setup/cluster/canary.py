"""Step 5, the canary: the ``version: production`` label on the production pod template, the DestinationRule
(before anything routes to its subsets) or with ``--routing gateway-api`` the per-version Services, the canary
Deployment (built if needed), both rollouts."""

from __future__ import annotations

from splitproof.setup.cluster import resources
from splitproof.setup.cluster.context import Ctx, ensure, report
from splitproof.setup.cluster.images import canary_image_plan
from splitproof.setup.cluster.kube import CREATED, UNCHANGED, covers, desired_fields, ref
from splitproof.setup.cluster.options import CANARY_DEPLOYMENT, PRODUCTION_DEPLOYMENT
from splitproof.setup.cluster.runner import CHANGE
from splitproof.setup.errors import SetupError


def step_canary(ctx: Ctx) -> None:
    opts, kube = ctx.opts, ctx.kube
    production = kube.get("Deployment", PRODUCTION_DEPLOYMENT, ctx.ns)
    if production is None and not ctx.dry:
        raise SetupError(f"deployment {PRODUCTION_DEPLOYMENT} not found in {ctx.ns}: run `canary-setup app` first")
    labels = (production or {}).get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {}
    want = resources.subset_labels(opts, "production")
    label_text = ",".join(f"{k}={v}" for k, v in want.items())
    if production is not None and all(labels.get(k) == v for k, v in want.items()):
        report(ctx, UNCHANGED, f"deployment/{PRODUCTION_DEPLOYMENT} pod template label {label_text}")
    else:
        ctx.runner.run(kube.kubectl("patch", "deployment", PRODUCTION_DEPLOYMENT, "-n", ctx.ns, "--type=json",
                                    "-p", resources.production_patch(opts)),
                       kind=CHANGE, what=f"labelling {PRODUCTION_DEPLOYMENT} {label_text}")
        report(ctx, "patched", f"deployment/{PRODUCTION_DEPLOYMENT} pod template label {label_text}")
    with ctx.ui.waiting(f"waiting for {PRODUCTION_DEPLOYMENT}"):
        kube.rollout_status(PRODUCTION_DEPLOYMENT, ctx.ns, opts.wait_timeout)

    # The backends go in before anything routes to them (else: 503s): DestinationRule subsets, or with the
    # Gateway API one Service per version.
    if opts.gateway_api:
        for doc in resources.version_services(opts):
            ensure(ctx, doc)
    else:
        ensure(ctx, resources.destination_rule(opts))

    plan = canary_image_plan(ctx)
    doc = resources.canary_deployment(opts, plan.image, plan.pull_policy, plan.env)
    live = kube.get("Deployment", CANARY_DEPLOYMENT, ctx.ns)
    if live is not None and covers(live, desired_fields(doc)):
        report(ctx, UNCHANGED, f"{ref(doc)} ({plan.image})")
    else:
        if plan.build:
            plan.build(ctx)
        kube.apply([doc], what=f"applying {ref(doc)}")
        report(ctx, CREATED if live is None else "updated", f"{ref(doc)} ({plan.image}, from {plan.source})")
    with ctx.ui.waiting(f"waiting for {CANARY_DEPLOYMENT}"):
        kube.rollout_status(CANARY_DEPLOYMENT, ctx.ns, opts.wait_timeout)
    report(ctx, "waited", f"deployment/{PRODUCTION_DEPLOYMENT} and deployment/{CANARY_DEPLOYMENT} ready")
