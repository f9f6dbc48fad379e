"""The fixed-n verdict: goodness of fit, per-version equivalence (TOST) and the unattributed limit.

Method (documented for users in README "verify-split: the gate"):

* **FAIL** when the counts are shown to differ from the expected split -- the exact binomial test for two
  versions, the exact multinomial test for three or more (:mod:`verifier.exact`; at any n: the chi-square
  approximation overshoots alpha) -- at ``alpha``; or when a version with 0% expected (or not in the split at all)
  answered; or when the unattributed rate is shown above ``max_unattributed`` (exact one-sided binomial test).
* **PASS** when not FAIL and every version's share is shown inside its margin, expected ± min(``tolerance``,
  half its expected share) (:mod:`verifier.margins`: a dead small canary can never PASS): two one-sided exact
  binomial tests (TOST) per version, each at ``alpha``, i.e. its (1 - 2 alpha) Clopper-Pearson interval lies
  inside the margin; and the unattributed rate is shown below its limit. PASS needs *every* version's test to
  reject -- an intersection-union test, whose level is the largest of the component levels, so no multiplicity
  correction is needed: if any one version is really outside its margin, a PASS needs that version's own
  level-alpha test to (wrongly) reject. A version's own two-sided p-value is reported, not a decision: the one
  FAIL test of the split is the goodness of fit (testing every version at alpha would inflate false FAILs).
* **INCONCLUSIVE** otherwise, with the number of further samples that would decide with probability ``power``
  if the observed shares hold (:mod:`verifier.planning`), and what they would show.

Shares are of *attributed* responses; unattributed ones (errors, unexpected item counts) are judged separately
against their own limit and never folded into a version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from splitproof.verifier.errors import InputError
from splitproof.verifier.exact import (  # noqa: F401  (re-exported: the fixed-n building blocks)
    MONTE_CARLO_DRAWS,
    binomial_p_value,
    clopper_pearson,
    equivalence_p_value,
    exact_multinomial_p_value,
    goodness_of_fit,
    p_at_least,
    p_at_most,
    tost_p_value,
)
from splitproof.verifier.expected import as_expected
from splitproof.verifier.margins import margins, version_margins, version_tolerance  # noqa: F401
from splitproof.verifier.planning import Plan, plan_sizes, samples_needed

PASS = "PASS"
FAIL = "FAIL"
INCONCLUSIVE = "INCONCLUSIVE"
EXIT_CODES: dict[str, int] = {PASS: 0, FAIL: 1, INCONCLUSIVE: 3}

# Per-version status in a verdict's rows.
WITHIN = "within"          # shown inside its margin (a 0% version: silent)
DIFFERS = "differs"        # the split test rejected and this version's own test shows it off its share
UNDECIDED = "undecided"    # neither yet
UNEXPECTED = "unexpected"  # answered although the split gives it 0%


@dataclass(frozen=True)
class VersionRow:
    version: str
    expected: float        # fraction
    count: int
    share: float | None    # count / attributed; None when nothing was attributed
    lo: float              # interval for the share (see Verdict.interval)
    hi: float
    p_value: float         # H0: share == expected (two-sided; anytime-valid in sequential mode)
    p_equivalence: float   # H0: share outside its margin; small means shown inside it
    status: str            # WITHIN | DIFFERS | UNDECIDED | UNEXPECTED
    margin: float = 0.0    # half-width of the version's margin: min(tolerance, expected / 2) (0 for a 0% version)


@dataclass(frozen=True)
class UnattributedRow:
    count: int
    total: int
    share: float | None
    lo: float
    hi: float
    limit: float
    p_exceeds: float  # H0: rate <= limit; small means shown above the limit (FAIL)
    p_within: float   # H0: rate >= limit; small means shown below the limit (needed for PASS)
    status: str = UNDECIDED  # WITHIN (shown below the limit) | DIFFERS (shown above) | UNDECIDED


@dataclass(frozen=True)
class Verdict:
    outcome: str                      # PASS | FAIL | INCONCLUSIVE
    reason: str                       # one line
    rows: tuple[VersionRow, ...]
    n: int                            # attributed responses
    unattributed: int
    unattributed_row: UnattributedRow
    gof_statistic: float | None
    gof_p_value: float
    gof_method: str
    samples_needed: int | None        # further samples (all responses) likely to decide; INCONCLUSIVE only
    method: str                       # "fixed-n" | "sequential"
    alpha: float
    tolerance: float
    max_unattributed: float
    interval: str                     # what lo/hi are, e.g. "98% Clopper-Pearson interval"
    parameters: Mapping[str, Any] = field(default_factory=dict)
    unattributed_causes: Mapping[str, int] = field(default_factory=dict)  # filled by the CLI: status -> count
    notes: tuple[str, ...] = ()       # warnings to show with the verdict (bad input lines, target hints)

    @property
    def total(self) -> int:
        return self.n + self.unattributed

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    @property
    def decided(self) -> bool:
        """PASS or FAIL (never an INCONCLUSIVE)."""
        return self.outcome in (PASS, FAIL)

    def row(self, version: str) -> VersionRow:
        for row in self.rows:
            if row.version == version:
                return row
        raise KeyError(version)


# ----------------------------------------------------------------------------------------------- validation


def check_parameters(alpha: float, tolerance: float, max_unattributed: float, power: float | None = None) -> None:
    if not (isinstance(alpha, int | float) and 0.0 < alpha < 0.5):
        raise InputError(f"alpha must be between 0 and 0.5, got {alpha!r}")
    if not (isinstance(tolerance, int | float) and 0.0 < tolerance < 1.0):
        raise InputError(f"tolerance must be between 0 and 1 (a fraction; 0.05 = 5 points), got {tolerance!r}")
    if not (isinstance(max_unattributed, int | float) and 0.0 <= max_unattributed < 1.0):
        raise InputError(f"max_unattributed must be a fraction from 0 to below 1, got {max_unattributed!r}")
    if power is not None and not (isinstance(power, int | float) and 0.0 < power < 1.0):
        raise InputError(f"power must be between 0 and 1, got {power!r}")


def check_counts(counts: Mapping[str, int], unattributed: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise InputError(f"count for {name!r} must be a non-negative integer, got {value!r}")
        out[str(name)] = int(value)
    if isinstance(unattributed, bool) or not isinstance(unattributed, int | np.integer) or unattributed < 0:
        raise InputError(f"unattributed must be a non-negative integer, got {unattributed!r}")
    return out


# ----------------------------------------------------------------------------------------------------- formatting


def pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def share_pct(x: float) -> str:
    """An expected share or a limit as written: 20%, 2.5%, 0.5% (never rounded to a different number)."""
    return f"{round(100 * x, 4):g}%"


def fmt_p(p: float) -> str:
    """Two significant digits, so that 0.0099 is not shown as 0.01 next to alpha = 0.01."""
    if p >= 0.999:
        return "1"
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def pp(tolerance: float) -> str:
    value = round(100 * tolerance, 4)
    return f"{value:g} pp"


def plural(count: int, word: str, words: str | None = None) -> str:
    """``1 response``, ``2 responses`` (``words``: an irregular plural)."""
    return f"{count} {word if count == 1 else words or word + 's'}"


def margin_text(rows: Sequence[VersionRow], tolerance: float) -> str:
    """``±5 pp`` or ``±5 pp (canary ±0.5 pp: half its share)`` when small shares narrow their margin."""
    narrow = [r for r in rows if r.expected > 0 and r.margin < tolerance - 1e-12]
    if not narrow:
        return f"±{pp(tolerance)}"
    return f"±{pp(tolerance)} (" + ", ".join(f"{r.version} ±{pp(r.margin)}" for r in narrow) + \
        f": half {'its' if len(narrow) == 1 else 'their'} share)"


# --------------------------------------------------------------------------------------------------------- judge


def judge(counts: Mapping[str, int], unattributed: int, expected: Mapping[str, float], *, alpha: float = 0.01,
          tolerance: float = 0.05, max_unattributed: float = 0.01, power: float = 0.9) -> Verdict:
    """Fixed-n verdict for per-version counts plus unattributed responses against the expected split.

    Use it when the number of responses was not chosen by looking at the results (a load test of fixed length).
    Versions in ``counts`` that are not in ``expected`` are treated as expected at 0%.
    """
    exp = as_expected(expected)
    check_parameters(alpha, tolerance, max_unattributed, power)
    clean = check_counts(counts, unattributed)
    versions = list(exp) + [v for v in clean if v not in exp]
    x = np.array([clean.get(v, 0) for v in versions], dtype=np.int64)
    p = np.array([exp.get(v, 0.0) for v in versions], dtype=float)
    n = int(x.sum())
    statistic, gof_p, gof_method = goodness_of_fit(x, p)
    split_rejected = gof_p < alpha

    rows = []
    for version, xi, ei in zip(versions, x.tolist(), p.tolist(), strict=True):
        lo, hi = clopper_pearson(xi, n, alpha)
        p_value = binomial_p_value(xi, n, ei)
        if ei <= 0:  # no margin: silent is all a 0% version can show, one response fails the run
            p_eq = 1.0 if n == 0 or xi > 0 else 0.0
        else:
            p_eq = equivalence_p_value(xi, n, *version_margins(ei, tolerance))
        rows.append(VersionRow(version, ei, xi, xi / n if n else None, lo, hi, p_value, p_eq,
                               row_status(xi, ei, p_value < alpha, p_eq < alpha, split_rejected),
                               version_tolerance(ei, tolerance)))
    urow = unattributed_fixed(int(unattributed), n + int(unattributed), max_unattributed, alpha)
    outcome, reason = decide(rows, urow, split_rejected, gof_p, gof_method, n, tolerance,
                             f"{100 * (1 - 2 * alpha):g}% CI")
    needed = None
    if outcome == INCONCLUSIVE:
        needed, what = samples_needed(rows, urow, n, tolerance, alpha, power)
        if needed:
            reason = f"{reason}; about {plural(needed, 'more sample')} needed {what}"
    level = 100 * (1 - 2 * alpha)
    return Verdict(
        outcome=outcome, reason=reason, rows=tuple(rows), n=n, unattributed=int(unattributed), unattributed_row=urow,
        gof_statistic=statistic, gof_p_value=gof_p, gof_method=gof_method, samples_needed=needed, method="fixed-n",
        alpha=alpha, tolerance=tolerance, max_unattributed=max_unattributed,
        interval=f"{level:g}% Clopper-Pearson interval",
        parameters={"alpha": alpha, "tolerance": tolerance, "max_unattributed": max_unattributed, "power": power,
                    "margins": {r.version: r.margin for r in rows if r.expected > 0},
                    "equivalence": "exact binomial TOST per version (intersection-union)",
                    "unattributed_test": "exact one-sided binomial"},
    )


def row_status(x: int, expected: float, differs: bool, within: bool, split_rejected: bool) -> str:
    """A version's status, consistent with the verdict's rule (fixed-n and sequential alike).

    ``differs``: its own test rejects "share == expected"; ``within``: shown inside its margin. DIFFERS only
    when the split test rejected too -- a version's own test is one of k looks and decides nothing by itself.
    """
    if expected <= 0.0:
        return UNEXPECTED if x > 0 else (WITHIN if within else UNDECIDED)
    if split_rejected and differs:
        return DIFFERS
    return WITHIN if within else UNDECIDED


def unattributed_fixed(u: int, total: int, limit: float, alpha: float) -> UnattributedRow:
    lo, hi = clopper_pearson(u, total, alpha)
    if total == 0:
        return UnattributedRow(0, 0, None, lo, hi, limit, 1.0, 1.0, UNDECIDED)
    if limit <= 0.0:  # no unattributed response tolerated: one is proof enough, none is all one can show
        p_exceeds = 0.0 if u > 0 else 1.0
        p_within = 0.0 if u == 0 else 1.0
    else:
        p_exceeds = p_at_least(u, total, limit)
        p_within = p_at_most(u, total, limit)
    status = DIFFERS if p_exceeds < alpha else WITHIN if p_within < alpha else UNDECIDED
    return UnattributedRow(u, total, u / total, lo, hi, limit, p_exceeds, p_within, status)


def _gap(row: VersionRow) -> tuple[float, float]:
    """Largest gap relative to the version's margin first; on a tie name the smaller version (the canary)."""
    gap = abs((row.share or 0.0) - row.expected)
    return round(gap / row.margin if row.margin > 0 else gap, 12), -row.expected


