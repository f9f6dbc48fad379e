"""Step 9, ``canary-setup down``: undo the steps in reverse order; Istio and the cluster only when asked to."""

from __future__ import annotations

from splitproof.setup.cluster import resources
from splitproof.setup.cluster.context import Ctx
from splitproof.setup.cluster.kube import ref
from splitproof.setup.cluster.options import CANARY_DEPLOYMENT, ISTIO_NAMESPACE, PRODUCTION_DEPLOYMENT, SERVICE
from splitproof.setup.cluster.provider import gcloud
from splitproof.setup.cluster.runner import CHANGE, CommandFailed
from splitproof.verifier.errors import InputError

LOCUST_PREFIX = "locust"
GONE_MARKERS = ("doesn't have a resource type", "the server could not find the requested resource")


def _delete(ctx: Ctx, kind: str, name: str, namespace: str | None, what: str | None = None) -> None:
    try:
        result = ctx.kube.delete(kind, name, namespace)
    except CommandFailed as exc:
        if any(marker in exc.result.stderr for marker in GONE_MARKERS):  # its CRD is gone with Istio
            ctx.ui.done("absent", what or f"{kind}/{name}")
            return
        raise
    gone = ctx.dry or "deleted" in result.stdout
    ctx.ui.done(("would" if ctx.dry else "removed") if gone else "absent", what or f"{kind}/{name}")


def step_down(ctx: Ctx) -> None:
    opts, kube, ns = ctx.opts, ctx.kube, ctx.ns
    if ctx.down.delete_cluster and opts.provider == "existing":
        raise InputError("--delete-cluster deletes only clusters canary-setup creates (--provider gke or kind)")
    namespace = kube.get("Namespace", ns)
    if namespace is None and not ctx.dry:
        ctx.ui.done("absent", f"namespace {ns} (nothing of the app to remove)")
    else:
        # 8 loadtest leftovers, 6 weights, 5 canary, 4 expose, 3 app -- in that order.
        leftovers = ctx.runner.run(kube.kubectl("delete", "job,deployment,service,configmap", "-l",
                                                f"app={LOCUST_PREFIX}", "-n", ns, "--ignore-not-found"),
                                   kind=CHANGE, timeout=120, what="deleting loadtest leftovers")
        if ctx.dry or "deleted" in leftovers.stdout:
            ctx.ui.done("would" if ctx.dry else "removed", "loadtest leftovers (app=locust)")
        if opts.gateway_api:
            _delete(ctx, "HTTPRoute", SERVICE, ns)
        else:
            for name in (resources.GRPC_VS_NAME, SERVICE):
                _delete(ctx, "VirtualService", name, ns)
        _delete(ctx, "Deployment", CANARY_DEPLOYMENT, ns)
        if opts.gateway_api:   # the Gateway API CRDs stay: other routes may use them
            for doc in resources.version_services(opts):
                _delete(ctx, "Service", str(doc["metadata"]["name"]), ns)
        else:
            _delete(ctx, "DestinationRule", SERVICE, ns)
        production = kube.get("Deployment", PRODUCTION_DEPLOYMENT, ns)
        labels = (production or {}).get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {}
        if ctx.dry:
            labels = resources.subset_labels(opts, "production")
        patch = resources.unpatch(opts, labels) if production or ctx.dry else None
        if patch:
            ctx.runner.run(kube.kubectl("patch", "deployment", PRODUCTION_DEPLOYMENT, "-n", ns, "--type=json",
                                        "-p", patch), kind=CHANGE, what="removing the production label")
            ctx.ui.done("would" if ctx.dry else "removed", f"deployment/{PRODUCTION_DEPLOYMENT} production label")
        docs = (resources.ingress_documents(opts) + resources.egress_documents(opts)
                + resources.grpc_gateway_documents(opts))  # expose's order; removed in reverse
        for doc in reversed(docs):
            _delete(ctx, str(doc["kind"]), str(doc["metadata"]["name"]), ns, ref(doc))
        _delete(ctx, "Namespace", ns, None, f"namespace {ns} (and the Online Boutique in it)")
    if ctx.down.uninstall_istio or ctx.down.delete_cluster:
        ctx.runner.run(kube.istioctl("uninstall", "--purge", "-y"), kind=CHANGE, timeout=600,
                       what="uninstalling Istio")
        ctx.ui.done("would" if ctx.dry else "removed", "Istio (istioctl uninstall --purge)")
        _delete(ctx, "Namespace", ISTIO_NAMESPACE, None, f"namespace {ISTIO_NAMESPACE}")
    else:
        ctx.ui.done("skipped", "Istio (kept; --uninstall-istio removes it)")
    if ctx.down.delete_cluster:
        _delete_cluster(ctx)
    else:
        ctx.ui.done("skipped", "cluster (kept; --delete-cluster deletes it)")


def _delete_cluster(ctx: Ctx) -> None:
    opts = ctx.opts
    if opts.provider == "gke":
        argv = gcloud(opts, "container", "clusters", "delete", opts.cluster_name, "--region", opts.region, "--quiet")
        result = ctx.runner.run(argv, kind=CHANGE, timeout=2400, check=False, what="deleting the GKE cluster")
        if not result.ok and "not found" not in result.stderr.lower():
            raise CommandFailed(result, "deleting the GKE cluster")
    else:
        ctx.runner.run(["kind", "delete", "cluster", "--name", opts.cluster_name], kind=CHANGE, timeout=600,
                       what="deleting the kind cluster")
    ctx.ui.done("would" if ctx.dry else "removed", f"{opts.provider} cluster {opts.cluster_name}")
