"""Step 1, the cluster: create it (GKE as in the lab, or kind) or use an existing one, and find and check the kube
context every later step uses (``resolve_context``)."""

from __future__ import annotations

from splitproof.setup.cluster.context import Ctx, lines, report
from splitproof.setup.cluster.kube import CREATED, UNCHANGED, is_not_found
from splitproof.setup.cluster.options import Options
from splitproof.setup.cluster.runner import CHANGE, READ, CommandFailed, Result
from splitproof.setup.errors import SetupError
from splitproof.verifier.errors import InputError, Unreachable


def gcloud(opts: Options, *args: str) -> list[str]:
    return ["gcloud", *args, *(["--project", opts.project] if opts.project else [])]


def gke_context_name(opts: Options, project: str) -> str:
    return f"gke_{project}_{opts.region}_{opts.cluster_name}"


def find_gke_context(ctx: Ctx) -> str | None:
    """The kubeconfig context that get-credentials wrote for the lab's cluster, if any."""
    result = ctx.runner.run(["kubectl", "config", "get-contexts", "-o", "name"], kind=READ, check=False)
    suffix = f"_{ctx.opts.region}_{ctx.opts.cluster_name}"
    for name in lines(result):
        if name.startswith("gke_") and name.endswith(suffix):
            if ctx.opts.project and name != gke_context_name(ctx.opts, ctx.opts.project):
                continue
            return name
    return None


def gcp_project(ctx: Ctx) -> str:
    if ctx.opts.project:
        return ctx.opts.project
    if "project" not in ctx.facts:
        result = ctx.runner.run(["gcloud", "config", "get-value", "project"], kind=READ, check=False,
                                dry_result=Result(("gcloud",), 0, "PROJECT_ID\n"))
        project = result.stdout.strip()
        if not project or project == "(unset)":
            raise InputError("no GCP project: pass --project ID or run `gcloud config set project ID`")
        ctx.facts["project"] = project
    return str(ctx.facts["project"])


def use_context(ctx: Ctx, name: str | None) -> None:
    ctx.kube.context = name
    ctx.facts["context"] = name


def check_reachable(ctx: Ctx) -> None:
    """`kubectl version` against the server: fails fast with a clear message when the context is unreachable."""
    if ctx.context_ready:
        return
    result = ctx.runner.run(ctx.kube.kubectl("version", "-o", "json", "--request-timeout=15s"), kind=READ,
                            check=False, timeout=30)
    if not result.ok and not ctx.dry:
        where = ctx.kube.context or "the current context"
        raise Unreachable(f"cannot reach the cluster of {where}: {result.stderr.strip()[-300:] or 'no answer'}")
    ctx.context_ready = True


def resolve_context(ctx: Ctx) -> None:
    """Find the context of the chosen cluster without creating anything (steps run on their own)."""
    if ctx.context_ready or "context" in ctx.facts:
        check_reachable(ctx)
        return
    opts = ctx.opts
    if opts.provider == "gke" and not opts.context:
        name = find_gke_context(ctx)
        if name is None:
            if not ctx.dry:
                raise InputError(f"no kube context for GKE cluster {opts.cluster_name} ({opts.region}): "
                                      "run `canary-setup cluster --provider gke` first")
            name = gke_context_name(opts, opts.project or "PROJECT_ID")
        use_context(ctx, name)
    else:
        use_context(ctx, opts.kube_context)
    check_reachable(ctx)



def step_cluster(ctx: Ctx) -> None:
    opts = ctx.opts
    if opts.provider == "gke":
        _gke_cluster(ctx)
    elif opts.provider == "kind":
        _kind_cluster(ctx)
    else:
        _existing_cluster(ctx)
    check_reachable(ctx)
    ctx.ui.info(f"kube context: {ctx.kube.context or '(current)'}")


