"""Step 2, Istio: ``istioctl install --set profile=demo`` unless istiod and the ingress gateway are there, wait for
both, check the CRDs, install Istio's Prometheus addon with ``--prometheus-addon`` (setup.cluster.promaddon), and find
the ingress address."""

from __future__ import annotations

from splitproof.setup.cluster.context import Ctx, lines, report
from splitproof.setup.cluster.kube import CREATED, UNCHANGED
from splitproof.setup.cluster.live import ingress_address
from splitproof.setup.cluster.options import INGRESS_NAME, ISTIO_NAMESPACE
from splitproof.setup.cluster.promaddon import step_prometheus_addon
from splitproof.setup.cluster.runner import CHANGE, READ
from splitproof.setup.errors import SetupError, WaitTimeoutError
from splitproof.setup.proc import wait_until

ISTIO_CRDS = ("gateways.networking.istio.io", "virtualservices.networking.istio.io",
              "destinationrules.networking.istio.io", "serviceentries.networking.istio.io")
POLL_S = 2.0  # between reads of slow-changing state (LoadBalancer address)


def istio_install_argv(ctx: Ctx) -> list[str]:
    extra = []
    if ctx.opts.static_ip:
        extra = ["--set", f"values.gateways.istio-ingressgateway.loadBalancerIP={ctx.opts.static_ip}"]
    return ctx.kube.istioctl("install", "--set", "profile=demo", *extra, "-y")


def step_istio(ctx: Ctx) -> None:
    opts, kube = ctx.opts, ctx.kube
    istiod = kube.get("Deployment", "istiod", ISTIO_NAMESPACE)
    ingress = kube.get("Service", INGRESS_NAME, ISTIO_NAMESPACE)
    ip_ok = not opts.static_ip or (ingress or {}).get("spec", {}).get("loadBalancerIP") == opts.static_ip
    if istiod and ingress and ip_ok:
        report(ctx, UNCHANGED, "Istio (istiod and ingress gateway present)")
    else:
        ctx.runner.run(istio_install_argv(ctx), kind=CHANGE, timeout=opts.wait_timeout + 300,
                       what="installing Istio (demo profile)")
        report(ctx, CREATED if not istiod else "updated",
                "Istio demo profile" + (f" (ingress loadBalancerIP {opts.static_ip})" if opts.static_ip else ""))
    for deployment in ("istiod", INGRESS_NAME):
        with ctx.ui.waiting(f"waiting for {deployment}"):
            kube.rollout_status(deployment, ISTIO_NAMESPACE, opts.wait_timeout)
        report(ctx, "waited", f"deployment/{deployment} ready")
    crds = ctx.runner.run(kube.kubectl("get", "crds", "-o", "name"), kind=READ, check=False, timeout=60)
    if not ctx.dry:
        names = {line.rsplit("/", 1)[-1] for line in lines(crds)}
        missing = [c for c in ISTIO_CRDS if c not in names]
        if not crds.ok or missing:
            raise SetupError("Istio CRDs missing after install: " + (", ".join(missing) or crds.stderr.strip()))
        report(ctx, "ok", f"Istio CRDs present ({len([n for n in names if n.endswith('.istio.io')])})")
    if opts.prometheus_addon:
        step_prometheus_addon(ctx)
    address = _wait_ingress_address(ctx)
    ctx.facts["ingress_address"] = address
    ctx.ui.info(f"ingress address: {address or '<pending>'}"
                + ("" if address else " (no LoadBalancer address yet; on kind use "
                   "`kubectl port-forward -n istio-system svc/istio-ingressgateway 8080:80`)"))


def _wait_ingress_address(ctx: Ctx) -> str | None:
    if ctx.dry:
        return ctx.opts.static_ip

    def read() -> str | None:
        return ingress_address(ctx.kube.get("Service", INGRESS_NAME, ISTIO_NAMESPACE))

    address = read()
    if address or not (ctx.opts.static_ip or ctx.opts.provider == "gke"):
        return address
    try:
        with ctx.ui.waiting("waiting for the ingress LoadBalancer address"):
            return wait_until(read, min(ctx.opts.wait_timeout, 180.0), "the ingress address", POLL_S,
                              max_interval=POLL_S)
    except WaitTimeoutError:
        ctx.ui.warn("the ingress LoadBalancer has no address yet (check `kubectl get svc -n istio-system`)")
        return None
