"""From per-row tests to the health verdict: the rows' statuses, each metric's outcome, the overall outcome and
its one-line reason, and the "about N more responses" -- shared by the fixed-n and the sequential health judges."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from splitproof.verifier import fmt
from splitproof.verifier.health.model import ComparisonRow, Criterion, MetricVerdict
from splitproof.verifier.verdict import Outcome, Status


def row_text(row: ComparisonRow, criterion: Criterion) -> str:
    head = (f"{row.version} {criterion.noun} {fmt.rate(row.rate)} vs {row.baseline} {fmt.rate(row.baseline_rate)}")
    if row.n == 0 or row.baseline_n == 0:
        missing = row.version if row.n == 0 else row.baseline
        return f"{criterion.noun}: no responses from {missing} yet"
    diff = row.difference or 0.0
    if row.status == Status.WORSE:
        worse = ("shown worse" if criterion.fail_margin == 0
                 else f"shown worse by more than {fmt.plus_pp(criterion.fail_margin)}")
        return f"{head} ({fmt.signed_pp(diff)}, {worse}: lower bound {fmt.signed_pp(row.lo)})"
    if row.status == Status.WITHIN:
        return f"{head} (shown below {fmt.plus_pp(criterion.max_increase)}: upper bound {fmt.signed_pp(row.hi)})"
    text = (f"{head}: not yet shown below {fmt.plus_pp(criterion.max_increase)} (bounds {fmt.signed_pp(row.lo)} to "
            f"{fmt.signed_pp(row.hi)})")
    if row.samples_needed:
        text += f", about {row.samples_needed:,} more responses"
    return text


def row_status(p_worse: float, p_within: float, alpha_fail: float, alpha: float) -> Status:
    if p_worse < alpha_fail:
        return Status.WORSE
    if p_within < alpha:
        return Status.WITHIN
    return Status.UNDECIDED


def metric_verdict(criterion: Criterion, rows: Sequence[ComparisonRow]) -> MetricVerdict:
    worse = [r for r in rows if r.status == Status.WORSE]
    if worse:
        return MetricVerdict(criterion.metric, Outcome.FAIL, "; ".join(row_text(r, criterion) for r in worse),
                             tuple(rows), criterion)
    if rows and all(r.status == Status.WITHIN for r in rows):
        return MetricVerdict(criterion.metric, Outcome.PASS, "; ".join(row_text(r, criterion) for r in rows),
                             tuple(rows), criterion)
    pending = [r for r in rows if r.status != Status.WITHIN] or list(rows)
    text = "; ".join(row_text(r, criterion) for r in pending) or f"{criterion.noun}: no responses yet"
    return MetricVerdict(criterion.metric, Outcome.INCONCLUSIVE, text, tuple(rows), criterion)


def not_judged(metric: str, reason: str, criterion: Criterion | None) -> MetricVerdict:
    return MetricVerdict(metric, None, f"{metric} not judged: {reason}", (), criterion)


def overall(metrics: Sequence[MetricVerdict], samples_needed: int | None) -> tuple[Outcome, str]:
    """Health outcome and one-line reason from the metric verdicts (FAIL if any fails; PASS if all judged pass)."""
    judged = [m for m in metrics if m.outcome is not None]
    skipped = [m.reason for m in metrics if m.outcome is None]
    failed = [m for m in judged if m.outcome == Outcome.FAIL]
    if failed:
        return Outcome.FAIL, "; ".join(m.reason for m in failed)
    if judged and all(m.outcome == Outcome.PASS for m in judged):
        return Outcome.PASS, "; ".join([m.reason for m in judged] + skipped)
    if not judged:
        return Outcome.INCONCLUSIVE, "; ".join(skipped) or "no health metric to judge"
    pending = [m.reason for m in judged if m.outcome != Outcome.PASS]
    return Outcome.INCONCLUSIVE, "; ".join(pending + skipped)


def pair_to_total(needed_pair: int | None, pair: int, total: int) -> int | None:
    """Further responses of all versions, from the further responses of one canary + production pair."""
    if needed_pair is None:
        return None
    return needed_pair if pair <= 0 or total <= pair else math.ceil(needed_pair * total / pair)


def samples_to_decide(rows: Sequence[tuple[ComparisonRow, int, int]]) -> int | None:
    """Further responses (all versions) until every undecided row is likely decided; None when one never is."""
    needs = []
    for row, pair, total in rows:
        if row.status == Status.UNDECIDED:
            need = pair_to_total(row.samples_needed, pair, total)
            if need is None:
                return None
            needs.append(need)
    return max(needs) if needs else None


def with_total_needed(reason: str, outcome: Outcome, needed: int | None,
                      routes: Sequence[tuple[ComparisonRow, int, int]]) -> str:
    """Add the all-versions figure when it differs from the one row's own (several rows or versions)."""
    undecided = [(row, pair, total) for row, pair, total in routes if row.status == Status.UNDECIDED]
    if outcome != Outcome.INCONCLUSIVE or not needed:
        return reason
    if len(undecided) == 1 and undecided[0][0].samples_needed == needed:
        return reason
    return f"{reason} (about {needed:,} more responses in all)"


def parameters(criteria: Sequence[Criterion], alpha: float, alpha_fail: float, power: float | None) -> dict[str, Any]:
    """A health verdict's ``parameters``: the same keys for both judges (power None for the sequential one)."""
    return {"alpha": alpha, "alpha_fail": alpha_fail, "power": power,
            "criteria": {c.metric: {"max_increase": c.max_increase, "fail_margin": c.fail_margin,
                                    "definition": c.definition} for c in criteria}}