def _unattributed_text(urow: UnattributedRow) -> str:
    """The unattributed part of a reason, for each status (a 0% limit is 'none allowed', not 'below 0%')."""
    if urow.limit <= 0:
        if urow.status == DIFFERS:
            return f"{plural(urow.count, 'unattributed response')} of {urow.total}, with none allowed (limit 0)"
        return "no unattributed responses (none allowed)"
    if urow.status == DIFFERS:
        return (f"unattributed responses {pct(urow.share)} ({urow.count} of {urow.total}) exceed the "
                f"{share_pct(urow.limit)} limit (p = {fmt_p(urow.p_exceeds)})")
    if urow.status == WITHIN:
        return f"unattributed {pct(urow.share)} below the {share_pct(urow.limit)} limit"
    return f"unattributed {pct(urow.share)} not yet shown below {share_pct(urow.limit)}"


def decide(rows: list[VersionRow], urow: UnattributedRow, gof_reject: bool, gof_p: float, gof_method: str, n: int,
           tolerance: float, interval_name: str) -> tuple[str, str]:
    """Outcome and one-line reason from the rows' statuses, shared by the fixed-n and the sequential verdicts."""
    failures: list[str] = []
    unexpected = [r for r in rows if r.status == UNEXPECTED]
    if unexpected:
        failures.append(", ".join(f"{plural(r.count, 'response')} from {r.version!r}, which the split gives 0%"
                                  for r in unexpected))
    elif gof_reject:
        worst = max((r for r in rows if r.expected > 0), key=_gap)
        text = (f"split differs from expected: {worst.version} got {pct(worst.share)} "
                f"({interval_name} {pct(worst.lo)}-{pct(worst.hi)}), expected {share_pct(worst.expected)} "
                f"({gof_method} p = {fmt_p(gof_p)})")
        positive = [r for r in rows if r.expected > 0]
        if len(positive) > 1 and n >= 10 and sum(1 for r in rows if r.count > 0) == 1:
            only = next(r.version for r in rows if r.count > 0)
            text += (f"; every response came from {only}: is the target a pod or a port-forward that bypasses "
                     "the split?")
        failures.append(text)
    if urow.status == DIFFERS:
        failures.append(_unattributed_text(urow))
    if failures:
        return FAIL, "; ".join(failures)
    if n == 0:
        return INCONCLUSIVE, "no attributed responses yet"
    pending = [r for r in rows if r.status != WITHIN]
    if not pending and urow.status == WITHIN:
        worst = max((r for r in rows if r.expected > 0), key=_gap)
        return PASS, (f"every version within {margin_text(rows, tolerance)} of its expected share (closest to its "
                      f"margin: {worst.version} {pct(worst.share)} vs {share_pct(worst.expected)}, {interval_name} "
                      f"{pct(worst.lo)}-{pct(worst.hi)}); {_unattributed_text(urow)}")
    parts = []
    if pending:
        parts.append(f"not yet shown within {margin_text(rows, tolerance)}: " + ", ".join(
            f"{r.version} {pct(r.share)} ({interval_name} {pct(r.lo)}-{pct(r.hi)}, expected "
            f"{share_pct(r.expected)})" for r in pending))
    if urow.status != WITHIN:
        parts.append(_unattributed_text(urow))
    return INCONCLUSIVE, "; ".join(parts)


