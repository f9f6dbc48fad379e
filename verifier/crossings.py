"""Simulated runs of a two-sided sequential judge: the first FAIL and first PASS crossing per run.

Shared by the split's simulation (:class:`splitproof.verifier.stats.simulation.SequentialRuns`) and the health
judge's (:class:`splitproof.verifier.health.simulation.HealthRuns`): the layers may not import each other, so the
one reading of "which came first" lives here, below both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CrossingRuns:
    """Per run: the response count at the first FAIL / first PASS crossing (0 = none within the horizon)."""

    first_fail: np.ndarray
    first_pass: np.ndarray
    horizon: int

    @property
    def outcome(self) -> np.ndarray:
        """'FAIL' / 'PASS' / 'INCONCLUSIVE' per run, whichever came first (FAIL wins a tie, as in the judges)."""
        fail = self.first_fail > 0
        passed = self.first_pass > 0
        fail_first = fail & (~passed | (self.first_fail <= self.first_pass))
        out = np.full(len(fail), "INCONCLUSIVE", dtype=object)
        out[fail_first] = "FAIL"
        out[passed & ~fail_first] = "PASS"
        return out

    def responses_to_verdict(self, undecided: float) -> np.ndarray:
        """Responses until the verdict per run; ``undecided`` for runs that reached none (its type sets the dtype)."""
        out = np.full(len(self.first_fail), undecided)
        oc = self.outcome
        out[oc == "FAIL"] = self.first_fail[oc == "FAIL"]
        out[oc == "PASS"] = self.first_pass[oc == "PASS"]
        return out

    def rate(self, outcome: str) -> float:
        return float(np.mean(self.outcome == outcome))
