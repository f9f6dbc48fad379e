"""The rollout's parts for where it runs: the local mesh (its state directory: LocalRouter, the mesh gRPC entry,
its ``--version-header``) or a cluster (ClusterRouter over kubectl/istioctl, ``--target``/``--url`` to sample).
Each returns (router, source, what the user does after the promotion in the lab's terms)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from splitproof.setup.errors import NotRunningError
from splitproof.setup.rollout.driver import StepSource
from splitproof.setup.rollout.dryrun import DryLocalRouter, DrySource
from splitproof.setup.rollout.plan import RolloutPlan
from splitproof.setup.rollout.sources import HEALTH_NEEDS_HEADER, SampleSource, SampleTarget
from splitproof.setup.router import Router, Routing
from splitproof.verifier.errors import InputError
from splitproof.verifier.telemetry.clusters import Service

LOCAL_NEXT = (
    "the canary (recommendationservice-canary, max_responses 2) now takes every request: make its code the "
    "production recommendationservice (the lab: set the production Deployment's image to the canary's)",
    "then route back to the production subset (`canary-setup local weights 0`) and retire the canary",
)


def cluster_next(ns: str, context: str) -> tuple[str, ...]:
    return (
        "the canary subset (Deployment recommendationservice-canary, version: canary) serves 100%; make it the "
        f"production version: `kubectl --context {context} -n {ns} set image deployment/recommendationservice "
        "server=<the canary's image>` and `kubectl rollout status` it",
        f"then route back to production (`canary-setup weights 0 --context {context}`) and delete the canary: "
        f"`kubectl --context {context} -n {ns} delete deployment recommendationservice-canary`",
    )


def local_parts(args: argparse.Namespace, plan: RolloutPlan,
                say: Callable[[str], None]) -> tuple[Router, StepSource, tuple[str, ...]]:
    from splitproof.setup.mesh.router import LocalRouter
    from splitproof.setup.mesh.statedir import default_state_dir, read_state

    if args.target or args.url:
        raise InputError("--target/--url are for --context: with --local the rollout samples the mesh's own gRPC "
                         "entry")
    state_dir = Path(args.state_dir) if args.state_dir else default_state_dir()
    state = read_state(state_dir)
    if state is None:
        raise NotRunningError(f"no local mesh is running in {state_dir} (start one: `canary-setup local up "
                              "--detach --version-header x-version`)")
    entry = state.mesh_addresses().get(state.params.service)
    header = state.params.version_header
    if plan.health and header is None and args.source == "sample":
        raise InputError(f"{HEALTH_NEEDS_HEADER} (the mesh in {state_dir} sets no version header)")
    if plan.health and args.source == "locust":
        from splitproof.setup.rollout.locustsource import LOCUST_NO_HEALTH

        raise InputError(LOCUST_NO_HEALTH)
    if not entry:
        raise NotRunningError(f"the local mesh in {state_dir} has no gRPC entry for {state.params.service}")
    target = SampleTarget(target=entry, header=header)
    if header is None and args.source == "sample":
        say("attribution by item count (5 production, 2 canary); failed calls name no version, so --health is "
            "unavailable (start the mesh with --version-header x-version for it)")
    if args.dry_run:
        routing = Routing(state.params.service, state.params.namespace)
        return DryLocalRouter(routing, str(state_dir), say), DrySource(entry, say), LOCAL_NEXT
    service = Service(state.params.service, state.params.namespace)
    if args.source == "prometheus" and not args.prometheus:  # the mesh's own (`local up --prometheus`)
        args.prometheus = state.telemetry.prometheus_url
        if not args.prometheus:
            raise InputError(f"--source prometheus: the mesh in {state_dir} runs no Prometheus (start it with "
                             "`canary-setup local up --prometheus`) and no --prometheus URL was given")
    metric = "istio" if state.telemetry.exporter_url else "envoy"  # the mesh exports istio_requests_total
    return LocalRouter(state_dir), make_source(args, plan, target, metric, service, state.ingress_url()), LOCAL_NEXT


def cluster_parts(args: argparse.Namespace, plan: RolloutPlan,
                  say: Callable[[str], None]) -> tuple[Router, StepSource, tuple[str, ...]]:
    from splitproof.setup.cluster.cli import make_ctx
    from splitproof.setup.cluster.options import SERVICE, Options
    from splitproof.setup.cluster.router import ClusterRouter, cluster_routing
    from splitproof.setup.cluster.weights import check_subsets

    if not (args.target or args.url) and not args.dry_run and args.source == "sample":
        raise InputError("--context needs --target HOST:PORT (a gRPC gateway route) or --url URL (the shop through "
                         "the ingress gateway) to sample each step")
    if args.target and args.url:
        raise InputError("give one of --target or --url, not both")
    if plan.health and args.header is None and args.source == "sample":
        raise InputError(HEALTH_NEEDS_HEADER)
    if args.proxy_timeout <= 0:
        raise InputError("--proxy-timeout must be a positive number of seconds")
    opts = Options(context=args.context, namespace=args.namespace, proxy_timeout=args.proxy_timeout,
                   dry_run=args.dry_run, weights={"production": 100 - plan.steps[0], "canary": plan.steps[0]})
    ctx = make_ctx(args, opts)
    check_subsets(ctx)  # the DestinationRule must define both subsets before any weight moves
    router = ClusterRouter(ctx, cluster_routing(ctx))
    where = args.prometheus if args.source == "prometheus" else args.target or args.url or "<--target or --url>"
    next_steps = cluster_next(args.namespace, args.context)
    if args.dry_run:
        return router, DrySource(where, say), next_steps
    target = SampleTarget(target=args.target, url=args.url, header=args.header) if args.source == "sample" else None
    if args.source == "locust" and plan.health:
        from splitproof.setup.rollout.locustsource import LOCUST_NO_HEALTH

        raise InputError(LOCUST_NO_HEALTH)
    return router, make_source(args, plan, target, "istio", Service(SERVICE, args.namespace)), next_steps


def make_source(args: argparse.Namespace, plan: RolloutPlan, target: SampleTarget | None,
                default_metric: str, service: Service, locust_host: str | None = None) -> StepSource:
    """The step source ``--source`` names: live sampling of ``target``, or Prometheus (setup.rollout.passive)."""
    if args.source == "sample":
        assert target is not None
        return SampleSource(target, health=plan.health)
    if args.source == "locust":
        import tempfile

        from splitproof.setup.rollout.locustsource import LocustSource

        host = locust_host or args.url
        if not host:
            raise InputError("--source locust with --context needs --url URL (the shop through the ingress "
                             "gateway; --target HOST:PORT adds the gRPC user)")
        return LocustSource(host, target.target if target else args.target,
                            Path(tempfile.mkdtemp(prefix="splitproof-rollout-locust-")), health=plan.health)
    from splitproof.setup.rollout.passive import PrometheusSource, series_spec
    from splitproof.verifier.command.telemetry import scrape_interval
    from splitproof.verifier.telemetry import PrometheusClient

    if not args.prometheus:
        raise InputError("--source prometheus needs --prometheus URL")
    metric = args.metric or default_metric
    if plan.health and metric == "envoy":
        from splitproof.setup.rollout.passive import ENVOY_NO_HEALTH

        raise InputError(ENVOY_NO_HEALTH)
    client = PrometheusClient.from_url(args.prometheus)
    interval = args.interval
    if interval is None:
        interval, _how = scrape_interval(client)
    spec = series_spec(client, metric, service)
    return PrometheusSource(client, spec, interval, health=plan.health, metric=metric)
