"""``canary-setup rollout``: the thin command over setup.rollout.driver (README "Progressive rollout")."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

from splitproof.setup.manifests import ISTIO_ROUTING, ROUTINGS
from splitproof.setup.rollout import events as ev
from splitproof.setup.rollout.driver import Driver, RolloutResult, StepSource
from splitproof.setup.rollout.plan import RolloutPlan, parse_duration, parse_steps
from splitproof.setup.router import Router
from splitproof.verifier import defaults
from splitproof.verifier.errors import InputError
from splitproof.verifier.exitcodes import ExitCode, epilog

DEFAULT_STEPS = "5,20,50,100"
DESCRIPTION = """Walk the canary through weight steps. Per step: set the weights through the Router, wait until the
proxies serve them (local: Envoy's config_dump; cluster: istioctl proxy-config routes), then gate the split
sequentially at the step's share (and the canary's health with --health) until a verdict or --step-timeout.
PASS: next step; after canary 100 the rollout is promoted. FAIL: roll back to production 100, confirm it on the
proxies and in a short sample. INCONCLUSIVE at the timeout: hold (weights kept, never promoted)."""
SOURCES = ("sample", "locust", "prometheus")
NOT_YET: dict[str, str] = {}


def say(message: str) -> None:
    print(f"rollout: {message}", flush=True)


def _percent_points(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected percentage points, got {text!r}") from None
    return value / 100


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "rollout", help="walk the canary 5 -> 20 -> 50 -> 100, each step proven on the proxies and gated; roll back "
                        "on FAIL", description=DESCRIPTION, epilog=epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", help=f"canary percentages, increasing, ending at 100 (default: {DEFAULT_STEPS})")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--local", action="store_true", help="drive the running local mesh (the default)")
    where.add_argument("--context", metavar="CTX", help="drive the cluster of this kube context")
    p.add_argument("--state-dir", help="the local mesh's state directory (default: $SPLITPROOF_STATE_DIR or "
                                       ".splitproof/local)")
    p.add_argument("--health", action="store_true", help="gate each step on the canary's health too (errors, "
                                                         "attributed by the version header)")
    p.add_argument("--source", choices=SOURCES, default="sample", help="where each step's evidence comes from "
                                                                       "(default: sample)")
    p.add_argument("--step-timeout", help="per step; no verdict by then = held, exit 3 (default: 10m; on "
                                          "--resume: the logged one)")
    p.add_argument("--alpha", type=float, default=None, help="bound on rolling back a correct, healthy canary over "
                                                             "the whole rollout, split over the steps (default 0.01)")
    p.add_argument("--tolerance", type=_percent_points, default=None, metavar="PP",
                   help="the split gate's margin in percentage points (default 5)")
    p.add_argument("--max-error-increase", type=_percent_points, default=None, metavar="PP",
                   help="health: the canary's error rate may exceed production's by less than this many percentage "
                        "points (default 1)")
    p.add_argument("--json-log", metavar="FILE", help="one JSON line per event, fsync'd (needed for --resume)")
    p.add_argument("--html", metavar="FILE", help="HTML report of every step")
    p.add_argument("--resume", action="store_true", help="continue the rollout in --json-log without repeating "
                                                         "a completed step")
    p.add_argument("--on-interrupt", choices=("keep", "rollback"), default="keep",
                   help="Ctrl-C keeps the current weights (default) or rolls back to production 100")
    p.add_argument("--dry-run", action="store_true", help="print every action in order; touch nothing")
    g = p.add_argument_group("--source prometheus (the real traffic, as Prometheus counts it)")
    g.add_argument("--prometheus", metavar="URL", help="Prometheus base URL")
    g.add_argument("--metric", choices=("istio", "envoy"), help="istio_requests_total (default with --context) or "
                   "Envoy's cluster counters (default with --local: the mesh's Envoy scraped at /stats/prometheus)")
    g.add_argument("--interval", type=float, help="seconds between polls (default: Prometheus' scrape interval)")
    g = p.add_argument_group("cluster (with --context)")
    g.add_argument("-n", "--namespace", default="online-boutique", help="application namespace")
    g.add_argument("--target", metavar="HOST:PORT", help="gRPC address that applies the split (a gateway route)")
    g.add_argument("--url", help="the shop through the ingress gateway (product pages: 4 vs 2 recommendations)")
    g.add_argument("--header", metavar="NAME", help="response header naming the version (needed for --health)")
    g.add_argument("--proxy-timeout", type=float, default=120.0, help="seconds for the proxies to serve a step")
    g.add_argument("--routing", choices=ROUTINGS, default=ISTIO_ROUTING,
                   help="how the cluster routes the canary: istio (DestinationRule + VirtualService) or gateway-api "
                        "(per-version Services + HTTPRoute); the local mesh knows its own (default: %(default)s)")
    p.set_defaults(func=cmd_rollout)


def where_of(args: argparse.Namespace) -> dict[str, str]:
    """Which mesh or cluster this run drives (logged; --resume must drive the same one)."""
    if args.context:
        return {"context": args.context, "namespace": args.namespace}
    from splitproof.setup.mesh.statedir import default_state_dir

    return {"local": str(Path(args.state_dir or default_state_dir()).resolve())}


def plan_from_args(args: argparse.Namespace) -> tuple[RolloutPlan, int, bool]:
    """(the plan, the step index to start at, resumed?)."""
    timeout = parse_duration(args.step_timeout or "10m")
    if args.source in NOT_YET:
        raise InputError(NOT_YET[args.source])
    if args.resume:
        if not args.json_log:
            raise InputError("--resume needs --json-log FILE (the log of the rollout to continue)")
        state = ev.resume_state(ev.read_events(args.json_log), args.json_log)
        here = where_of(args)
        if state.where and state.where != here:
            logged = ", ".join(f"{k} {v}" for k, v in state.where.items())
            raise InputError(f"--resume: the rollout in {args.json_log} drove {logged}, not "
                             f"{', '.join(f'{k} {v}' for k, v in here.items())}")
        if args.steps is not None and parse_steps(args.steps) != state.plan.steps:
            raise InputError(f"--resume: --steps {args.steps} differs from the logged rollout's "
                             f"{','.join(map(str, state.plan.steps))} (leave --steps out)")
        plan = RolloutPlan(state.plan.steps, timeout if args.step_timeout else state.plan.step_timeout,
                           state.plan.alpha, state.plan.tolerance, state.plan.health or args.health,
                           state.plan.source, state.plan.max_error_increase)
        return plan, state.next_index, True
    steps = parse_steps(args.steps or DEFAULT_STEPS)
    increase = defaults.MAX_ERROR_INCREASE if args.max_error_increase is None else args.max_error_increase
    return RolloutPlan(steps, timeout, 0.01 if args.alpha is None else args.alpha,
                       0.05 if args.tolerance is None else args.tolerance, args.health, args.source,
                       increase), 0, False


def resume_hint(args: argparse.Namespace) -> str:
    if not args.json_log:
        return ""
    where = f"--context {args.context}" if args.context else "--local"
    if args.state_dir:
        where += f" --state-dir {args.state_dir}"
    return f"canary-setup rollout --resume --json-log {args.json_log} {where}"


def cmd_rollout(args: argparse.Namespace) -> int:
    plan, start, resumed = plan_from_args(args)
    if args.context:
        from splitproof.setup.rollout.targets import cluster_parts

        router, source, next_steps = cluster_parts(args, plan, say)
    else:
        from splitproof.setup.rollout.targets import local_parts

        router, source, next_steps = local_parts(args, plan, say)
    if args.dry_run:
        return _dry(plan, start, router, source, next_steps)
    if args.json_log and not resumed and Path(args.json_log).exists() and Path(args.json_log).stat().st_size:
        raise InputError(f"--json-log {args.json_log} already holds a rollout: continue it with --resume, or give "
                         "a new file")
    try:
        with _exclusive(args, plan):
            return _walk(args, plan, start, resumed, router, source, next_steps)
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()  # a source's own processes (Locust) end with the walk


def _exclusive(args: argparse.Namespace, plan: RolloutPlan) -> contextlib.AbstractContextManager[None]:
    """The local mesh's rollout lock for the whole walk: a second rollout (or `local weights`) there exits 9.
    A cluster has no such lock (README "Progressive rollout")."""
    if args.context:
        return contextlib.nullcontext()
    from splitproof.setup.mesh.statedir import rollout_lock

    since = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    steps = ",".join(map(str, plan.steps))
    return rollout_lock(Path(where_of(args)["local"]), f"pid {os.getpid()}, steps {steps}, since {since}")


def _walk(args: argparse.Namespace, plan: RolloutPlan, start: int, resumed: bool, router: Router,
          source: StepSource, next_steps: tuple[str, ...]) -> int:
    log = ev.EventLog(args.json_log)
    if resumed:
        done = ", ".join(f"{p}%" for p in plan.steps[:start]) or "none"
        say(f"resuming from {args.json_log}: steps passed before: {done}")
    driver = Driver(plan, router, source, log, say=say, on_interrupt=args.on_interrupt,
                    promoted_next=next_steps, resume_hint=resume_hint(args), where=where_of(args))
    try:
        result = driver.run(start, resumed=resumed)
    finally:
        log.close()
    if args.html:
        from splitproof.setup.rollout.report import write_report

        events = ev.read_events(args.json_log) if args.json_log else log.events
        try:
            write_report(args.html, events)
            say(f"report: {args.html}")
        except OSError as exc:  # the walk's outcome stands: say why there is no report, keep the exit code
            print(f"rollout: could not write --html {args.html}: {exc.strerror or exc}", file=sys.stderr)
    _finish(result)
    return int(result.code)


def _dry(plan: RolloutPlan, start: int, router: Router, source: StepSource, next_steps: tuple[str, ...]) -> int:
    """The same driver over the printing router and source (setup.rollout.dryrun): every action, in order."""
    say(f"dry run: steps {' -> '.join(map(str, plan.steps))}, from step {start + 1}; nothing is changed")
    result = Driver(plan, router, source, ev.EventLog(None), say=say, promoted_next=next_steps).run(start)
    say("then: promoted (exit 0); next, in the lab's terms:")
    for line in result.next_steps:
        say(f"  {line}")
    return int(ExitCode.OK)


def _finish(result: RolloutResult) -> None:
    stream: Any = sys.stdout if result.code == ExitCode.OK else sys.stderr
    print(f"rollout: {result.message}", file=stream, flush=True)
    for line in result.next_steps:
        if line:
            print(f"  next: {line}", file=stream, flush=True)
