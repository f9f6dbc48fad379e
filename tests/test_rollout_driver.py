"""The rollout driver as a state machine over a scripted Router and source (no process): every transition, the
event log and resume, interrupts, dry-run order, the plan's parsing and error budget."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from splitproof.setup.errors import WaitTimeoutError
from splitproof.setup.rollout import events as ev
from splitproof.setup.rollout.driver import Driver, NoCanaryCheck, StepVerdict
from splitproof.setup.rollout.dryrun import DryLocalRouter, DrySource
from splitproof.setup.rollout.plan import ROLLBACK_WEIGHTS, RolloutPlan, parse_duration, parse_steps
from splitproof.setup.router import ProxyWeights, Routing, ServedWeights, normalize
from splitproof.verifier.errors import InputError, Unreachable
from splitproof.verifier.exitcodes import ExitCode

PLAN = RolloutPlan((5, 20, 50, 100), step_timeout=60.0)


class ScriptedRouter:
    """Records every call; serves what was set unless told a weight set is never served."""

    def __init__(self, never_served: tuple[Mapping[str, int], ...] = ()) -> None:
        self.calls: list[tuple[str, dict[str, int]]] = []
        self.current: dict[str, int] = {"production": 100, "canary": 0}
        self.never = [normalize(w) for w in never_served]

    @property
    def routing(self) -> Routing:
        return Routing("recommendationservice", "online-boutique")

    def set_weights(self, weights: Mapping[str, int]) -> None:
        self.calls.append(("set", dict(weights)))
        self.current = dict(weights)

    def served_weights(self) -> ServedWeights:
        return ServedWeights(self.current, (ProxyWeights("proxy", normalize(self.current)),))

    def wait_served(self, weights: Mapping[str, int] | None = None, timeout: float | None = None) -> ServedWeights:
        want = dict(self.current if weights is None else weights)
        self.calls.append(("wait", want))
        if normalize(want) in self.never:
            raise WaitTimeoutError(f"the proxies did not serve {want} within 1s: proxy holds production=100")
        return ServedWeights(want, (ProxyWeights("proxy", normalize(want)),))


class ScriptedSource:
    def __init__(self, outcomes: Mapping[int, object] | None = None, canary_after_rollback: int = 0) -> None:
        self.outcomes = dict(outcomes or {})
        self.judged: list[int] = []
        self.checks = 0
        self.canary_after_rollback = canary_after_rollback

    def judge(self, plan: RolloutPlan, step, timeout: float) -> StepVerdict:
        self.judged.append(step.percent)
        outcome = self.outcomes.get(step.percent, "PASS")
        if isinstance(outcome, BaseException):
            raise outcome
        return StepVerdict(str(outcome), f"scripted {outcome}", samples=100, split=str(outcome))

    def confirm_no_canary(self) -> NoCanaryCheck:
        self.checks += 1
        return NoCanaryCheck(200, self.canary_after_rollback)


def run(outcomes=None, *, never=(), canary_after=0, on_interrupt="keep", log_path=None, start=0, resumed=False,
        plan=PLAN):
    router, source = ScriptedRouter(never), ScriptedSource(outcomes, canary_after)
    lines: list[str] = []
    log = ev.EventLog(log_path)
    result = Driver(plan, router, source, log, say=lines.append, on_interrupt=on_interrupt,
                    resume_hint="canary-setup rollout --resume --json-log L").run(start, resumed=resumed)
    log.close()
    return result, router, source, [e["event"] for e in log.events], log.events


def sets(router: ScriptedRouter) -> list[dict[str, int]]:
    return [w for kind, w in router.calls if kind == "set"]


def test_all_steps_pass_promotes_with_every_step_set_served_and_judged_in_order() -> None:
    result, router, source, kinds, _ = run()
    assert result.code == ExitCode.OK and result.message.startswith("promoted")
    assert router.calls == [c for p in (5, 20, 50, 100) for c in
                            (("set", {"production": 100 - p, "canary": p}),
                             ("wait", {"production": 100 - p, "canary": p}))]
    assert source.judged == [5, 20, 50, 100] and source.checks == 0
    step = [ev.STEP_STARTED, ev.WEIGHTS_WRITTEN, ev.WEIGHTS_SERVED, ev.VERDICT]
    assert kinds == [ev.ROLLOUT_STARTED, *step * 4, ev.PROMOTED]


def test_a_fail_rolls_back_verifies_and_exits_1_naming_the_step_and_reason() -> None:
    result, router, source, kinds, events = run({20: "FAIL"})
    assert result.code == ExitCode.FAIL
    assert "step 2/4 (canary 20%)" in result.message and "scripted FAIL" in result.message
    assert "Production 100% is served" in result.message and "200 responses" in result.message
    assert sets(router) == [{"production": 95, "canary": 5}, {"production": 80, "canary": 20}, ROLLBACK_WEIGHTS]
    assert router.calls[-1] == ("wait", ROLLBACK_WEIGHTS)  # the rollback itself is read back from the proxies
    assert source.judged == [5, 20] and source.checks == 1
    assert kinds[-3:] == [ev.VERDICT, ev.ROLLBACK_STARTED, ev.ROLLED_BACK]
    assert events[-1]["verified"] is True and events[-1]["check_canary"] == 0


def test_canary_traffic_after_the_rollback_is_reported_as_not_clean() -> None:
    result, *_, events = run({5: "FAIL"}, canary_after=3)
    assert result.code == ExitCode.FAIL and "NOT clean" in result.message and "3 of 200" in result.message
    assert events[-1]["event"] == ev.ROLLED_BACK and events[-1]["verified"] is False


def test_proxies_never_serving_a_step_fail_it_without_judging_and_roll_back() -> None:
    result, router, source, kinds, events = run(never=({"production": 50, "canary": 50},))
    assert result.code == ExitCode.FAIL and "never served" in result.message
    assert source.judged == [5, 20]  # nothing counted at 50: the proxies did not serve it
    verdicts = [e for e in events if e["event"] == ev.VERDICT]
    assert verdicts[-1]["outcome"] == "FAIL" and verdicts[-1]["percent"] == 50
    assert sets(router)[-1] == ROLLBACK_WEIGHTS


def test_a_rollback_the_proxies_never_serve_is_not_claimed_as_done() -> None:
    result, *_, events = run({5: "FAIL"}, never=(ROLLBACK_WEIGHTS,))
    assert result.code == ExitCode.FAIL and "NOT confirmed" in result.message
    assert events[-1]["event"] == ev.ROLLED_BACK and events[-1]["verified"] is False


def test_inconclusive_at_the_timeout_holds_keeps_the_weights_and_never_promotes() -> None:
    result, router, source, kinds, events = run({50: "INCONCLUSIVE"})
    assert result.code == ExitCode.INCONCLUSIVE and "held at step 3/4" in result.message
    assert "weights kept at production=50,canary=50" in result.message
    assert sets(router)[-1] == {"production": 50, "canary": 50} and source.judged == [5, 20, 50]
    assert kinds[-1] == ev.HELD and ev.PROMOTED not in kinds
    assert "--step-timeout" in result.next_steps[0]


def test_ctrl_c_keeps_the_weights_and_says_so() -> None:
    result, router, source, kinds, events = run({20: KeyboardInterrupt()})
    assert result.code == ExitCode.INTERRUPTED
    assert "weights kept at production=80,canary=20" in result.message and "nothing rolled back" in result.message
    assert ROLLBACK_WEIGHTS not in sets(router)
    assert events[-1]["event"] == ev.INTERRUPTED and events[-1]["action"] == "keep"
    assert "--resume" in result.next_steps[0]


def test_ctrl_c_with_on_interrupt_rollback_rolls_back() -> None:
    result, router, source, kinds, events = run({20: KeyboardInterrupt()}, on_interrupt="rollback")
    assert result.code == ExitCode.INTERRUPTED and "rolled back" in result.message
    assert sets(router)[-1] == ROLLBACK_WEIGHTS and source.checks == 1
    assert kinds[-3:] == [ev.INTERRUPTED, ev.ROLLBACK_STARTED, ev.ROLLED_BACK]


def test_an_unreachable_target_stops_with_exit_4_and_keeps_the_weights() -> None:
    result, router, _, kinds, _ = run({20: Unreachable("target unreachable: nothing answers")})
    assert result.code == ExitCode.UNREACHABLE and "weights kept at production=80,canary=20" in result.message
    assert kinds[-1] == ev.ABORTED and ROLLBACK_WEIGHTS not in sets(router)


def test_every_event_is_one_fsynced_json_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = ev.os.fsync
    monkeypatch.setattr(ev.os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    log = tmp_path / "log.jsonl"
    _, _, _, kinds, _ = run(log_path=log)
    lines = log.read_text().splitlines()
    assert [json.loads(line)["event"] for line in lines] == kinds and len(synced) == len(kinds)
    assert all({"t", "event"} <= set(json.loads(line)) for line in lines)


def test_resume_continues_after_the_last_passed_step_without_repeating_it(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    run({50: KeyboardInterrupt()}, log_path=log)   # 5 and 20 passed; interrupted in 50
    with open(log, "a") as fh:
        fh.write('{"t": 1, "event": "step_sta')    # and a line torn by a SIGKILL
    state = ev.resume_state(ev.read_events(log))
    assert (state.passed, state.next_index, state.plan) == ((5, 20), 2, PLAN)
    result, router, source, kinds, _ = run(log_path=log, start=state.next_index, resumed=True)
    assert result.code == ExitCode.OK and source.judged == [50, 100]
    assert sets(router) == [{"production": 50, "canary": 50}, {"production": 0, "canary": 100}]
    assert kinds[0] == ev.ROLLOUT_RESUMED
    with pytest.raises(InputError, match="already ended"):
        ev.resume_state(ev.read_events(log))


def test_resume_refuses_logs_that_hold_no_rollout(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"t": 1, "event": "step_started"}\n')
    with pytest.raises(InputError, match="holds no rollout"):
        ev.resume_state(ev.read_events(bad))
    bad.write_text("not json\n{}\n")
    with pytest.raises(InputError, match="line 1 is not JSON"):
        ev.read_events(bad)
    with pytest.raises(InputError, match="cannot read"):
        ev.read_events(tmp_path / "missing.jsonl")


def test_a_resumed_log_whose_steps_all_passed_is_promoted_at_once(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    run(log_path=log)
    lines = log.read_text().splitlines()[:-1]  # killed right before `promoted` was written
    log.write_text("\n".join(lines) + "\n")
    state = ev.resume_state(ev.read_events(log))
    result, router, source, kinds, _ = run(log_path=log, start=state.next_index, resumed=True)
    assert result.code == ExitCode.OK and source.judged == [] and router.calls == []


def test_dry_run_prints_every_action_in_order_and_touches_nothing() -> None:
    lines: list[str] = []
    routing = Routing("recommendationservice", "online-boutique")
    router, source = DryLocalRouter(routing, "/state", lines.append), DrySource("127.0.0.1:1", lines.append)
    log = ev.EventLog(None)
    result = Driver(RolloutPlan((20, 100), health=True), router, source, log, say=lines.append).run()
    assert result.code == ExitCode.OK
    dry = [line.split(" ")[1] for line in lines if line.startswith("[dry-run]")]
    assert dry == ["write", "poll", "sample", "on", "write", "poll", "sample", "on"]
    assert "production=80,canary=20" in next(line for line in lines if line.startswith("[dry-run] write"))
    assert "health monitor" in next(line for line in lines if line.startswith("[dry-run] sample"))
    assert log.path is None


@pytest.mark.parametrize(("text", "message"), [
    ("5,20,50", "must end at 100"), ("20,5,100", "increase strictly"), ("0,100", "from 1 to 100"),
    ("5,,100", "comma-separated"), ("five,100", "from 1 to 100"), ("101", "from 1 to 100"),
])
def test_bad_steps_are_one_line_input_errors(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_steps(text)


def test_steps_and_durations_parse() -> None:
    assert parse_steps(" 5, 20,50 ,100") == (5, 20, 50, 100) and parse_steps("100") == (100,)
    assert [parse_duration(t) for t in ("10m", "90s", "1.5h", "500ms", "30")] == [600, 90, 5400, 0.5, 30]
    for bad in ("10 minutes", "0s", "-1m", "25h"):
        with pytest.raises(InputError, match="--step-timeout"):
            parse_duration(bad)


def test_the_error_budget_is_split_over_the_steps_and_the_judges() -> None:
    plan = RolloutPlan((5, 20, 50, 100), alpha=0.01, health=True)
    assert plan.step_alpha(plan.step(0)) == pytest.approx(0.01 / 4 / 2)   # split and health share a step
    assert plan.step_alpha(plan.step(3)) == pytest.approx(0.01 / 4)       # no health at canary 100
    assert RolloutPlan((5, 100)).step_alpha(RolloutPlan((5, 100)).step(0)) == pytest.approx(0.005)
    assert not plan.health_judged(plan.step(3)) and plan.health_judged(plan.step(0))
    with pytest.raises(InputError, match="--alpha"):
        RolloutPlan((100,), alpha=0.7)


def test_health_without_a_version_header_is_refused_with_how_to_get_one() -> None:
    from splitproof.setup.rollout.sources import SampleSource, SampleTarget

    with pytest.raises(InputError, match="--version-header x-version"):
        SampleSource(SampleTarget(target="127.0.0.1:1"), health=True)
    SampleSource(SampleTarget(target="127.0.0.1:1", header="x-version"), health=True)  # fine with one


def test_resume_takes_the_plan_from_the_log_and_only_a_new_step_timeout(tmp_path: Path) -> None:
    import argparse

    from splitproof.setup.rollout.cli import plan_from_args

    log = tmp_path / "log.jsonl"
    run({20: "INCONCLUSIVE"}, log_path=log, plan=RolloutPlan((5, 20, 100), step_timeout=30.0, alpha=0.02))

    def args(**kw: object) -> argparse.Namespace:
        base = {"step_timeout": None, "source": "sample", "resume": True, "json_log": str(log), "steps": None,
                "health": False, "alpha": None, "tolerance": None, "context": None, "namespace": "online-boutique",
                "state_dir": str(tmp_path)}
        return argparse.Namespace(**{**base, **kw})

    plan, start, resumed = plan_from_args(args())
    assert (plan.steps, plan.step_timeout, plan.alpha, start, resumed) == ((5, 20, 100), 30.0, 0.02, 1, True)
    plan, _, _ = plan_from_args(args(step_timeout="20m"))   # after a hold: the same step with more time
    assert plan.step_timeout == 1200.0
    with pytest.raises(InputError, match="differs from the logged rollout's 5,20,100"):
        plan_from_args(args(steps="5,50,100"))
    # a log that says which mesh it drove is resumed only against that one
    lines = log.read_text().splitlines()
    first = json.loads(lines[0])
    first["where"] = {"local": str(tmp_path.resolve())}
    log.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    assert plan_from_args(args())[1] == 1
    with pytest.raises(InputError, match="drove local .* not context prod"):
        plan_from_args(args(context="prod"))


class SimulatedSource:
    """Each step's split gate fed a seeded iid stream with the canary's true share ``share(step percent)``."""

    def __init__(self, rng, share) -> None:
        self.rng, self.share = rng, share

    def judge(self, plan: RolloutPlan, step, timeout: float) -> StepVerdict:
        from splitproof.verifier import SequentialGate
        from splitproof.verifier.expected import Expected

        gate = SequentialGate(Expected.from_weights(step.weights), alpha=plan.step_alpha(step),
                              tolerance=plan.tolerance)
        p = self.share(step.percent)
        n = 0
        while not gate.decided and n < 20_000:
            gate.observe("canary" if self.rng.random() < p else "production")
            n += 1
        outcome = str(gate.verdict().outcome)
        return StepVerdict(outcome, "simulated", samples=n, split=outcome)

    def confirm_no_canary(self) -> NoCanaryCheck:
        return NoCanaryCheck(200, 0)


def rollouts(share, runs: int, alpha: float) -> dict[int, int]:
    import random

    rng = random.Random(15)
    codes: dict[int, int] = {}
    for _ in range(runs):
        result = Driver(RolloutPlan((5, 20, 50, 100), alpha=alpha), ScriptedRouter(), SimulatedSource(rng, share),
                        ev.EventLog(None), say=lambda _m: None).run()
        codes[int(result.code)] = codes.get(int(result.code), 0) + 1
    return codes


@pytest.mark.slow  # ~10 s: 100 simulated rollouts
def test_a_correct_canary_is_rolled_back_at_most_alpha_of_the_time_over_the_whole_rollout() -> None:
    """Seeded simulation of the claim in setup/rollout/plan.py: the budget split over the steps bounds the chance
    of rolling back a correct canary by --alpha for the whole walk (each step's gate alone runs at alpha/4)."""
    codes = rollouts(lambda percent: percent / 100, 100, alpha=0.2)
    assert codes.get(ExitCode.FAIL, 0) / 100 <= 0.2   # seeded: 9 of 100
    assert codes.get(ExitCode.OK, 0) >= 75            # and it does promote (none held: the gates decide)


def test_a_canary_taking_double_its_share_is_rolled_back() -> None:
    codes = rollouts(lambda percent: min(1.0, 2 * percent / 100) if percent < 100 else 1.0, 50, alpha=0.01)
    assert codes == {ExitCode.FAIL: 50}


def test_the_prometheus_source_leaves_out_the_poll_that_straddles_the_switch_and_feeds_whole_batches() -> None:
    from splitproof.setup.rollout.passive import PrometheusSource
    from splitproof.verifier.telemetry import TelemetryCounts
    from splitproof.verifier.telemetry.window import Window

    def batch(production: int, canary: int) -> TelemetryCounts:
        return TelemetryCounts({"production": production, "canary": canary}, {}, Window(0, 1), "scripted")

    polls: list[TelemetryCounts] = [batch(0, 5000)] + [batch(400, 100)] * 40  # the first: old weights' traffic

    def watch(client, spec, interval, duration):
        yield from polls

    source = PrometheusSource(object(), None, 1.0, health=False, metric="istio", watch=watch)
    plan = RolloutPlan((20, 100))
    verdict = source.judge(plan, plan.step(0), 60.0)
    assert verdict.outcome == "PASS" and "the first, 5000 requests, not counted" in verdict.reason
    assert verdict.samples % 500 == 0  # whole batches only
    with pytest.raises(InputError, match="HTTP status codes only"):
        PrometheusSource(object(), None, 1.0, health=True, metric="envoy", watch=watch)


def test_the_locust_tail_reads_complete_lines_and_only_requests_started_after_the_switch(tmp_path: Path) -> None:
    from splitproof.setup.rollout.locustsource import RecordTail
    from splitproof.verifier.inputs.records import Record

    path = tmp_path / "records.jsonl"
    def line(t: float, version: str, latency: float) -> str:
        return Record(t, "grpc", 5, version, "ok", latency, "locust").to_json() + "\n"

    path.write_text(line(100.0, "production", 1.0))
    tail = RecordTail(path)
    tail.skip_to_end()  # what was there before the step is never read
    with open(path, "a") as fh:
        fh.write(line(200.5, "canary", 1000.0) + line(201.0, "production", 10.0) + line(202.0, "canary", 1.0)[:20])
    got = [(r.t, r.version) for r in tail.read() if r.t - r.latency_ms / 1000 >= 200.0]
    assert got == [(201.0, "production")]  # 200.5 started at 199.5: before the switch at 200
    with open(path, "a") as fh:
        fh.write(line(202.0, "canary", 1.0)[20:])
    assert [(r.t, r.version) for r in tail.read()] == [(202.0, "canary")]  # the torn line, once complete


def test_the_locust_tail_follows_a_memory_mapped_writer(tmp_path: Path) -> None:
    """Locust's RecordWriter maps its file a window at a time: the unwritten rest reads as NULs, which the tail
    takes as the end of what is written so far (never skips past it)."""
    import os

    from splitproof.setup.rollout.locustsource import RecordTail
    from splitproof.verifier.inputs.records import Record, RecordWriter

    path = tmp_path / "records.jsonl"
    writer = RecordWriter(path)
    try:
        writer.write(Record(100.0, "grpc", 5, "production", "ok", 1.0))
        tail = RecordTail(path)
        tail.skip_to_end()
        assert path.stat().st_size > tail.offset > 0  # the data's end, not the padded size
        assert list(tail.read()) == []
        writer.write(Record(200.0, "grpc", 2, "canary", "ok", 1.0))
        assert [r.t for r in tail.read()] == [200.0]
        # a copy still in progress in the writer, visible out of order: a later line before an earlier one
        end = tail.offset
        first = Record(201.0, "grpc", 2, "canary", "ok", 1.0).to_json().encode() + b"\n"
        second = Record(202.0, "grpc", 5, "production", "ok", 1.0).to_json().encode() + b"\n"
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, second, end + len(first))
            assert list(tail.read()) == []  # stops at the gap
            os.pwrite(fd, first, end)
        finally:
            os.close(fd)
        assert [r.t for r in tail.read()] == [201.0, 202.0]
    finally:
        writer.close()


def test_a_failed_grpc_call_keeps_the_version_its_header_names() -> None:
    """Health needs a failed call's version: Envoy's headers.response.set reaches the client in the initial
    metadata, or in the trailing metadata of a trailers-only error (verifier/inputs/classify.py)."""
    from splitproof.verifier.inputs.classify import error_metadata as _error_metadata

    class TrailersOnly(Exception):
        def trailing_metadata(self):
            return (("x-version", "canary"), ("grpc-status", "13"))

        def initial_metadata(self):
            return ()

    class NoMetadata(Exception):
        def trailing_metadata(self):
            raise ValueError("not available")

    assert _error_metadata(TrailersOnly())["x-version"] == "canary"
    assert _error_metadata(NoMetadata()) == {} and _error_metadata(ValueError()) == {}
