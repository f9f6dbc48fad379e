"""The result types of every judge: what a verdict says, typed and frozen, in the spirit of ``scipy.stats`` results.

* :class:`Outcome` (PASS / FAIL / INCONCLUSIVE, with its exit code), :class:`Status` (a row's status),
  :class:`Method` (fixed-n or sequential) -- ``str`` enums, so ``verdict.outcome == "PASS"`` and JSON keep working;
* :class:`Interval` -- an interval *object* (lo, hi, level, kind), never prose;
* :class:`VersionRow`, :class:`UnattributedRow`, :class:`Parameters` and :class:`Verdict` -- the split verdict, every
  field with one meaning for both methods. What only one method has lives in ``Verdict.method_details``.

Shares, margins, limits and levels are fractions (0.05 = 5 percentage points). The JSON form of a verdict is
``verifier.reports.jsonout`` (documented field by field in docs/verdict-schema.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from splitproof.verifier import fmt
from splitproof.verifier.exitcodes import ExitCode


class Outcome(StrEnum):
    """A verdict: shown right (PASS), shown wrong (FAIL), or not enough evidence yet (INCONCLUSIVE)."""

    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"

    @property
    def exit_code(self) -> ExitCode:
        """``verify-split``'s exit code for this outcome: 0, 1 or 3 (verifier.exitcodes)."""
        return _EXIT[self]

    @property
    def decided(self) -> bool:
        return self is not Outcome.INCONCLUSIVE


_EXIT = {Outcome.PASS: ExitCode.OK, Outcome.FAIL: ExitCode.FAIL, Outcome.INCONCLUSIVE: ExitCode.INCONCLUSIVE}


class Status(StrEnum):
    """One row of a verdict: a version's share (split), the unattributed rate, or a canary's health metric."""

    WITHIN = "within"          # shown inside its margin (unattributed: below the limit; a 0% version: silent)
    DIFFERS = "differs"        # the split test rejected and this version's own test shows it off (unattributed: above)
    UNDECIDED = "undecided"    # neither yet
    UNEXPECTED = "unexpected"  # answered although the split gives it 0%
    WORSE = "worse"            # health: the canary is shown worse than production by more than the fail margin


class Method(StrEnum):
    FIXED_N = "fixed-n"        # the number of responses was fixed before any was seen
    SEQUENTIAL = "sequential"  # anytime-valid: looked at after every response (or batch), stopped at the first verdict


class IntervalKind(StrEnum):
    CLOPPER_PEARSON = "clopper-pearson"            # exact equal-tailed interval; the fixed-n TOST's
    CONFIDENCE_SEQUENCE = "confidence-sequence"    # beta-binomial mixture, valid at all times at once
    EXACT_BOUNDS = "exact-bounds"                  # health fixed-n: two exact one-sided bounds for a difference
    DIFFERENCE_SEQUENCE = "difference-sequence"    # health sequential: anytime-valid bounds for a difference


_KIND_NAME = {
    IntervalKind.CLOPPER_PEARSON: ("Clopper-Pearson interval", "CI"),
    IntervalKind.CONFIDENCE_SEQUENCE: ("confidence sequence (beta-binomial mixture)", "CS"),
    IntervalKind.EXACT_BOUNDS: ("exact confidence bounds for the difference", "CI"),
    IntervalKind.DIFFERENCE_SEQUENCE: ("anytime-valid confidence sequence for the difference", "CS"),
}

# The module-level names of the members, as ``signal.SIGINT`` is ``signal.Signals.SIGINT``.
PASS, FAIL, INCONCLUSIVE = Outcome.PASS, Outcome.FAIL, Outcome.INCONCLUSIVE
WITHIN, DIFFERS, UNDECIDED, UNEXPECTED, WORSE = (Status.WITHIN, Status.DIFFERS, Status.UNDECIDED, Status.UNEXPECTED,
                                                 Status.WORSE)
FIXED_N, SEQUENTIAL = Method.FIXED_N, Method.SEQUENTIAL


@dataclass(frozen=True, slots=True)
class Interval:
    """``[lo, hi]`` holding the true value with probability at least ``level``, computed the ``kind`` way."""

    lo: float
    hi: float
    level: float
    kind: IntervalKind

    def __contains__(self, value: float) -> bool:
        return self.lo <= value <= self.hi

    @property
    def name(self) -> str:
        """``98% Clopper-Pearson interval``."""
        return f"{fmt.level(self.level)} {_KIND_NAME[self.kind][0]}"

    @property
    def heading(self) -> str:
        """``98% CI`` / ``99% CS``: a table column's heading."""
        return f"{fmt.level(self.level)} {_KIND_NAME[self.kind][1]}"


