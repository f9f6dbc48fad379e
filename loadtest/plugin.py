"""Wires the split recording, the live verdict and the web UI into Locust's event hooks.

One SplitSession per Locust Environment (per process). Roles:
  local   -- a plain ``locust`` run: writes the records itself and keeps the live split.
  master  -- ``--master`` or the parent of ``--processes``: writes what workers report, keeps the live split,
             decides the verdict and the exit code.
  worker  -- ``--worker`` or a ``--processes`` child: attributes, buffers records, ships them with its stats.
"""

from __future__ import annotations

import logging
import sys
import weakref
from dataclasses import dataclass, field, replace
from typing import Any

import gevent
from locust import events as locust_events
from locust.env import Environment
from locust.exception import CatchResponseError
from locust.runners import MasterRunner, WorkerRunner

from splitproof.loadtest import grpc_client
from splitproof.loadtest.ending import (
    RESTARTED,
    RUN_TIME_LIMIT,
    STOP_ON_VERDICT,
    STOPPED,
    refresh_event_loop_clock,
    stopped_by_run_time_limit,
)
from splitproof.loadtest.options import SplitConfig, UsageError, add_arguments, config_from_options, parse_target
from splitproof.loadtest.recording import SplitRecorder, open_results
from splitproof.verifier.exitcodes import ExitCode
from splitproof.verifier.inputs.attribution import Attribution

log = logging.getLogger("splitproof")

CONSOLE_INTERVAL_S = 5.0


class UnattributableResponse(CatchResponseError):
    """A response whose recommendation count maps to no version (reported to Locust as the failure's cause)."""


@dataclass
class SplitSession:
    config: SplitConfig
    recorder: SplitRecorder
    role: str = "local"
    live: Any = None  # loadtest.live.LiveSplit when an expected split is given (master/local only)
    missing_target_reported: bool = False
    stopping: bool = False
    verdict: Any = None
    greenlets: list[gevent.Greenlet] = field(default_factory=list)
    tests: int = 0                # tests started in this process (the web UI can start several)
    ended_by: str | None = None   # why the last test stopped (loadtest.ending), None while it runs

    @property
    def attribution(self) -> Attribution:
        return self.config.attribution


_sessions: weakref.WeakKeyDictionary[Environment, SplitSession] = weakref.WeakKeyDictionary()
_installed = False


def _role(runner: Any) -> str:
    if isinstance(runner, WorkerRunner):
        return "worker"
    if isinstance(runner, MasterRunner):
        return "master"
    return "local"


def session(environment: Environment) -> SplitSession:
    """The process's session; created leniently (defaults for bad options) when init did not run."""
    found = _sessions.get(environment)
    if found is None:
        try:
            config = config_from_options(environment.parsed_options)
        except UsageError:
            config = SplitConfig()
        role = _role(environment.runner)
        found = SplitSession(config, SplitRecorder("worker" if role == "worker" else "local"), role)
        _sessions[environment] = found
    return found


def user_session(user: Any) -> SplitSession:
    """:func:`session` of the user's environment, kept on the user (a user lives in one environment): the users
    ask for it at every request and every wait, and a weak-key lookup each time was a measurable share of them."""
    try:
        return user._splitproof_session  # type: ignore[no-any-return]
    except AttributeError:
        found = user._splitproof_session = session(user.environment)
        return found


def think_time(user: Any) -> float:
    """wait_time for the boutique users: ``--think-time MIN[:MAX]`` seconds (default 0)."""
    try:  # kept on the user as its session is (Locust asks after every task)
        lo, hi = user._splitproof_think_time
    except AttributeError:
        lo, hi = user._splitproof_think_time = user_session(user).config.think_time
    if hi <= lo:
        return lo
    import random

    return random.uniform(lo, hi)


def report_missing_grpc_target(environment: Environment) -> None:
    """Tell Locust (once per process) that a RecommendationUser had nowhere to connect."""
    s = session(environment)
    if s.missing_target_reported:
        return
    s.missing_target_reported = True
    environment.events.request.fire(
        request_type="grpc", name="ListRecommendations", response_time=0.0, response_length=0, response=None,
        context={}, exception=UsageError("RecommendationUser needs --grpc-target HOST:PORT"), url=None)


