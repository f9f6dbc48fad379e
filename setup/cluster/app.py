"""Step 3, the app: the namespace with sidecar injection, the Online Boutique manifests (applied only when ``kubectl
diff`` differs), every rollout, and every pod with its istio-proxy sidecar."""

from __future__ import annotations

from pathlib import Path

from splitproof.setup.cluster.context import Ctx, report
from splitproof.setup.cluster.kube import CREATED, UNCHANGED
from splitproof.setup.cluster.live import SIDECAR, pods_without_sidecar
from splitproof.setup.cluster.options import OB_MANIFESTS_URL, OB_RELEASE, Options
from splitproof.setup.cluster.runner import CHANGE, READ, WAIT
from splitproof.setup.errors import SetupError
from splitproof.verifier.errors import InputError


def step_app(ctx: Ctx) -> None:
    opts, kube, run = ctx.opts, ctx.kube, ctx.runner.run
    namespace = kube.get("Namespace", ctx.ns)
    if namespace is None:
        run(kube.kubectl("create", "namespace", ctx.ns), kind=CHANGE, what=f"creating namespace {ctx.ns}")
        report(ctx, CREATED, f"namespace {ctx.ns}")
    else:
        report(ctx, UNCHANGED, f"namespace {ctx.ns}")
    labels = (namespace or {}).get("metadata", {}).get("labels") or {}
    if labels.get("istio-injection") == "enabled":
        report(ctx, UNCHANGED, f"namespace {ctx.ns} label istio-injection=enabled")
    else:
        run(kube.kubectl("label", "namespace", ctx.ns, "istio-injection=enabled", "--overwrite"), kind=CHANGE,
            what="enabling sidecar injection")
        report(ctx, "updated", f"namespace {ctx.ns} label istio-injection=enabled")

    source = manifest_source(opts)
    what = f"Online Boutique {OB_RELEASE}" if opts.manifests == OB_MANIFESTS_URL else f"manifests {source}"
    diff = run(kube.kubectl("diff", "-f", source, "-n", ctx.ns), kind=READ, check=False, timeout=180)
    if diff.returncode == 0 and not ctx.dry:
        report(ctx, UNCHANGED, what)
    else:
        if diff.returncode not in (0, 1) and not ctx.dry:
            ctx.ui.warn(f"kubectl diff failed ({diff.stderr.strip()[-200:]}); applying anyway")
        run(kube.kubectl("apply", "-f", source, "-n", ctx.ns), kind=CHANGE, timeout=300, what=f"applying {what}")
        report(ctx, "applied", what)

    deployments = sorted(str(d["metadata"]["name"]) for d in kube.list("Deployment", ctx.ns))
    if ctx.dry:
        ctx.runner.run(kube.kubectl("rollout", "status", "deployment/<each Deployment in the manifests>", "-n",
                                    ctx.ns, f"--timeout={opts.wait_timeout:g}s"), kind=WAIT)
    with ctx.ui.waiting(f"waiting for {len(deployments)} deployments"):
        for name in deployments:
            kube.rollout_status(name, ctx.ns, opts.wait_timeout)
    if deployments:
        report(ctx, "waited", f"{len(deployments)} deployments rolled out")
    verify_sidecars(ctx)


def manifest_source(opts: Options) -> str:
    if opts.manifests_is_url:
        return opts.manifests
    path = Path(opts.manifests).expanduser()
    if not path.exists():
        raise InputError(f"--manifests {opts.manifests}: no such file or directory")
    return str(path.resolve())


def verify_sidecars(ctx: Ctx) -> None:
    """Every pod of the namespace must run istio-proxy: without it the VirtualService weights silently don't apply."""
    if ctx.dry:
        ctx.ui.info(f"then: verify every pod in {ctx.ns} has the {SIDECAR} container "
                    f"(`kubectl get pods -n {ctx.ns} -o json`)")
        return
    pods = ctx.kube.list("Pod", ctx.ns)
    missing = pods_without_sidecar(pods)
    if missing:
        raise SetupError(
            f"{len(missing)} pod(s) in {ctx.ns} have no {SIDECAR} sidecar: {', '.join(missing)} -- the split does "
            f"not apply to their traffic. Pods created before the namespace got istio-injection=enabled keep "
            f"running without it: `kubectl rollout restart deployment -n {ctx.ns}`, then run this step again")
    report(ctx, "ok", f"{len(pods)} pods, every one with {SIDECAR}")
