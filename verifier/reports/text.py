"""The plain-text pieces every output of a verdict shares: the words for the statuses and the split test's line."""

from __future__ import annotations

import math

from splitproof.verifier import fmt
from splitproof.verifier.stats.decide import margin_text
from splitproof.verifier.verdict import Method, Status, Verdict

STATUS_TEXT = {Status.WITHIN: "within", Status.DIFFERS: "differs", Status.UNDECIDED: "undecided",
               Status.UNEXPECTED: "unexpected"}
UNATTRIBUTED_TEXT = {Status.WITHIN: "below", Status.DIFFERS: "above", Status.UNDECIDED: "undecided"}


def gof_text(verdict: Verdict) -> str:
    """The split test in one line: its name, its statistic when it has one, its p-value."""
    if verdict.method == Method.SEQUENTIAL:
        e = verdict.log_e_value
        shown = f"log e-value = {e:.2f}, " if e is not None and math.isfinite(e) else ""
        return f"{verdict.gof_method}: {shown}anytime-valid p = {fmt.pvalue(verdict.gof_p_value)}"
    return f"{verdict.gof_method}: p = {fmt.pvalue(verdict.gof_p_value)}"


def legend(verdict: Verdict) -> str:
    """What the table's columns mean, and how many responses it is about."""
    return (f"{gof_text(verdict)} · {verdict.n:,} attributed + {verdict.unattributed:,} unattributed responses · "
            f"{verdict.interval_name} · p: share differs from expected (unattributed: above the limit) · p eq.: "
            f"within {margin_text(verdict.rows, verdict.parameters.tolerance)} (unattributed: below the limit)")


def title(verdict: Verdict) -> str:
    p = verdict.parameters
    return f"verify-split · {verdict.method} · alpha {p.alpha:g} · tolerance ±{fmt.pp(p.tolerance)}"
