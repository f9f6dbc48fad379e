"""The rollout driver: a small state machine over an injected Router and source (no process, no I/O of its own).

For each step: ``step_started`` -> set the weights (``weights_written``) -> wait until the proxies *serve* them
(``weights_served``; only then does counting start, so proxies still on the old config are never judged) -> the
source gates the step (``verdict``). PASS: the next step; after canary 100, ``promoted`` (exit 0). FAIL (or the
proxies never serving the step's weights): roll back -- production 100, wait until the proxies serve it, then a
short check that no response comes from the canary any more -- ``rolled_back`` (exit 1). INCONCLUSIVE at the step
timeout: ``held`` (exit 3), the weights stay where they are and nothing is promoted. Ctrl-C: ``interrupted``
(exit 130), the weights kept (said so), or rolled back with ``on_interrupt="rollback"``. The target becoming
unreachable: ``aborted`` (exit 4), weights kept (another error of a source mid-walk: ``aborted`` with its code).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from splitproof.setup.errors import WaitTimeoutError
from splitproof.setup.rollout import events as ev
from splitproof.setup.rollout.plan import ROLLBACK_WEIGHTS, RolloutPlan, Step
from splitproof.setup.router import Router, describe, normalize
from splitproof.verifier.errors import SplitproofError, Unreachable
from splitproof.verifier.exitcodes import ExitCode


@dataclass(frozen=True)
class StepVerdict:
    """A step's gate: PASS / FAIL / INCONCLUSIVE (strings, as the verdicts print them), why, and what it saw."""

    outcome: str
    reason: str
    samples: int = 0
    counts: Mapping[str, int] = field(default_factory=dict)
    split: str | None = None          # the split gate's outcome
    health: str | None = None         # the health judge's outcome (None: not judged at this step)
    health_reason: str | None = None
    band: tuple[float, float] | None = None        # the canary share's PASS band at this step
    interval: tuple[float, float] | None = None    # the canary share's interval at the verdict
    series: tuple[tuple[float, float], ...] = ()   # (seconds since counting started, cumulative canary share)

    def to_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "reason": self.reason, "samples": self.samples, "counts": dict(self.counts),
                "split": self.split, "health": self.health, "health_reason": self.health_reason,
                "band": list(self.band) if self.band else None,
                "interval": list(self.interval) if self.interval else None,
                "series": [[round(t, 3), round(s, 5)] for t, s in self.series]}


@dataclass(frozen=True)
class NoCanaryCheck:
    """After a rollback: ``samples`` responses, ``canary`` of them from the canary."""

    samples: int
    canary: int
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.samples > 0 and self.canary == 0


class StepSource(Protocol):
    """Where a step's evidence comes from (setup.rollout.sources)."""

    def judge(self, plan: RolloutPlan, step: Step, timeout: float) -> StepVerdict:
        """Count from now until the step's gate decides or ``timeout`` seconds pass."""

    def confirm_no_canary(self) -> NoCanaryCheck:
        """A short bounded check that the canary receives nothing (after a rollback)."""


@dataclass(frozen=True)
class RolloutResult:
    code: ExitCode
    message: str
    next_steps: tuple[str, ...] = ()