def _copy(mapping: Mapping[Any, Any]) -> dict[Any, Any]:
    """A result owns its mappings: a copy, so the caller's later changes never reach it."""
    return dict(mapping)


@dataclass(frozen=True)
class VersionRow:
    """One version of the split."""

    version: str
    expected: float        # its expected share
    count: int             # attributed responses from it
    share: float | None    # count / attributed responses; None when nothing was attributed
    interval: Interval     # for its share (the method's: Clopper-Pearson or the confidence sequence)
    p_value: float         # H0: share == expected (two-sided; anytime-valid in sequential mode)
    p_equivalence: float   # H0: share outside its margin; small means shown inside it
    status: Status         # WITHIN | DIFFERS | UNDECIDED | UNEXPECTED
    margin: float          # half-width of its margin: min(tolerance, expected / 2); 0 for a 0% version

    @property
    def lo(self) -> float:
        return self.interval.lo

    @property
    def hi(self) -> float:
        return self.interval.hi


@dataclass(frozen=True)
class UnattributedRow:
    """The responses no version could be given (errors, unexpected item counts) against their limit."""

    count: int
    total: int             # all responses
    share: float | None    # count / total; None before the first response
    interval: Interval     # for the unattributed rate
    limit: float           # max_unattributed
    p_exceeds: float       # H0: rate <= limit; small means shown above the limit (FAIL)
    p_within: float        # H0: rate >= limit; small means shown below the limit (needed for PASS)
    status: Status         # WITHIN (shown below the limit) | DIFFERS (shown above) | UNDECIDED

    @property
    def lo(self) -> float:
        return self.interval.lo

    @property
    def hi(self) -> float:
        return self.interval.hi


@dataclass(frozen=True)
class Parameters:
    """What the verdict was asked to show -- the same keys for both methods."""

    alpha: float                    # bounds each kind of wrong verdict
    tolerance: float                # the margin's half-width before small shares narrow it
    max_unattributed: float         # the unattributed rate's limit
    power: float | None             # fixed-n: for "samples needed"; None for the sequential gate (it needs none)
    margins: Mapping[str, float]    # each positive-share version's margin half-width, min(tolerance, share / 2)

    def __post_init__(self) -> None:
        object.__setattr__(self, "margins", _copy(self.margins))


@dataclass(frozen=True)
class Verdict:
    """The split verdict of a fixed-n judge (:func:`verifier.stats.fixed.judge`) or the sequential gate."""

    outcome: Outcome
    reason: str                       # one line
    method: Method
    rows: tuple[VersionRow, ...]      # the expected versions in order, then any unexpected ones
    unattributed_row: UnattributedRow
    n: int                            # attributed responses
    unattributed: int                 # unattributed responses
    gof_method: str                   # the split test (the FAIL test), named
    gof_p_value: float                # its p-value (anytime-valid 1/e-value for the sequential gate)
    log_e_value: float | None         # sequential: log of the split test's e-value (FAIL above log 1/alpha); else None
    samples_needed: int | None        # further responses likely to decide; INCONCLUSIVE only
    parameters: Parameters
    method_details: Mapping[str, Any] = field(default_factory=dict)  # what only this method has (priors, tests)
    unattributed_causes: Mapping[str, int] = field(default_factory=dict)  # cause -> count
    notes: tuple[str, ...] = ()       # warnings to show with the verdict (bad input lines, target hints)

    def __post_init__(self) -> None:
        object.__setattr__(self, "method_details", _copy(self.method_details))
        object.__setattr__(self, "unattributed_causes", _copy(self.unattributed_causes))

    @property
    def total(self) -> int:
        return self.n + self.unattributed

    @property
    def exit_code(self) -> ExitCode:
        return self.outcome.exit_code

    @property
    def decided(self) -> bool:
        """PASS or FAIL (never an INCONCLUSIVE)."""
        return self.outcome.decided

    @property
    def interval_name(self) -> str:
        """What every row's interval is, e.g. ``98% Clopper-Pearson interval``."""
        return self.unattributed_row.interval.name

    def row(self, version: str) -> VersionRow:
        for row in self.rows:
            if row.version == version:
                return row
        raise KeyError(version)
