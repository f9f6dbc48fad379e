"""The verdict as a markdown block for ``$GITHUB_STEP_SUMMARY`` (the job page of a GitHub Actions run)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from splitproof.verifier import fmt
from splitproof.verifier.reports.text import STATUS_TEXT, UNATTRIBUTED_TEXT, gof_text
from splitproof.verifier.verdict import Outcome, Verdict

if TYPE_CHECKING:
    from splitproof.verifier.reports.healthout import HealthReport

ICON = {Outcome.PASS: "✅", Outcome.FAIL: "❌", Outcome.INCONCLUSIVE: "⚠️"}


def github_summary_markdown(verdict: Verdict, health: HealthReport | None = None) -> str:
    p = verdict.parameters
    outcome, reason = verdict.outcome, verdict.reason
    if health is not None:
        gate = health.gate(verdict)
        outcome, reason = gate.outcome, gate.reason
    lines = [
        f"### {ICON[outcome]} verify-split: {outcome}",
        "",
        reason.replace("|", "\\|"),
        "",
        f"| version | expected | count | observed | {verdict.unattributed_row.interval.heading} | p | p equivalence "
        "| status |",
        "| --- | ---: | ---: | ---: | :---: | ---: | ---: | --- |",
    ]
    for row in verdict.rows:
        lines.append(f"| {row.version} | {fmt.expected(row.expected)} | {row.count:,} | {fmt.pct(row.share)} | "
                     f"{fmt.interval(row.lo, row.hi)} | {fmt.pvalue(row.p_value)} | "
                     f"{fmt.pvalue(row.p_equivalence)} | {STATUS_TEXT[row.status]} |")
    u = verdict.unattributed_row
    lines.append(f"| *unattributed* | ≤{fmt.pct(u.limit)} | {u.count:,} | {fmt.pct(u.share)} | "
                 f"{fmt.interval(u.lo, u.hi)} | {fmt.pvalue(u.p_exceeds)} (above) | {fmt.pvalue(u.p_within)} "
                 f"(below) | {UNATTRIBUTED_TEXT[u.status]} |")
    lines += ["", f"{gof_text(verdict)} · method **{verdict.method}**, alpha {p.alpha:g}, tolerance "
                  f"±{fmt.pp(p.tolerance)}, max unattributed {fmt.pct(p.max_unattributed)}"]
    if verdict.samples_needed:
        lines.append(f"· about {verdict.samples_needed:,} more samples needed")
    for note in verdict.notes:
        lines.append(f"\n> **warning:** {note}")
    if health is not None:
        from splitproof.verifier.reports.healthout import markdown_lines  # the health reports: with --health only

        lines += markdown_lines(health)
    return "\n".join(lines) + "\n"


def append_github_summary(verdict: Verdict, path: str | Path, health: HealthReport | None = None) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(github_summary_markdown(verdict, health) + "\n")