# ----------------------------------------------------------------------------------------------- sample sizes


def plan(expected: Mapping[str, float], tolerance: float = 0.05, alpha: float = 0.01, power: float = 0.9,
         max_unattributed: float = 0.01) -> Plan:
    """Sample sizes for the expected split, with every version's margin min(tolerance, share / 2).

    * ``n_pass``: the smallest n from the normal approximation ``n = (z(1-alpha) + z(1-beta/2))^2 e(1-e) / m^2``
      (m the version's margin, beta split over versions for more than two) upward at which the exact TOST power
      reaches ``power``.
    * ``n_fail``: noncentral chi-square power for the least detectable misroute of one tolerance (moved between
      the two largest versions): noncentrality per sample ``tol^2 (1/p_i + 1/p_j)``.
    * ``n_unattributed``: ``log(alpha) / log(1 - limit)`` -- with no unattributed response at all.
    * ``sequential_pass``: the anytime-valid gate's confidence sequences reach the margins along the path where
      every observed share equals its expected value (typical, not a guarantee).
    """
    exp = as_expected(expected)
    check_parameters(alpha, tolerance, max_unattributed, power)
    return plan_sizes(exp, tolerance, alpha, power, max_unattributed)


def fixed_samples_needed(rows: list[VersionRow], urow: UnattributedRow, n: int, tolerance: float, alpha: float,
                         power: float) -> int | None:
    """Further responses likely to decide if the observed shares hold (:func:`verifier.planning.samples_needed`)."""
    return samples_needed(rows, urow, n, tolerance, alpha, power)[0]
