"""``rollout --dry-run``: the same driver walks the plan with a router and a source that print each action instead
of doing it (the cluster's ClusterRouter already prints its kubectl/istioctl commands under a dry runner), so the
actions come out in the order a real run takes them. Nothing is written, sampled or changed; every step is shown
as if it passed, and what a FAIL would do is printed where it would happen."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from splitproof.setup.rollout.driver import NoCanaryCheck, StepVerdict
from splitproof.setup.rollout.plan import ROLLBACK_WEIGHTS, RolloutPlan, Step
from splitproof.setup.router import ProxyWeights, Routing, ServedWeights, describe, normalize

DRY = "[dry-run]"


class DryLocalRouter:
    """The local mesh's Router, printed: where the weights would go and what would be read back."""

    def __init__(self, routing: Routing, state_dir: str, say: Callable[[str], None]) -> None:
        self._routing, self.state_dir, self.say = routing, state_dir, say
        self.desired: dict[str, int] = {}

    @property
    def routing(self) -> Routing:
        return self._routing

    def set_weights(self, weights: Mapping[str, int]) -> None:
        self.desired = dict(weights)
        self.say(f"{DRY} write {describe(dict(weights))} into {self.state_dir}/state.json and the route file of "
                 f"{self._routing.fqdn} (Envoy reloads it; not restarted)")

    def served_weights(self) -> ServedWeights:
        return ServedWeights(self.desired, (ProxyWeights("envoy", normalize(self.desired)),))

    def wait_served(self, weights: Mapping[str, int] | None = None, timeout: float | None = None) -> ServedWeights:
        want = normalize(self.desired if weights is None else weights)
        self.say(f"{DRY} poll Envoy's admin /config_dump until the route of {self._routing.fqdn} serves "
                 f"{describe(want)} at the version written")
        return ServedWeights(want, (ProxyWeights("envoy", want),))


class DrySource:
    """Prints what a step's gate would sample and decide; every step is shown as passing."""

    def __init__(self, where: str, say: Callable[[str], None]) -> None:
        self.where, self.say = where, say

    def judge(self, plan: RolloutPlan, step: Step, timeout: float) -> StepVerdict:
        health = " and the health monitor (errors, by version header)" if plan.health_judged(step) else ""
        self.say(f"{DRY} sample {self.where} into the sequential split gate at expected canary {step.percent}% "
                 f"(alpha {plan.step_alpha(step):.3g}){health} until a verdict or {timeout:g}s")
        self.say(f"{DRY} on FAIL: write {describe(ROLLBACK_WEIGHTS)}, wait until it is served, sample "
                 "to confirm no canary response, exit 1; on INCONCLUSIVE at the timeout: hold, exit 3")
        return StepVerdict("PASS", "dry run: shown as passing", split="PASS")

    def confirm_no_canary(self) -> NoCanaryCheck:
        self.say(f"{DRY} sample {self.where} to confirm no response comes from the canary")
        return NoCanaryCheck(1, 0, "(dry run)")
