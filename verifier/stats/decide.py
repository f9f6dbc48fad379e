"""From the rows' statuses to the outcome and its one-line reason -- the same rule for the fixed-n and the
sequential verdicts (README "The statistical method").

FAIL when a version the split gives 0% answered, when the split test rejected, or when the unattributed rate is
shown above its limit; PASS when every version is shown within its margin and the unattributed rate below its
limit (intersection-union: no multiplicity correction); INCONCLUSIVE otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

from splitproof.verifier import fmt
from splitproof.verifier.verdict import Outcome, Status, UnattributedRow, VersionRow

# What the further responses of an INCONCLUSIVE would show (fixed-n and sequential reasons name it).
TO_PASS = "to show every version within its margin if the observed shares hold"
TO_FAIL = "to show the split differs if the observed deviation is real"
TO_UNATTRIBUTED = "to show unattributed responses below the {limit} limit"


def row_status(x: int, expected: float, differs: bool, within: bool, split_rejected: bool) -> Status:
    """A version's status, consistent with the verdict's rule (fixed-n and sequential alike).

    ``differs``: its own test rejects "share == expected"; ``within``: shown inside its margin. DIFFERS only
    when the split test rejected too -- a version's own test is one of k looks and decides nothing by itself.
    """
    if expected <= 0.0:
        return Status.UNEXPECTED if x > 0 else (Status.WITHIN if within else Status.UNDECIDED)
    if split_rejected and differs:
        return Status.DIFFERS
    return Status.WITHIN if within else Status.UNDECIDED


def margin_text(rows: Sequence[VersionRow], tolerance: float) -> str:
    """``±5 pp`` or ``±5 pp (canary ±0.5 pp: half its share)`` when small shares narrow their margin."""
    narrow = [r for r in rows if r.expected > 0 and r.margin < tolerance - 1e-12]
    if not narrow:
        return f"±{fmt.pp(tolerance)}"
    return f"±{fmt.pp(tolerance)} (" + ", ".join(f"{r.version} ±{fmt.pp(r.margin)}" for r in narrow) + \
        f": half {'its' if len(narrow) == 1 else 'their'} share)"


def _gap(row: VersionRow) -> tuple[float, float]:
    """Largest gap relative to the version's margin first; on a tie name the smaller version (the canary)."""
    gap = abs((row.share or 0.0) - row.expected)
    return round(gap / row.margin if row.margin > 0 else gap, 12), -row.expected


def unattributed_text(urow: UnattributedRow) -> str:
    """The unattributed part of a reason, for each status (a 0% limit is 'none allowed', not 'below 0%')."""
    if urow.limit <= 0:
        if urow.status == Status.DIFFERS:
            return f"{fmt.plural(urow.count, 'unattributed response')} of {urow.total}, with none allowed (limit 0)"
        return "no unattributed responses (none allowed)"
    if urow.status == Status.DIFFERS:
        return (f"unattributed responses {fmt.pct(urow.share)} ({urow.count} of {urow.total}) exceed the "
                f"{fmt.share(urow.limit)} limit (p = {fmt.pvalue(urow.p_exceeds)})")
    if urow.status == Status.WITHIN:
        return f"unattributed {fmt.pct(urow.share)} below the {fmt.share(urow.limit)} limit"
    return f"unattributed {fmt.pct(urow.share)} not yet shown below {fmt.share(urow.limit)}"


def _shown(row: VersionRow) -> str:
    """``98% CI 18.0%-22.3%``: a share's interval, as reasons write it."""
    return f"{row.interval.heading} {fmt.pct(row.lo)}-{fmt.pct(row.hi)}"


def decide(rows: Sequence[VersionRow], urow: UnattributedRow, gof_reject: bool, gof_p: float, gof_method: str,
           n: int, tolerance: float) -> tuple[Outcome, str]:
    """Outcome and one-line reason from the rows' statuses, shared by the fixed-n and the sequential verdicts."""
    failures: list[str] = []
    unexpected = [r for r in rows if r.status == Status.UNEXPECTED]
    if unexpected:
        failures.append(", ".join(f"{fmt.plural(r.count, 'response')} from {r.version!r}, which the split gives 0%"
                                  for r in unexpected))
    elif gof_reject:
        worst = max((r for r in rows if r.expected > 0), key=_gap)
        text = (f"split differs from expected: {worst.version} got {fmt.pct(worst.share)} ({_shown(worst)}), "
                f"expected {fmt.share(worst.expected)} ({gof_method} p = {fmt.pvalue(gof_p)})")
        positive = [r for r in rows if r.expected > 0]
        if len(positive) > 1 and n >= 10 and sum(1 for r in rows if r.count > 0) == 1:
            only = next(r.version for r in rows if r.count > 0)
            text += (f"; every response came from {only}: is the target a pod or a port-forward that bypasses "
                     "the split?")
        failures.append(text)
    if urow.status == Status.DIFFERS:
        failures.append(unattributed_text(urow))
    if failures:
        return Outcome.FAIL, "; ".join(failures)
    if n == 0:
        return Outcome.INCONCLUSIVE, "no attributed responses yet"
    pending = [r for r in rows if r.status != Status.WITHIN]
    if not pending and urow.status == Status.WITHIN:
        worst = max((r for r in rows if r.expected > 0), key=_gap)
        return Outcome.PASS, (f"every version within {margin_text(rows, tolerance)} of its expected share (closest "
                              f"to its margin: {worst.version} {fmt.pct(worst.share)} vs {fmt.share(worst.expected)}, "
                              f"{_shown(worst)}); {unattributed_text(urow)}")
    parts = []
    if pending:
        parts.append(f"not yet shown within {margin_text(rows, tolerance)}: " + ", ".join(
            f"{r.version} {fmt.pct(r.share)} ({_shown(r)}, expected {fmt.share(r.expected)})" for r in pending))
    if urow.status != Status.WITHIN:
        parts.append(unattributed_text(urow))
    return Outcome.INCONCLUSIVE, "; ".join(parts)