def _usage_error(message: str) -> None:
    print(f"locust: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(ExitCode.USAGE)


# ------------------------------------------------------------------------------------------------- listeners


def _on_parser(parser: Any, **_kw: Any) -> None:
    add_arguments(parser)


def _drop_recommendation_user_without_target(environment: Environment, config: SplitConfig) -> None:
    if config.grpc_target:
        return
    named = list(getattr(environment.parsed_options, "user_classes", None) or [])
    if "RecommendationUser" in named:
        _usage_error("RecommendationUser needs --grpc-target HOST:PORT (the mesh entry that applies the split)")
    classes = environment.user_classes
    kept = [c for c in classes if c.__name__ != "RecommendationUser"]
    if len(kept) != len(classes) and kept:
        log.info("RecommendationUser left out: no --grpc-target given")
        classes[:] = kept


def _on_init(environment: Environment, runner: Any = None, web_ui: Any = None, **_kw: Any) -> None:
    role = _role(runner)
    try:
        config = config_from_options(environment.parsed_options)
    except UsageError as exc:
        if role == "worker":  # the master validates the same options and reports them; use defaults here
            config = SplitConfig()
        else:
            _usage_error(str(exc))
            return
    writer = None
    if role != "worker":
        _drop_recommendation_user_without_target(environment, config)
        if config.results_path:
            try:
                writer = open_results(config.results_path, config.append)
            except OSError as exc:
                _usage_error(f"--split-results {config.results_path}: {exc.strerror or exc}")
    recorder = SplitRecorder("worker" if role == "worker" else ("master" if role == "master" else "local"), writer)
    s = SplitSession(config, recorder, role)
    _sessions[environment] = s
    if role != "worker" and config.expected is not None:
        from splitproof.loadtest.live import LiveSplit

        s.live = LiveSplit(config)
        if config.health is not None:
            recorder.record_observers.append(s.live.observe_records)
        recorder.observers.append(s.live.observe_response)
        if config.stop_on_verdict:  # (set on the command line only: a test started from the web UI keeps it)
            recorder.observers.append(lambda _version, _cause: _maybe_stop(environment, s))
    if role != "worker":
        if web_ui is not None:
            from splitproof.loadtest import webui

            webui.install(web_ui, lambda: s)
        opts = environment.parsed_options
        if opts is not None and getattr(opts, "headless", False) and not getattr(opts, "only_summary", False):
            s.greenlets.append(gevent.spawn(_console_printer, s))
    # Locust arms its -t timer right after init, counting from the event loop's cached time, which is as old as
    # the locustfile's imports: refresh it so that -t N generates load for N seconds (see loadtest.ending).
    refresh_event_loop_clock()


def _on_test_start(environment: Environment, **_kw: Any) -> None:
    s = session(environment)
    s.tests += 1
    s.ended_by = None
    if s.role == "worker":
        # Workers receive the master's options with the spawn message, right before test_start.
        try:
            s.config = config_from_options(environment.parsed_options)
        except UsageError as exc:
            log.warning("ignoring the master's splitproof options: %s", exc)
    else:
        # --grpc-target is on the web UI's start form: take what the user typed there.
        try:
            target = parse_target(getattr(environment.parsed_options, "grpc_target", None))
        except UsageError as exc:
            log.error("%s", exc)
        else:
            if target != s.config.grpc_target:
                s.config = replace(s.config, grpc_target=target)
    _apply_shopper_tasks(environment, s.config)


def _apply_shopper_tasks(environment: Environment, config: SplitConfig) -> None:
    if config.shopper_tasks is None:
        return
    for user_class in list(environment.user_classes):
        apply = getattr(user_class, "apply_task_weights", None)
        if apply is not None:
            apply(config.shopper_tasks)


def _on_report_to_master(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
    for env, s in list(_sessions.items()):
        if s.role == "worker" and env.runner is not None and getattr(env.runner, "client_id", None) == client_id:
            s.recorder.drain_into(data)


def _on_worker_report(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
    for s in list(_sessions.values()):
        if s.role == "master":
            s.recorder.receive(data)


def _maybe_stop(environment: Environment, s: SplitSession) -> None:
    if s.stopping or not s.config.stop_on_verdict or s.live is None or not s.live.decided:
        return
    s.stopping = True
    runner = environment.runner
    if runner is None:
        return
    log.info("sequential test decided (%s): stopping the test (--stop-on-verdict)", s.live.sequential_outcome())
    headless = bool(getattr(environment.parsed_options, "headless", False))
    # Never stop the runner from inside a user greenlet (it would kill itself): spawn the stop.
    gevent.spawn(runner.quit if headless else runner.stop)


def _console_printer(s: SplitSession) -> None:
    while True:
        gevent.sleep(CONSOLE_INTERVAL_S)
        if s.live is not None:
            log.info("%s", s.live.console_line())
        elif s.recorder.received:
            log.info("split records: %d", s.recorder.received)


def _on_test_stopping(environment: Environment, **_kw: Any) -> None:
    """Record why the test stops; fired in the greenlet that stops it (Locust's timer, Ctrl-C, the web UI...)."""
    s = _sessions.get(environment)
    if s is None or s.role == "worker" or s.ended_by is not None:
        return
    if s.stopping:
        s.ended_by = STOP_ON_VERDICT
    elif stopped_by_run_time_limit():
        s.ended_by = RUN_TIME_LIMIT
    else:
        s.ended_by = STOPPED


def stop_reason(s: SplitSession) -> str:
    """Why the load of the session's run stopped, as the verdict needs it (loadtest.live.final_verdict)."""
    if s.tests > 1:
        return RESTARTED
    return s.ended_by or STOPPED


def _on_quitting(environment: Environment, **_kw: Any) -> None:
    s = _sessions.get(environment)
    if s is None or s.role == "worker":
        return
    runner = environment.runner
    # With the web UI, Ctrl-C reaches here before the runner quit: quit it now so that the workers' final
    # reports (and the users' last records) arrive before the verdict is taken.
    if runner is not None and len(runner.greenlet) > 0:
        runner.quit()
    for greenlet in s.greenlets:
        greenlet.kill(block=False)
    s.recorder.flush_order()  # responses still waiting for a request that never ended count too (fixed-n)
    if s.live is not None:
        s.verdict = s.live.final_verdict(stop_reason(s))
        environment.process_exit_code = s.live.exit_code(s.verdict)
    s.recorder.close()


def _on_quit(exit_code: int, **_kw: Any) -> None:
    for s in list(_sessions.values()):
        if s.role == "worker":
            continue
        if s.config.results_path:
            log.info("%d split records in %s", s.recorder.received, s.config.results_path)
        if s.live is not None and s.verdict is not None:
            log.info("split verdict (%s): %s - %s (exit code %d)", s.verdict.method, s.verdict.outcome,
                     s.verdict.reason, s.live.exit_code(s.verdict))
            if s.live.health_verdict is not None:
                log.info("health verdict (%s): %s - %s", s.live.health_verdict.method, s.live.health_verdict.outcome,
                         s.live.health_verdict.reason)
            s.live.print_verdict(s.verdict)


def _close_grpc_channels(**_kw: Any) -> None:
    grpc_client.close_channels()  # every role: the RecommendationUser channels of this process


def install(events: Any = locust_events) -> None:
    """Register the listeners once per process (the locustfile may be imported more than once)."""
    global _installed
    if _installed:
        return
    _installed = True
    events.init_command_line_parser.add_listener(_on_parser)
    events.init.add_listener(_on_init)
    events.test_start.add_listener(_on_test_start)
    events.test_stopping.add_listener(_on_test_stopping)
    events.report_to_master.add_listener(_on_report_to_master)
    events.worker_report.add_listener(_on_worker_report)
    events.quitting.add_listener(_on_quitting)
    events.quit.add_listener(_on_quit)
    events.quit.add_listener(_close_grpc_channels)
