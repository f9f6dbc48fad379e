"""The lab's steps as data (name, what each changes) and functions; ``up`` runs the provisioning ones in order.

Every step reads the live state first (``kubectl get ... -o json``, ``gcloud ... describe``, ``kind get clusters``)
and changes only what differs, so a second ``up`` changes nothing and says so. A failure names the step, the
command and its stderr, and says how to resume (``--from-step``).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from splitproof.setup.cluster import resources
from splitproof.setup.cluster.kube import CREATED, UNCHANGED, Kube, covers, desired_fields, is_not_found, ref
from splitproof.setup.cluster.loadtest import LoadtestOptions
from splitproof.setup.cluster.options import (
    CANARY_DEPLOYMENT,
    FRONTEND_SELECTOR,
    INGRESS_NAME,
    INGRESS_SELECTOR,
    ISTIO_NAMESPACE,
    OB_MANIFESTS_URL,
    OB_RELEASE,
    PRODUCTION_DEPLOYMENT,
    SERVICE,
    Options,
    repo_root,
)
from splitproof.setup.cluster.proxy import fmt, fqdn, normalize, route_weights
from splitproof.setup.cluster.runner import CHANGE, READ, WAIT, CommandFailed, Result, Runner, command_line, poll
from splitproof.setup.cluster.ui import Ui
from splitproof.setup.errors import SetupError, WaitTimeoutError
from splitproof.verifier.errors import InputError, SplitproofError, Unreachable

ISTIO_CRDS = ("gateways.networking.istio.io", "virtualservices.networking.istio.io",
              "destinationrules.networking.istio.io", "serviceentries.networking.istio.io")
SIDECAR = "istio-proxy"
LAB_PATCH = ("max_responses = 5", "max_responses = 2")  # the lab's sed patch of recommendation_server.py
DOCKERFILE = "setup/docker/Dockerfile"
POLL_S = 2.0        # between reads of slow-changing state (LoadBalancer address)
PROXY_POLL_S = 0.5  # between `istioctl proxy-config routes` rounds


@dataclass(frozen=True)
class DownOptions:
    delete_cluster: bool = False
    uninstall_istio: bool = False


@dataclass
class Ctx:
    opts: Options
    runner: Runner
    ui: Ui
    down: DownOptions = field(default_factory=DownOptions)
    loadtest: LoadtestOptions = field(default_factory=LoadtestOptions)
    kube: Kube = field(init=False)
    facts: dict[str, Any] = field(default_factory=dict)
    context_ready: bool = False

    def __post_init__(self) -> None:
        self.kube = Kube(self.runner, self.opts.kube_context)

    @property
    def dry(self) -> bool:
        return self.opts.dry_run

    @property
    def ns(self) -> str:
        return self.opts.namespace


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


# ---------------------------------------------------------------------------------------------- helpers


def _lines(result: Result) -> list[str]:
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def gcloud(opts: Options, *args: str) -> list[str]:
    return ["gcloud", *args, *(["--project", opts.project] if opts.project else [])]


def gke_context_name(opts: Options, project: str) -> str:
    return f"gke_{project}_{opts.region}_{opts.cluster_name}"


def find_gke_context(ctx: Ctx) -> str | None:
    """The kubeconfig context that get-credentials wrote for the lab's cluster, if any."""
    result = ctx.runner.run(["kubectl", "config", "get-contexts", "-o", "name"], kind=READ, check=False)
    suffix = f"_{ctx.opts.region}_{ctx.opts.cluster_name}"
    for name in _lines(result):
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


def pods_without_sidecar(pods: Sequence[Mapping[str, Any]]) -> list[str]:
    """Names of live pods (not finished, not terminating) that have no istio-proxy container."""
    missing = []
    for pod in pods:
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            continue
        if pod.get("metadata", {}).get("deletionTimestamp"):
            continue
        spec = pod.get("spec", {})
        names = {c.get("name") for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])}
        if SIDECAR not in names:
            missing.append(str(pod.get("metadata", {}).get("name")))
    return sorted(missing)


