"""The lab's nine steps as data -- number, name, what each changes, the function that runs it -- and running them:
``up`` runs the provisioning ones (1-6) in order; each is also its own command.

Every step reads the live state first (``kubectl get ... -o json``, ``gcloud ... describe``, ``kind get clusters``)
and changes only what differs, so a second ``up`` changes nothing and says so. A failure names the step, the
command and its stderr, and says how to resume (``--from-step``). One module per step: provider (1),
istio_install (2), app (3), expose (4), canary (5, images), weights (6, router), status (7), loadtest (8),
teardown (9).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from splitproof.setup.cluster.app import step_app
from splitproof.setup.cluster.canary import step_canary
from splitproof.setup.cluster.context import Ctx
from splitproof.setup.cluster.expose import step_expose
from splitproof.setup.cluster.istio_install import step_istio
from splitproof.setup.cluster.loadtest import step_loadtest
from splitproof.setup.cluster.options import Options
from splitproof.setup.cluster.provider import resolve_context, step_cluster
from splitproof.setup.cluster.runner import command_line
from splitproof.setup.cluster.status import step_status
from splitproof.setup.cluster.teardown import step_down
from splitproof.setup.cluster.weights import step_weights
from splitproof.setup.errors import SetupError
from splitproof.verifier.errors import InputError, SplitproofError


@dataclass(frozen=True)
class Step:
    number: int
    name: str
    title: str
    changes: str
    run: Callable[[Ctx], Any]
    in_up: bool = True


class StepFailed(SetupError):
    def __init__(self, step: Step, total: int, cause: SplitproofError, resume: str) -> None:
        self.step, self.cause = step, cause
        super().__init__(f"step {step.number}/{total} '{step.name}' failed: {cause}\n  resume with: {resume}",
                         cause.exit_code)


STEPS: tuple[Step, ...] = (
    Step(1, "cluster", "cluster and kube context",
         "gke: enables container.googleapis.com, creates the network and the regional cluster, get-credentials; "
         "kind: creates a kind cluster; existing: nothing (checks the context is reachable)", step_cluster),
    Step(2, "istio", "Istio demo profile, ingress gateway, CRDs",
         "istioctl install --set profile=demo (+ ingress loadBalancerIP with --static-ip); waits for istiod and "
         "the ingress gateway; checks the CRDs; prints the ingress address", step_istio),
    Step(3, "app", "namespace, sidecar injection, Online Boutique",
         "creates the namespace, labels it istio-injection=enabled, applies the Online Boutique manifests, waits "
         "for every rollout, verifies every pod has istio-proxy", step_app),
    Step(4, "expose", "Gateway, frontend VirtualServices, egress ServiceEntries",
         "applies the frontend Gateway and VirtualService (--host), the internal frontend VirtualService, the "
         "egress ServiceEntries, and with --grpc-gateway a GRPC Gateway server", step_expose),
    Step(5, "canary", "production label, DestinationRule, canary Deployment",
         "patches version=production onto the recommendationservice pod template, applies the DestinationRule, "
         "builds/pushes the canary image if needed, applies the canary Deployment, waits until ready", step_canary),
    Step(6, "weights", "weighted route, wait until the proxies serve it",
         "applies the weighted VirtualService (and the gateway-bound one with --grpc-gateway), then polls "
         "istioctl proxy-config routes until the proxies hold the weights", step_weights),
    Step(7, "status", "declared vs served weights, sidecars, istioctl analyze",
         "nothing (read-only)", step_status, in_up=False),
    Step(8, "loadtest", "Locust inside the mesh, then verify-split",
         "creates a Locust master Job, workers and a locustfile ConfigMap in the namespace, copies the results "
         "out, removes them, runs verify-split", step_loadtest, in_up=False),
    Step(9, "down", "remove in reverse order",
         "deletes the routes, canary, DestinationRule, production label, exposure and namespace; Istio with "
         "--uninstall-istio; the cluster only with --delete-cluster", step_down, in_up=False),
)
STEP_NAMES = tuple(s.name for s in STEPS)
UP_STEPS = tuple(s for s in STEPS if s.in_up)


def step_named(name: str) -> Step:
    for step in STEPS:
        if step.name == name:
            return step
    raise InputError(f"no step named {name!r} (steps: {', '.join(STEP_NAMES)})")


def check_plan(opts: Options, steps: Sequence[Step]) -> None:
    """Refuse, before anything runs, a combination a later step would refuse halfway through."""
    names = {s.name for s in steps}
    if "canary" in names and not opts.canary_image and opts.provider == "existing" and not opts.image_repo:
        raise InputError("the canary step needs an image: pass --canary-image IMAGE, or --image-repo REPO where "
                          "the image docker builds can be pushed and pulled by the cluster")


def resume_command(opts: Options, step: Step, single: bool) -> str:
    argv = ["canary-setup", *([step.name] if single else ["up", "--from-step", step.name]), *opts.to_argv()]
    return command_line(argv)


def run_steps(ctx: Ctx, steps: Sequence[Step], single: bool = False) -> int:
    """Run ``steps`` in order; a failure becomes StepFailed naming the step and the resume command."""
    total = len(STEPS)
    code = 0
    for step in steps:
        ctx.ui.header(step.number, total, step.name, step.title)
        try:
            if step.name != "cluster":
                resolve_context(ctx)
            result = step.run(ctx)
        except StepFailed:
            raise
        except SplitproofError as exc:
            raise StepFailed(step, total, exc, resume_command(ctx.opts, step, single)) from None
        if isinstance(result, int) and result:
            code = result
    return code

