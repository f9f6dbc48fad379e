"""The gate's one outcome from the split verdict and the health verdict.

FAIL if either fails, PASS only if both pass, INCONCLUSIVE otherwise; the exit code is the split gate's
(``Outcome.exit_code``: 0 PASS, 1 FAIL, 3 INCONCLUSIVE). The reason leads with what decided it, e.g.
``health FAIL: canary errors 4.3% vs production 0.0% (+4.3 pp, shown worse: lower bound +2.1 pp); split PASS``.

Error rates: the split gate's false FAIL is at most its alpha and the health verdict's at most its alpha, so a
correct, healthy canary is wrongly failed with probability at most the sum (run both at alpha/2 for alpha overall).
A wrong PASS needs the part that is really wrong (the split, or the canary's health) to pass wrongly, so it stays
at most alpha.
"""

from __future__ import annotations

from dataclasses import dataclass

from splitproof.verifier.errors import InputError
from splitproof.verifier.exitcodes import ExitCode
from splitproof.verifier.health.model import HealthVerdict
from splitproof.verifier.verdict import Outcome, Verdict


@dataclass(frozen=True)
class GateOutcome:
    """The split verdict and the health verdict as one exit code."""

    outcome: Outcome
    reason: str
    split: Outcome | None
    health: Outcome | None

    @property
    def exit_code(self) -> ExitCode:
        return self.outcome.exit_code


def combine(split: Verdict | None, health: HealthVerdict | None) -> GateOutcome:
    """FAIL if either fails; PASS only if both pass; INCONCLUSIVE otherwise. The reason names what failed first."""
    parts = [(name, v.outcome, v.reason) for name, v in (("health", health), ("split", split)) if v is not None]
    if not parts:
        raise InputError("nothing to combine: neither a split nor a health verdict")
    outcomes = [o for _, o, _ in parts]
    if Outcome.FAIL in outcomes:
        outcome = Outcome.FAIL
        lead = [f"{name} FAIL: {reason}" for name, o, reason in parts if o == Outcome.FAIL]
        rest = [f"{name} {o}" for name, o, _ in parts if o != Outcome.FAIL]
    elif all(o == Outcome.PASS for o in outcomes):
        outcome = Outcome.PASS
        lead, rest = [f"{name} PASS: {reason}" for name, _, reason in parts], []
    else:
        outcome = Outcome.INCONCLUSIVE
        lead = [f"{name} INCONCLUSIVE: {reason}" for name, o, reason in parts if o == Outcome.INCONCLUSIVE]
        rest = [f"{name} {o}" for name, o, _ in parts if o != Outcome.INCONCLUSIVE]
    return GateOutcome(outcome, "; ".join(lead + rest), split.outcome if split else None,
                       health.outcome if health else None)