def running_pod(pods: Sequence[Mapping[str, Any]]) -> str | None:
    """The first (by name) running, not terminating pod whose containers are all ready (its proxy answers)."""
    ready = [p for p in pods if p.get("status", {}).get("phase") == "Running"
             and not p.get("metadata", {}).get("deletionTimestamp")
             and all(c.get("ready", True) for c in p.get("status", {}).get("containerStatuses") or [])]
    names = sorted(str(p["metadata"]["name"]) for p in ready)
    return names[0] if names else None


def ingress_address(service: Mapping[str, Any] | None) -> str | None:
    for entry in (service or {}).get("status", {}).get("loadBalancer", {}).get("ingress") or []:
        address = entry.get("ip") or entry.get("hostname")
        if address:
            return str(address)
    return None


def report(ctx: Ctx, outcome: str, what: str) -> None:
    ctx.ui.done("would" if ctx.dry and outcome != UNCHANGED else outcome, what)


def ensure(ctx: Ctx, doc: Mapping[str, Any]) -> str:
    outcome = ctx.kube.ensure(doc)
    report(ctx, outcome if not ctx.dry else CREATED, ref(doc))
    return outcome


# ---------------------------------------------------------------------------------------------- 1 cluster


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
    if api in _lines(enabled):
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
    if opts.cluster_name in _lines(clusters):
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
        if not ctx.dry and opts.context not in _lines(contexts):
            known = ", ".join(_lines(contexts)) or "none"
            raise InputError(f"no kube context named {opts.context!r} (known: {known})")
        use_context(ctx, opts.context)
        report(ctx, UNCHANGED, f"existing cluster (context {opts.context})")
        return
    current = ctx.runner.run(["kubectl", "config", "current-context"], kind=READ, check=False)
    if not ctx.dry and not current.ok:
        raise InputError("no current kube context: pass --context NAME, or --provider gke|kind to create one")
    use_context(ctx, None)
    report(ctx, UNCHANGED, f"existing cluster (current context {current.stdout.strip() or '?'})")


# ---------------------------------------------------------------------------------------------- 2 istio


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
        names = {line.rsplit("/", 1)[-1] for line in _lines(crds)}
        missing = [c for c in ISTIO_CRDS if c not in names]
        if not crds.ok or missing:
            raise SetupError("Istio CRDs missing after install: " + (", ".join(missing) or crds.stderr.strip()))
        report(ctx, "ok", f"Istio CRDs present ({len([n for n in names if n.endswith('.istio.io')])})")
    address = _wait_ingress_address(ctx)
    ctx.facts["ingress_address"] = address
    ctx.ui.info(f"ingress address: {address or '<pending>'}"
                + ("" if address else " (no LoadBalancer address yet; on kind use "
                   "`kubectl port-forward -n istio-system svc/istio-ingressgateway 8080:80`)"))


def _wait_ingress_address(ctx: Ctx) -> str | None:
    if ctx.dry:
        return ctx.opts.static_ip
    read = lambda: ingress_address(ctx.kube.get("Service", INGRESS_NAME, ISTIO_NAMESPACE))  # noqa: E731
    address = read()
    if address or not (ctx.opts.static_ip or ctx.opts.provider == "gke"):
        return address
    found: list[str] = []

    def assigned() -> bool:
        value = read()
        if value:
            found.append(value)
        return bool(value)

    try:
        with ctx.ui.waiting("waiting for the ingress LoadBalancer address"):
            poll(assigned, timeout=min(ctx.opts.wait_timeout, 180.0), what="the ingress address", interval=POLL_S)
    except WaitTimeoutError:
        ctx.ui.warn("the ingress LoadBalancer has no address yet (check `kubectl get svc -n istio-system`)")
        return None
    return found[-1]


# ---------------------------------------------------------------------------------------------- 3 app


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


