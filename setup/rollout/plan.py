"""A rollout's plan: the canary steps, the step timeout, and the error budget each step's gates get.

The error budget: ``--alpha`` bounds the probability that a rollout of a *correct, healthy* canary is rolled back
(a false FAIL at any step). Every step runs its own anytime-valid tests, so the budget is split evenly
(Bonferroni): each of the ``k`` steps gets ``alpha / k``, and with ``--health`` the split and the health judge of a
step get half of that each (verifier.health.combined: a false FAIL of the combined gate is at most the sum). A
wrong PASS at a step still needs the part that is really wrong to pass wrongly: at most the per-step level.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from splitproof.verifier import defaults
from splitproof.verifier.errors import InputError

PRODUCTION = "production"
CANARY = "canary"
MAX_STEPS = 20
MAX_STEP_TIMEOUT_S = 24 * 3600.0
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_steps(text: str) -> tuple[int, ...]:
    """``5,20,50,100`` -> (5, 20, 50, 100): integers from 1 to 100, strictly increasing, ending at 100 (the
    promotion: every request on the canary)."""
    parts = [p.strip() for p in str(text).split(",")]
    if not parts or any(not p for p in parts):
        raise InputError(f"--steps must be comma-separated canary percentages like 5,20,50,100, got {text!r}")
    steps: list[int] = []
    for part in parts:
        if not part.isdigit() or not 1 <= int(part) <= 100:
            raise InputError(f"--steps: each step is an integer canary percentage from 1 to 100, got {part!r}")
        steps.append(int(part))
    if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
        raise InputError(f"--steps must increase strictly, got {text!r}")
    if steps[-1] != 100:
        raise InputError(f"--steps must end at 100 (the promotion: every request on the canary), got {text!r}")
    if len(steps) > MAX_STEPS:
        raise InputError(f"--steps: at most {MAX_STEPS} steps, got {len(steps)}")
    return tuple(steps)


def parse_duration(text: str, option: str = "--step-timeout") -> float:
    """``10m``, ``90s``, ``1.5h``, ``500ms`` or plain seconds -> seconds (positive, at most a day)."""
    match = _DURATION.match(str(text))
    if not match:
        raise InputError(f"{option} must be a duration like 10m, 90s or 1h, got {text!r}")
    seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    if not 0 < seconds <= MAX_STEP_TIMEOUT_S:
        raise InputError(f"{option} must be more than 0 and at most 24h, got {text!r}")
    return seconds


def step_weights(percent: int) -> dict[str, int]:
    """The VirtualService weights of a step: ``{production: 100 - p, canary: p}``."""
    return {PRODUCTION: 100 - percent, CANARY: percent}


ROLLBACK_WEIGHTS = {PRODUCTION: 100, CANARY: 0}


@dataclass(frozen=True)
class Step:
    index: int      # 0-based position in the plan
    percent: int    # the canary's share at this step
    of: int         # how many steps the plan has

    @property
    def weights(self) -> dict[str, int]:
        return step_weights(self.percent)

    @property
    def label(self) -> str:
        return f"step {self.index + 1}/{self.of} (canary {self.percent}%)"


@dataclass(frozen=True)
class RolloutPlan:
    steps: tuple[int, ...]
    step_timeout: float = 600.0
    alpha: float = 0.01        # the whole rollout's bound on rolling back a correct, healthy canary
    tolerance: float = 0.05    # the split gate's margin (fraction; verify-split --tolerance)
    health: bool = False
    source: str = "sample"
    max_error_increase: float = defaults.MAX_ERROR_INCREASE  # health: the canary's error rate may exceed
    #                                                         production's by less than this (fraction)

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 0.5:
            raise InputError(f"--alpha must be between 0 and 0.5, got {self.alpha:g}")
        if not 0 < self.tolerance < 0.5:
            raise InputError("--tolerance must be between 0 and 50 percentage points")
        if not 0 < self.max_error_increase < 0.5:
            raise InputError("--max-error-increase must be between 0 and 50 percentage points")

    def step(self, index: int) -> Step:
        return Step(index, self.steps[index], len(self.steps))

    def all_steps(self) -> list[Step]:
        return [self.step(i) for i in range(len(self.steps))]

    def judges(self, step: Step) -> int:
        """How many gates share this step's budget: the split, and health where it can be judged (a step with
        traffic on both versions: at canary 100 there is no production to compare with)."""
        return 2 if self.health and self.health_judged(step) else 1

    def health_criteria(self) -> list[Any]:
        """The health judge's criteria: the canary's error rate vs production's (verifier.health.model)."""
        from splitproof.verifier.health.model import error_criterion

        return [error_criterion(self.max_error_increase)]

    def health_judged(self, step: Step) -> bool:
        return self.health and 0 < step.percent < 100

    def step_alpha(self, step: Step) -> float:
        """The level of each gate at ``step`` (module docstring)."""
        return self.alpha / len(self.steps) / self.judges(step)

    def to_json(self) -> dict[str, object]:
        return {"steps": list(self.steps), "step_timeout_s": self.step_timeout, "alpha": self.alpha,
                "tolerance": self.tolerance, "health": self.health, "source": self.source,
                "max_error_increase": self.max_error_increase}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> RolloutPlan:
        try:
            steps = tuple(int(s) for s in data["steps"])  # type: ignore[attr-defined]
            return cls(steps, float(data["step_timeout_s"]), float(data["alpha"]),  # type: ignore[arg-type]
                       float(data["tolerance"]), bool(data["health"]), str(data["source"]),  # type: ignore[arg-type]
                       float(data.get("max_error_increase", defaults.MAX_ERROR_INCREASE)))  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"the event log's plan is unreadable ({exc})") from None
