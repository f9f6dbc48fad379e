"""Step 2's option ``--prometheus-addon``: Istio's Prometheus addon, the one verify-split's passive gate reads.

It applies ``samples/addons/prometheus.yaml`` of the installed Istio's release branch
(https://istio.io/latest/docs/ops/integrations/prometheus/: a Prometheus in ``istio-system`` scraping every
sidecar's merged ``:15020/stats/prometheus``) with ``kubectl apply -f URL`` -- only when its Deployment is missing,
so a second run changes nothing -- waits for it, and says how to reach it: ``http://prometheus.istio-system:9090``
from inside the cluster (the CI recipes in docs/ci), a ``kubectl port-forward`` from outside.
"""

from __future__ import annotations

import re

from splitproof.setup.cluster.context import Ctx, report
from splitproof.setup.cluster.kube import CREATED, UNCHANGED
from splitproof.setup.cluster.options import ISTIO_NAMESPACE
from splitproof.setup.cluster.runner import CHANGE, READ
from splitproof.setup.errors import SetupError

PROMETHEUS = "prometheus"
IN_CLUSTER_URL = f"http://{PROMETHEUS}.{ISTIO_NAMESPACE}:9090"
ADDON_URL = "https://raw.githubusercontent.com/istio/istio/release-{release}/samples/addons/prometheus.yaml"
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.\d+)?")


def addon_url(version: str) -> str:
    """The addon manifest of Istio ``version`` (``1.24.2`` -> the ``release-1.24`` branch)."""
    m = _VERSION.search(version)
    if m is None:
        raise SetupError(f"cannot tell the Istio release from version {version!r}")
    return ADDON_URL.format(release=f"{m.group(1)}.{m.group(2)}")


def installed_version(ctx: Ctx) -> str:
    """istiod's image tag (the control plane actually installed), else istioctl's own version."""
    istiod = ctx.kube.get("Deployment", "istiod", ISTIO_NAMESPACE) or {}
    for container in istiod.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
        tag = str(container.get("image", "")).rpartition(":")[2]
        if _VERSION.fullmatch(tag.split("-")[0]):
            return tag
    out = ctx.runner.run(ctx.kube.istioctl("version", "--remote=false", "--short"), kind=READ, check=False,
                         timeout=60)
    return out.stdout.strip() if out.ok and out.stdout.strip() else "1.24"


def step_prometheus_addon(ctx: Ctx) -> None:
    kube = ctx.kube
    url = addon_url(installed_version(ctx))
    if kube.get("Deployment", PROMETHEUS, ISTIO_NAMESPACE):
        report(ctx, UNCHANGED, f"Istio's Prometheus addon (deployment/{PROMETHEUS} in {ISTIO_NAMESPACE})")
    else:
        ctx.runner.run(kube.kubectl("apply", "-f", url), kind=CHANGE, timeout=300,
                       what="applying Istio's Prometheus addon")
        report(ctx, CREATED, f"Istio's Prometheus addon ({url})")
    with ctx.ui.waiting(f"waiting for {PROMETHEUS}"):
        kube.rollout_status(PROMETHEUS, ISTIO_NAMESPACE, ctx.opts.wait_timeout)
    report(ctx, "waited", f"deployment/{PROMETHEUS} ready")
    context = f" --context {ctx.opts.kube_context}" if ctx.opts.kube_context else ""
    ctx.ui.info(f"Prometheus: {IN_CLUSTER_URL} in the cluster; from here: `kubectl{context} port-forward -n "
                f"{ISTIO_NAMESPACE} svc/{PROMETHEUS} 9090:9090`, then `verify-split --expected 20 --prometheus "
                "http://127.0.0.1:9090 --since 10m`")