# ---------------------------------------------------------------------------------------------- 4 expose


def step_expose(ctx: Ctx) -> None:
    docs = resources.ingress_documents(ctx.opts) + resources.egress_documents(ctx.opts)
    if ctx.opts.grpc_gateway:
        docs += resources.grpc_gateway_documents(ctx.opts)
    for doc in docs:
        ensure(ctx, doc)
    if ctx.opts.grpc_gateway:
        ctx.ui.info(f"gRPC gateway host: {ctx.opts.grpc_authority} (the weighted route bound to it is applied by "
                    "the weights step, after the DestinationRule)")


# ---------------------------------------------------------------------------------------------- 5 canary


@dataclass(frozen=True)
class ImagePlan:
    image: str
    pull_policy: str
    env: dict[str, str]
    source: str
    build: Callable[[Ctx], None] | None = None


def image_repo(ctx: Ctx) -> str:
    opts = ctx.opts
    if opts.image_repo:
        return opts.image_repo.rstrip("/")
    if opts.provider == "kind":
        return "splitproof.local"
    if opts.provider == "gke":
        return f"gcr.io/{gcp_project(ctx)}/microservices_demo"
    raise InputError("building an image for an existing cluster needs --image-repo REGISTRY/PATH (where "
                      "`docker push` can push and the cluster can pull), or pass --canary-image IMAGE")


def project_image(ctx: Ctx) -> str:
    from splitproof.setup.cluster.preflight import project_version

    return f"{image_repo(ctx)}/splitproof:{project_version()}"


def _pull_policy(opts: Options) -> str:
    return "IfNotPresent" if opts.provider == "kind" else "Always"


def docker_usable(ctx: Ctx) -> bool:
    if ctx.dry:
        return True
    if "docker" not in ctx.facts:
        if not ctx.runner.available("docker"):
            ctx.facts["docker"] = False
        else:
            probe = ctx.runner.run(["docker", "version", "--format", "{{.Server.Version}}"], kind=READ, check=False,
                                   timeout=30)
            ctx.facts["docker"] = probe.ok
    return bool(ctx.facts["docker"])


def canary_image_plan(ctx: Ctx) -> ImagePlan:
    """Where the canary image comes from: --canary-image, an upstream checkout + the lab's patch, or this project."""
    opts = ctx.opts
    if opts.canary_image:
        return ImagePlan(opts.canary_image, _pull_policy(opts), {}, "--canary-image")
    if opts.boutique_src:
        if not docker_usable(ctx):
            raise InputError("--boutique-src needs a working docker to build the patched recommendationservice "
                              "(or pass --canary-image IMAGE)")
        return ImagePlan(f"{image_repo(ctx)}/recommendationservice:canary", _pull_policy(opts), {},
                         f"{opts.boutique_src} with the lab's max_responses patch", build=build_upstream)
    if not docker_usable(ctx):
        raise InputError("no canary image: pass --canary-image IMAGE (recommendationservice answering 2 "
                          "recommendations), or install docker so canary-setup can build this project's image "
                          f"({DOCKERFILE}, MAX_RESPONSES=2)")
    return ImagePlan(project_image(ctx), _pull_policy(opts), {"MAX_RESPONSES": "2"},
                     f"this project's image ({DOCKERFILE})", build=build_project)


def distribute(ctx: Ctx, image: str) -> None:
    """Make a locally built image pullable: `kind load` into a kind cluster, else `docker push`."""
    if ctx.opts.provider == "kind":
        ctx.runner.run(["kind", "load", "docker-image", image, "--name", ctx.opts.cluster_name], kind=CHANGE,
                       timeout=600, what=f"loading {image} into kind")
        report(ctx, "loaded", f"{image} into kind cluster {ctx.opts.cluster_name}")
    else:
        ctx.runner.run(["docker", "push", image], kind=CHANGE, timeout=900,
                       what=f"pushing {image} (for gcr.io run `gcloud auth configure-docker` once)")
        report(ctx, "pushed", image)