class Driver:
    def __init__(self, plan: RolloutPlan, router: Router, source: StepSource, log: ev.EventLog, *,
                 say: Callable[[str], None] = print, clock: Callable[[], float] = time.monotonic,
                 on_interrupt: str = "keep", served_timeout: float | None = None,
                 promoted_next: tuple[str, ...] = (), resume_hint: str = "",
                 where: dict[str, str] | None = None) -> None:
        if on_interrupt not in ("keep", "rollback"):
            raise ValueError(f"on_interrupt must be keep or rollback, got {on_interrupt!r}")
        self.plan, self.router, self.source, self.log = plan, router, source, log
        self.say, self.clock, self.on_interrupt = say, clock, on_interrupt
        self.served_timeout = served_timeout
        self.promoted_next = promoted_next
        self.resume_hint = resume_hint
        self.where = dict(where or {})  # which mesh or cluster: logged, so --resume refuses another one

    # ------------------------------------------------------------------------------------------------ walk

    def run(self, start: int = 0, *, resumed: bool = False) -> RolloutResult:
        if resumed:
            self.log.emit(ev.ROLLOUT_RESUMED, from_step=start + 1,
                          percent=self.plan.steps[start] if start < len(self.plan.steps) else None)
        else:
            self.log.emit(ev.ROLLOUT_STARTED, plan=self.plan.to_json(), routing=_routing(self.router),
                          where=self.where)
        for index in range(start, len(self.plan.steps)):
            step = self.plan.step(index)
            try:
                result = self._step(step)
            except KeyboardInterrupt:
                return self._interrupted(step)
            except Unreachable as exc:
                return self._aborted(step, str(exc))
            except SplitproofError as exc:  # a source failing mid-walk (a query refused, ...): same, its own code
                return self._aborted(step, str(exc), ExitCode(exc.exit_code))
            if result is not None:
                return result
        return self._promoted()

    def _step(self, step: Step) -> RolloutResult | None:
        self.log.emit(ev.STEP_STARTED, step=step.index + 1, percent=step.percent, weights=step.weights)
        self.say(f"{step.label}: setting weights {describe(step.weights)}")
        t_write = self.clock()
        self.router.set_weights(step.weights)
        self.log.emit(ev.WEIGHTS_WRITTEN, step=step.index + 1, percent=step.percent, weights=step.weights)
        try:
            served = self.router.wait_served(step.weights, timeout=self.served_timeout)
        except WaitTimeoutError as exc:
            reason = f"the proxies never served the step's weights: {exc}"
            self.log.emit(ev.VERDICT, step=step.index + 1, percent=step.percent, outcome="FAIL", reason=reason)
            return self._rollback(step, reason)
        t_served = self.clock()
        self.log.emit(ev.WEIGHTS_SERVED, step=step.index + 1, percent=step.percent,
                      served=served.held(), written_to_served_s=round(t_served - t_write, 6))
        self.say(f"{step.label}: served ({served.held()}) after {1000 * (t_served - t_write):.0f} ms; gating "
                 f"the split{' and health' if self.plan.health_judged(step) else ''}")
        verdict = self.source.judge(self.plan, step, self.plan.step_timeout)
        t_verdict = self.clock()
        self.log.emit(ev.VERDICT, step=step.index + 1, percent=step.percent,
                      served_to_verdict_s=round(t_verdict - t_served, 6), **verdict.to_json())
        self.say(f"{step.label}: {verdict.outcome} after {verdict.samples:,} responses in "
                 f"{t_verdict - t_served:.1f}s: {verdict.reason}")
        if verdict.outcome == "PASS":
            return None
        if verdict.outcome == "FAIL":
            return self._rollback(step, verdict.reason)
        return self._held(step, verdict)

    # --------------------------------------------------------------------------------------------- endings

    def _promoted(self) -> RolloutResult:
        self.log.emit(ev.PROMOTED, steps=list(self.plan.steps))
        message = (f"promoted: every step passed ({' -> '.join(map(str, self.plan.steps))}); the canary serves "
                   "100% of the traffic")
        return RolloutResult(ExitCode.OK, message, self.promoted_next)

    def _held(self, step: Step, verdict: StepVerdict) -> RolloutResult:
        weights = self._served_now()
        self.log.emit(ev.HELD, step=step.index + 1, percent=step.percent, reason=verdict.reason, weights=weights)
        return RolloutResult(ExitCode.INCONCLUSIVE,
                             f"held at {step.label}: no verdict within --step-timeout "
                             f"{self.plan.step_timeout:g}s ({verdict.reason}); weights kept at "
                             f"{describe(weights)}, nothing promoted",
                             (f"continue this step with more time: {self.resume_hint} --step-timeout LONGER"
                              if self.resume_hint else "re-run the rollout with a longer --step-timeout",))

    def _rollback(self, step: Step, reason: str, *, code: ExitCode = ExitCode.FAIL) -> RolloutResult:
        self.log.emit(ev.ROLLBACK_STARTED, step=step.index + 1, percent=step.percent, reason=reason,
                      weights=ROLLBACK_WEIGHTS)
        self.say(f"{step.label}: rolling back to {describe(ROLLBACK_WEIGHTS)}")
        t_write = self.clock()
        self.router.set_weights(ROLLBACK_WEIGHTS)
        try:
            served = self.router.wait_served(ROLLBACK_WEIGHTS, timeout=self.served_timeout)
        except WaitTimeoutError as exc:
            self.log.emit(ev.ROLLED_BACK, step=step.index + 1, percent=step.percent, reason=reason,
                          verified=False, detail=str(exc))
            return RolloutResult(code, f"rollback at {step.label} NOT confirmed: {exc} (step failed: {reason})",
                                 ("check the proxies now: the canary may still receive traffic",))
        t_served = self.clock()
        check = self.source.confirm_no_canary()
        self.log.emit(ev.ROLLED_BACK, step=step.index + 1, percent=step.percent, reason=reason,
                      verified=check.ok, served=served.held(), written_to_served_s=round(t_served - t_write, 6),
                      check_samples=check.samples, check_canary=check.canary, detail=check.detail)
        if not check.ok:
            return RolloutResult(code, f"rolled back at {step.label} but the check is NOT clean: "
                                       f"{check.canary} of {check.samples} responses still came from the canary "
                                       f"{check.detail} (step failed: {reason})".replace("  ", " "))
        return RolloutResult(code, f"rolled back at {step.label}: {reason}. Production 100% is served "
                                   f"({served.held()}) and {check.samples:,} responses since came from "
                                   "production only")

    def _interrupted(self, step: Step) -> RolloutResult:
        if self.on_interrupt == "rollback":
            self.log.emit(ev.INTERRUPTED, step=step.index + 1, percent=step.percent, action="rollback")
            result = self._rollback(step, "interrupted (Ctrl-C), --on-interrupt rollback",
                                    code=ExitCode.INTERRUPTED)
            return result
        weights = self._served_now()
        self.log.emit(ev.INTERRUPTED, step=step.index + 1, percent=step.percent, action="keep", weights=weights)
        return RolloutResult(ExitCode.INTERRUPTED,
                             f"interrupted at {step.label}: weights kept at {describe(weights)} "
                             "(as the proxies serve them); nothing rolled back",
                             (f"continue with: {self.resume_hint}" if self.resume_hint else
                              "re-run the rollout to continue",))

    def _aborted(self, step: Step, reason: str, code: ExitCode = ExitCode.UNREACHABLE) -> RolloutResult:
        weights = self._served_now()
        self.log.emit(ev.ABORTED, step=step.index + 1, percent=step.percent, reason=reason, weights=weights,
                      exit_code=int(code))
        return RolloutResult(code, f"stopped at {step.label}: {reason}; weights kept at "
                                                   f"{describe(weights)}",
                             (f"once the target answers: {self.resume_hint}" if self.resume_hint else "",))

    def _served_now(self) -> dict[str, int] | None:
        """What the (first) proxy serves now, for messages; None when it cannot be read."""
        try:
            weights = self.router.served_weights().weights
        except Exception:  # noqa: BLE001 -- only for a message: the reason it failed is not the story here
            return None
        return normalize(weights) if weights is not None else None


def _routing(router: Router) -> dict[str, Any]:
    try:
        r = router.routing
    except Exception:  # noqa: BLE001 -- informational only
        return {}
    return {"service": r.service, "namespace": r.namespace, "kind": r.kind, "gateway_hosts": list(r.gateway_hosts)}