def _gke_cluster(ctx: Ctx) -> None:
    opts, run = ctx.opts, ctx.runner.run
    api = "container.googleapis.com"
    enabled = run(gcloud(opts, "services", "list", "--enabled", f"--filter=config.name={api}",
                         "--format=value(config.name)"), kind=READ, check=False)
    if api in lines(enabled):
        report(ctx, UNCHANGED, f"API {api} (enabled)")
    else:
        run(gcloud(opts, "services", "enable", api), kind=CHANGE, timeout=300, what=f"enabling {api}")
        report(ctx, "enabled", f"API {api}")

    network = run(gcloud(opts, "compute", "networks", "describe", opts.network, "--format=json"),
                  kind=READ, check=False, timeout=120)
    if network.ok:
        report(ctx, UNCHANGED, f"network {opts.network}")
    elif ctx.dry or is_not_found(network):
        run(gcloud(opts, "compute", "networks", "create", opts.network, "--subnet-mode=auto",
                   "--bgp-routing-mode=regional", "--mtu=1460"), kind=CHANGE, timeout=600,
            what=f"creating network {opts.network}")
        report(ctx, CREATED, f"network {opts.network}")
    else:
        raise CommandFailed(network, f"reading network {opts.network}")

    cluster = run(gcloud(opts, "container", "clusters", "describe", opts.cluster_name, "--region", opts.region,
                         "--format=json"), kind=READ, check=False, timeout=120)
    if cluster.ok:
        report(ctx, UNCHANGED, f"GKE cluster {opts.cluster_name} ({opts.region})")
    elif ctx.dry or is_not_found(cluster):
        run(gcloud(opts, "container", "clusters", "create", opts.cluster_name, "--region", opts.region,
                   "--network", opts.network, "--enable-ip-alias", "--enable-network-policy",
                   "--num-nodes", str(opts.num_nodes), "--machine-type", opts.machine_type,
                   "--release-channel", opts.release_channel),
            kind=CHANGE, timeout=2400, what=f"creating GKE cluster {opts.cluster_name}")
        report(ctx, CREATED, f"GKE cluster {opts.cluster_name} ({opts.region})")
    else:
        raise CommandFailed(cluster, f"reading GKE cluster {opts.cluster_name}")

    if opts.context:
        use_context(ctx, opts.context)
        return
    name = find_gke_context(ctx)
    if name is None:
        run(gcloud(opts, "container", "clusters", "get-credentials", opts.cluster_name, "--region", opts.region),
            kind=CHANGE, timeout=120, what="fetching cluster credentials")
        report(ctx, CREATED, "kubeconfig credentials")
        name = find_gke_context(ctx) or (gke_context_name(opts, opts.project or "PROJECT_ID") if ctx.dry else None)
        if name is None:
            raise SetupError("get-credentials wrote no context for the cluster "
                                  "(see `kubectl config get-contexts`)")
    else:
        report(ctx, UNCHANGED, f"kubeconfig credentials ({name})")
    use_context(ctx, name)


def _kind_cluster(ctx: Ctx) -> None:
    opts = ctx.opts
    clusters = ctx.runner.run(["kind", "get", "clusters"], kind=READ, check=False)
    if opts.cluster_name in lines(clusters):
        report(ctx, UNCHANGED, f"kind cluster {opts.cluster_name}")
    else:
        ctx.runner.run(["kind", "create", "cluster", "--name", opts.cluster_name, "--wait", "300s"], kind=CHANGE,
                       timeout=900, what=f"creating kind cluster {opts.cluster_name}")
        report(ctx, CREATED, f"kind cluster {opts.cluster_name}")
    use_context(ctx, opts.kube_context)


def _existing_cluster(ctx: Ctx) -> None:
    opts = ctx.opts
    if opts.context:
        contexts = ctx.runner.run(["kubectl", "config", "get-contexts", "-o", "name"], kind=READ, check=False)
        if not ctx.dry and opts.context not in lines(contexts):
            known = ", ".join(lines(contexts)) or "none"
            raise InputError(f"no kube context named {opts.context!r} (known: {known})")
        use_context(ctx, opts.context)
        report(ctx, UNCHANGED, f"existing cluster (context {opts.context})")
        return
    current = ctx.runner.run(["kubectl", "config", "current-context"], kind=READ, check=False)
    if not ctx.dry and not current.ok:
        raise InputError("no current kube context: pass --context NAME, or --provider gke|kind to create one")
    use_context(ctx, None)
    report(ctx, UNCHANGED, f"existing cluster (current context {current.stdout.strip() or '?'})")