def build_project(ctx: Ctx, image: str | None = None) -> None:
    image = image or project_image(ctx)
    root = repo_root()
    if not (root / DOCKERFILE).is_file():
        raise InputError(f"building the project's image needs a source checkout ({root / DOCKERFILE} is missing)")
    ctx.runner.run(["docker", "build", "-f", str(root / DOCKERFILE), "-t", image, str(root)], kind=CHANGE,
                   timeout=1800, what=f"building {image}")
    report(ctx, "built", image)
    distribute(ctx, image)


def patch_recommendation_server(directory: Path) -> int:
    """The lab's `sed -i 's/max_responses = 5/max_responses = 2/g' recommendation_server.py`; returns replacements."""
    target = directory / "recommendation_server.py"
    if not target.is_file():
        raise InputError(f"{target} not found: --boutique-src must be an Online Boutique checkout")
    text = target.read_text(encoding="utf-8")
    count = text.count(LAB_PATCH[0])
    if count == 0:
        raise InputError(f"the lab's patch does not apply: no {LAB_PATCH[0]!r} in {target}")
    target.write_text(text.replace(*LAB_PATCH), encoding="utf-8")
    return count


def build_upstream(ctx: Ctx) -> None:
    image = f"{image_repo(ctx)}/recommendationservice:canary"
    source = Path(str(ctx.opts.boutique_src)).expanduser() / "src" / "recommendationservice"
    if ctx.dry:
        ctx.ui.command(f"# copy {source} to a temporary directory, then apply the lab's patch there:\n"
                       f"# sed -i 's/{LAB_PATCH[0]}/{LAB_PATCH[1]}/g' recommendation_server.py")
        ctx.runner.run(["docker", "build", "-t", image, "<temporary copy>"], kind=CHANGE)
        distribute(ctx, image)
        return
    if not source.is_dir():
        raise InputError(f"{source} not found: --boutique-src must be an Online Boutique checkout")
    with tempfile.TemporaryDirectory(prefix="splitproof-canary-") as tmp:
        work = Path(tmp) / "recommendationservice"
        shutil.copytree(source, work)
        patch_recommendation_server(work)
        ctx.runner.run(["docker", "build", "-t", image, str(work)], kind=CHANGE, timeout=1800,
                       what=f"building {image}")
    report(ctx, "built", f"{image} (max_responses = 2)")
    distribute(ctx, image)


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

    # The DestinationRule goes in before anything routes to its subsets (else: 503s).
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


# ---------------------------------------------------------------------------------------------- 6 weights


def step_weights(ctx: Ctx) -> None:
    opts, kube = ctx.opts, ctx.kube
    rule = kube.get("DestinationRule", SERVICE, ctx.ns)
    if rule is None and not ctx.dry:
        raise SetupError(f"DestinationRule {SERVICE} not found in {ctx.ns}: run `canary-setup canary` first "
                         "(a route to subsets no DestinationRule defines gets 503s)")
    if rule is not None:
        defined = {str(s.get("name")) for s in rule.get("spec", {}).get("subsets") or []}
        undefined = [name for name, weight in opts.weights.items() if weight and name not in defined]
        if undefined:
            raise InputError(f"the live DestinationRule {SERVICE} defines no subset {', '.join(undefined)} "
                              f"(it has: {', '.join(sorted(defined)) or 'none'})")
    grpc_live = None if opts.grpc_gateway else kube.get("VirtualService", resources.GRPC_VS_NAME, ctx.ns)
    docs = resources.routing_documents(opts, grpc_live)
    for doc in docs:
        ensure(ctx, doc)
    gateway_hosts = list(docs[1]["spec"]["hosts"]) if len(docs) > 1 else []
    wait_for_proxies(ctx, gateway_hosts)


@dataclass
class ProxyTarget:
    label: str
    pod: str
    namespace: str
    hosts: list[str]
    last: str = "(not read yet)"


