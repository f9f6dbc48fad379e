"""canary-setup's cluster commands: up, plan, preflight, the nine steps, lint. Thin: parse, build a Ctx, run."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from splitproof.setup.cluster import resources
from splitproof.setup.cluster.context import Ctx
from splitproof.setup.cluster.lint import ERROR, lint_documents, load_documents, production_template
from splitproof.setup.cluster.options import (
    DEFAULT_CLASSES,
    LAB_CLUSTER,
    LAB_MACHINE_TYPE,
    LAB_REGION,
    OB_MANIFESTS_URL,
    OB_RELEASE,
    PRODUCTION_DEPLOYMENT,
    PROVIDERS,
    SERVICE,
    DownOptions,
    LoadtestOptions,
    Options,
)
from splitproof.setup.cluster.preflight import needs, preflight
from splitproof.setup.cluster.provider import resolve_context
from splitproof.setup.cluster.runner import Runner
from splitproof.setup.cluster.steps import STEPS, UP_STEPS, Step, check_plan, run_steps, step_named
from splitproof.setup.cluster.ui import Ui
from splitproof.setup.manifests import mesh_documents
from splitproof.verifier.errors import InputError
from splitproof.verifier.exitcodes import ExitCode
from splitproof.verifier.istio import canary_weights, parse_weights

SINGLE_STEPS = ("cluster", "istio", "app", "expose", "canary", "weights", "status", "loadtest", "down")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text}")
    return value


def common_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("cluster")
    g.add_argument("--provider", choices=PROVIDERS, default="existing",
                   help="gke: the lab's regional GKE cluster; kind: a local kind cluster; existing (default): "
                        "the current or --context cluster")
    g.add_argument("--context", help="kube context to use (default: the provider's, else the current one)")
    g.add_argument("--cluster-name", default=LAB_CLUSTER, help="cluster name (default: %(default)s)")
    g.add_argument("--region", default=LAB_REGION, help="GKE region (default: %(default)s)")
    g.add_argument("--project", help="GCP project (default: gcloud's configured project)")
    g.add_argument("--network", default="default", help="GKE VPC network (default: %(default)s)")
    g.add_argument("--num-nodes", type=_positive_int, default=1, help="GKE nodes per zone (default: 1)")
    g.add_argument("--machine-type", default=LAB_MACHINE_TYPE, help="GKE machine type (default: %(default)s)")
    g.add_argument("--release-channel", default="stable", help="GKE release channel (default: %(default)s)")
    g.add_argument("--static-ip", help="reserved IP for the ingress gateway's LoadBalancer (istioctl "
                                       "values.gateways.istio-ingressgateway.loadBalancerIP)")
    g.add_argument("--prometheus-addon", action="store_true",
                   help="step istio also installs Istio's Prometheus addon (samples/addons/prometheus.yaml of the "
                        "installed release), what verify-split --prometheus reads")
    g = p.add_argument_group("application and routing")
    g.add_argument("-n", "--namespace", default="online-boutique", help="application namespace (default: %(default)s)")
    g.add_argument("--manifests", default=OB_MANIFESTS_URL,
                   help=f"Online Boutique manifests, PATH or URL (default: release {OB_RELEASE})")
    g.add_argument("--host", default="*",
                   help="the shop's host on the ingress Gateway (lab: $STUDENT.cloud-montreal.ca)")
    g.add_argument("--grpc-gateway", action="store_true",
                   help="also expose recommendationservice over gRPC on the ingress gateway, same weights")
    g.add_argument("--grpc-host", help="host of the gRPC gateway server (default: recommendations.<host>)")
    weights = g.add_mutually_exclusive_group()
    weights.add_argument("--canary-weight", type=int, metavar="N", help="canary percent (default 20; rest production)")
    weights.add_argument("--weights", metavar="NAME=W,...", help="explicit weights, e.g. production=80,canary=20")
    g.add_argument("--canary-image", help="canary recommendationservice image (else built with docker)")
    g.add_argument("--boutique-src", metavar="DIR",
                   help="Online Boutique checkout: build its recommendationservice with the lab's max_responses patch")
    g.add_argument("--image-repo", metavar="REPO",
                   help="where built images are pushed (default: gcr.io/<project>/microservices_demo on gke; "
                        "loaded into kind on kind)")
    g.add_argument("--api-version", default="networking.istio.io/v1", help="Istio networking apiVersion")
    g = p.add_argument_group("behaviour")
    g.add_argument("--wait-timeout", type=_seconds, default=300.0, help="seconds per rollout wait (default: 300)")
    g.add_argument("--proxy-timeout", type=_seconds, default=120.0,
                   help="seconds to wait for the proxies to serve new weights (default: 120)")
    g.add_argument("--dry-run", action="store_true", help="print every command and manifest; touch nothing")
    g.add_argument("-v", "--verbose", action="store_true", help="print every command as it runs")
    return p


def options_from_args(args: argparse.Namespace) -> Options:
    if getattr(args, "percent", None) is not None:
        weights = canary_weights(args.percent)
    elif args.weights:
        weights = parse_weights(args.weights)
    elif args.canary_weight is not None:
        weights = canary_weights(args.canary_weight)
    else:
        weights = canary_weights(20)
    opts = Options(
        provider=args.provider, context=args.context, cluster_name=args.cluster_name, region=args.region,
        project=args.project, network=args.network, num_nodes=args.num_nodes, machine_type=args.machine_type,
        release_channel=args.release_channel, static_ip=args.static_ip,
        prometheus_addon=args.prometheus_addon, namespace=args.namespace,
        manifests=args.manifests, host=args.host, grpc_gateway=args.grpc_gateway, grpc_host=args.grpc_host,
        weights=weights, canary_image=args.canary_image, boutique_src=args.boutique_src,
        image_repo=args.image_repo, api_version=args.api_version, wait_timeout=args.wait_timeout,
        proxy_timeout=args.proxy_timeout, dry_run=args.dry_run, verbose=args.verbose,
    )
    opts.params().validate()
    return opts


def make_ctx(args: argparse.Namespace, opts: Options) -> Ctx:
    ui = Ui(verbose=opts.verbose)
    runner = Runner(dry_run=opts.dry_run, echo=ui.command if (opts.dry_run or opts.verbose) else None)
    ctx = Ctx(opts, runner, ui)
    if getattr(args, "delete_cluster", None) is not None:
        ctx.down = DownOptions(delete_cluster=args.delete_cluster, uninstall_istio=args.uninstall_istio)
    if getattr(args, "users", None) is not None:
        ctx.loadtest = LoadtestOptions(users=args.users, spawn_rate=args.spawn_rate, duration=args.duration,
                                       workers=args.workers, results=args.results, locustfile=args.locustfile,
                                       image=args.loadtest_image, keep=args.keep, classes=tuple(args.user_classes))
    return ctx


# ------------------------------------------------------------------------------------------------ lint


def setup_documents(opts: Options) -> list[dict[str, Any]]:
    """Everything the setup would apply that lint can check, plus the production pod template as patched."""
    docs: list[dict[str, Any]] = list(mesh_documents(opts.params()))
    docs += resources.egress_documents(opts)
    if opts.grpc_gateway:
        docs += resources.grpc_gateway_documents(opts) + [resources.grpc_virtual_service(opts)]
    docs.append(resources.canary_deployment(opts, opts.canary_image or "canary-image", "IfNotPresent"))
    production = None
    if not opts.manifests_is_url:
        for doc in load_documents([opts.manifests]):
            if doc.get("kind") == "Service" and doc.get("metadata", {}).get("name") == SERVICE:
                docs.append({**doc, "metadata": {**doc["metadata"], "namespace": opts.namespace}})
            if doc.get("kind") == "Deployment" and doc.get("metadata", {}).get("name") == PRODUCTION_DEPLOYMENT:
                production = doc
    labels = resources.subset_labels(opts, "production")
    if production is not None:
        template_labels = production.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {}
        docs.append(production_template(opts.namespace, SERVICE, {**template_labels, **labels}))
    else:
        docs.append(production_template(opts.namespace, SERVICE, labels))
    return docs


def lint_or_raise(ui: Ui, docs: Sequence[dict[str, Any]], namespace: str, quiet_ok: bool = False) -> int:
    findings = lint_documents(docs, namespace)
    for finding in findings:
        (ui.warn if finding.severity != ERROR else ui.line)(str(finding))
    errors = [f for f in findings if f.severity == ERROR]
    if errors:
        raise InputError(f"lint: {len(errors)} error(s) in the manifests (listed above)")
    if not quiet_ok:
        ui.line(f"lint: {len(docs)} documents, no errors" + (f", {len(findings)} warning(s)" if findings else ""))
    return 0


def cmd_lint(args: argparse.Namespace) -> int:
    opts = options_from_args(args)
    ui = Ui()
    docs = load_documents(args.files) if args.files else setup_documents(opts)
    try:
        return lint_or_raise(ui, docs, opts.namespace)
    except InputError as exc:
        ui.line(str(exc), style="red")
        return ExitCode.USAGE


# ------------------------------------------------------------------------------------------------ commands


def _summary(ctx: Ctx, what: str) -> None:
    changes = [c for c in ctx.runner.calls if c.kind == "change"]
    if ctx.opts.dry_run:
        ctx.ui.line(f"dry run: {len(changes)} command(s) above would change the cluster; nothing was touched",
                    style="bold")
    elif not changes:
        ctx.ui.line(f"{what}: nothing changed -- the cluster already matches the requested setup", style="bold green")
    else:
        ctx.ui.line(f"{what}: done, {len(changes)} change(s) made", style="bold green")


def _steps_between(first: str | None, last: str | None) -> list[Step]:
    names = [s.name for s in UP_STEPS]
    lo = names.index(first) if first else 0
    hi = names.index(last) if last else len(names) - 1
    if lo > hi:
        raise InputError(f"--from-step {first} comes after --to-step {last}")
    return list(UP_STEPS[lo:hi + 1])


def cmd_up(args: argparse.Namespace) -> int:
    opts = options_from_args(args)
    ctx = make_ctx(args, opts)
    steps = _steps_between(args.from_step, args.to_step)
    lint_or_raise(ctx.ui, setup_documents(opts), opts.namespace, quiet_ok=True)
    check_plan(opts, steps)
    preflight(ctx.runner, ctx.ui, needs(opts, ["up", *(s.name for s in steps)]))
    if args.from_step and steps[0].name != "cluster":
        ctx.ui.info(f"resuming at step {steps[0].number} ({steps[0].name})")
    code = run_steps(ctx, steps)
    _summary(ctx, "up")
    if not opts.dry_run:
        ctx.ui.info("next: `canary-setup status`, then `canary-setup loadtest` to verify the split in the mesh")
    return code


def cmd_step(args: argparse.Namespace) -> int:
    opts = options_from_args(args)
    ctx = make_ctx(args, opts)
    step = step_named(args.command)
    preflight(ctx.runner, ctx.ui, needs(opts, [step.name], uninstall_istio=ctx.down.uninstall_istio,
                                        delete_cluster=ctx.down.delete_cluster, loadtest_image=ctx.loadtest.image),
              versions=False)
    code = run_steps(ctx, [step], single=True)
    if step.name not in ("status", "loadtest"):
        _summary(ctx, step.name)
    return code


def cmd_plan(args: argparse.Namespace) -> int:
    opts = options_from_args(args)
    ui = Ui()
    ui.line(f"canary-setup plan (provider {opts.provider}, namespace {opts.namespace}, host {opts.host}, "
            f"weights {','.join(f'{k}={v}' for k, v in opts.weights.items())})", style="bold")
    rows = [(str(s.number), s.name, "yes" if s.in_up else "no", s.changes) for s in STEPS]
    ui.table("steps (`up` runs those marked yes; each is also its own command)", ("#", "step", "up", "changes"), rows)
    ui.line("every step reads the live state first and changes only what differs; "
            "`--dry-run` prints the exact commands and manifests")
    return 0


def cmd_preflight(args: argparse.Namespace) -> int:
    opts = options_from_args(args)
    ctx = make_ctx(args, opts)
    preflight(ctx.runner, ctx.ui, needs(opts, [s.name for s in UP_STEPS] + ["loadtest"]))
    if opts.provider == "existing" and not opts.dry_run:
        resolve_context(ctx)
        ctx.ui.done("ok", f"cluster reachable ({ctx.kube.context or 'current context'})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    common = common_parser()
    fmt = argparse.ArgumentDefaultsHelpFormatter

    up = subparsers.add_parser("up", parents=[common], help="run the lab's setup steps 1-6 in order (idempotent)",
                               description="Run cluster, istio, app, expose, canary and weights in order. A second "
                                           "run changes nothing and says so.")
    names = [s.name for s in UP_STEPS]
    up.add_argument("--from-step", choices=names, help="resume at this step (after a failure)")
    up.add_argument("--to-step", choices=names, help="stop after this step")
    up.set_defaults(func=cmd_up)

    plan = subparsers.add_parser("plan", parents=[common], help="list the steps and what each changes")
    plan.set_defaults(func=cmd_plan)
    pre = subparsers.add_parser("preflight", parents=[common], help="check binaries (with versions) and the context")
    pre.set_defaults(func=cmd_preflight)

    for step in STEPS:
        p = subparsers.add_parser(step.name, parents=[common], help=f"step {step.number}: {step.title}",
                                  description=f"Step {step.number} ({step.name}): {step.changes}.",
                                  formatter_class=fmt)
        if step.name == "weights":
            p.add_argument("percent", nargs="?", type=int, metavar="N", help="canary percent (rest production)")
        if step.name == "down":
            p.add_argument("--delete-cluster", action="store_true", help="also delete the cluster (gke or kind)")
            p.add_argument("--uninstall-istio", action="store_true", help="also uninstall Istio (istioctl --purge)")
        if step.name == "loadtest":
            p.add_argument("--users", type=_positive_int, default=20, help="Locust users")
            p.add_argument("--spawn-rate", type=float, default=20.0, help="users started per second")
            p.add_argument("--duration", default="60s", help="Locust run time (-t)")
            p.add_argument("--workers", type=_positive_int, default=2, help="Locust worker pods")
            p.add_argument("--results", default="out/cluster-results.jsonl", help="where the results file is copied")
            p.add_argument("--locustfile", help="locustfile for the ConfigMap (default: loadtest/boutique.py)")
            p.add_argument("--loadtest-image", help="image with this project installed (default: build it)")
            p.add_argument("--keep", action="store_true", help="keep the Locust resources afterwards")
            p.add_argument("--user-classes", nargs="+", default=list(DEFAULT_CLASSES), help="Locust user classes")
        p.set_defaults(func=cmd_step, command=step.name)

    lint = subparsers.add_parser("lint", parents=[common], help="offline checks of the manifests (weights, subsets, "
                                                                "labels, namespaces)")
    lint.add_argument("files", nargs="*", help="YAML files to check (default: what the setup would apply)")
    lint.set_defaults(func=cmd_lint)