def proxy_targets(ctx: Ctx, gateway_hosts: Sequence[str]) -> list[ProxyTarget]:
    kube = ctx.kube
    frontend = running_pod(kube.list("Pod", ctx.ns, FRONTEND_SELECTOR)) or ("<frontend-pod>" if ctx.dry else None)
    if frontend is None:
        raise SetupError(f"no running frontend pod in {ctx.ns} to check the route on (`kubectl get pods -n {ctx.ns}`)")
    targets = [ProxyTarget("frontend sidecar", frontend, ctx.ns, [fqdn(SERVICE, ctx.ns)])]
    if gateway_hosts:
        gateway = running_pod(kube.list("Pod", ISTIO_NAMESPACE, INGRESS_SELECTOR)) or (
            "<ingressgateway-pod>" if ctx.dry else None)
        if gateway is None:
            raise SetupError("no running istio-ingressgateway pod in istio-system")
        targets.append(ProxyTarget("ingress gateway", gateway, ISTIO_NAMESPACE, list(gateway_hosts)))
    return targets


def routes_argv(ctx: Ctx, target: ProxyTarget) -> list[str]:
    return ctx.kube.istioctl("proxy-config", "routes", target.pod, "-n", target.namespace, "-o", "json")


def wait_for_proxies(ctx: Ctx, gateway_hosts: Sequence[str] = ()) -> None:
    """Poll `istioctl proxy-config routes` until the frontend sidecar (and the gateway) hold the new weights."""
    expected = normalize(ctx.opts.weights)
    targets = proxy_targets(ctx, gateway_hosts)
    if ctx.dry:
        for target in targets:
            ctx.runner.run(routes_argv(ctx, target), kind=WAIT)
        ctx.ui.info(f"(polled until every proxy above routes {fmt(expected)}; up to {ctx.opts.proxy_timeout:g}s)")
        return

    def serving() -> bool:
        for target in targets:
            result = ctx.runner.run(routes_argv(ctx, target), kind=WAIT, check=False, timeout=60)
            if not result.ok:
                target.last = f"error: {result.stderr.strip()[-200:]}"
                return False
            try:
                held = route_weights(result.stdout, target.hosts)
            except ValueError:
                target.last = "unreadable proxy-config output"
                return False
            target.last = fmt(held)
            if held is None or normalize(held) != expected:
                return False
        return True

    try:
        with ctx.ui.waiting(f"waiting for the proxies to serve {fmt(expected)}"):
            poll(serving, timeout=ctx.opts.proxy_timeout, what="the proxies", interval=PROXY_POLL_S)
    except WaitTimeoutError:
        held = "; ".join(f"{t.label} {t.pod} holds {t.last}" for t in targets)
        raise WaitTimeoutError(f"the proxies did not serve {fmt(expected)} within {ctx.opts.proxy_timeout:g}s: "
                               f"{held} (check `istioctl proxy-status`)") from None
    for target in targets:
        report(ctx, "serving", f"{fmt(expected)} on {target.label} {target.pod}")


# ---------------------------------------------------------------------------------------------- 7 status


def step_status(ctx: Ctx) -> int:
    """What exists, declared vs held weights, sidecar coverage, `istioctl analyze`. Returns 0 when all is well."""
    from splitproof.setup.cluster.status import collect_status, print_status

    if ctx.dry:
        ctx.ui.info("status only reads the cluster; nothing to show in a dry run")
        return 0
    report_ = collect_status(ctx)
    print_status(ctx.ui, report_)
    return 0 if report_.healthy else 1


# ---------------------------------------------------------------------------------------------- 8 loadtest / 9 down


def step_loadtest(ctx: Ctx) -> int:
    from splitproof.setup.cluster.loadtest import run_loadtest

    return run_loadtest(ctx)


def step_down(ctx: Ctx) -> None:
    from splitproof.setup.cluster.teardown import tear_down

    tear_down(ctx)


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

