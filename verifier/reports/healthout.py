"""The health verdict in every output: the terminal table, ``--json``'s ``health`` object, JUnit testcases (one per
health metric), the GitHub step summary -- and the gate's one outcome (split + health, verifier.health.combined).

A :class:`HealthReport` is what the writers get: the verdict, how errors were attributed, and (for the HTML report)
the error comparison over time (:class:`verifier.health.responses.ErrorPoint`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from splitproof.verifier import fmt
from splitproof.verifier.health.combined import GateOutcome, combine
from splitproof.verifier.health.model import ComparisonRow, HealthVerdict, MetricVerdict
from splitproof.verifier.verdict import Outcome, Status, Verdict

if TYPE_CHECKING:
    from splitproof.verifier.health.batches import BatchHealth
    from splitproof.verifier.health.responses import ErrorPoint, ResponseHealth

OUTCOME_STYLE = {Outcome.PASS: "bold green", Outcome.FAIL: "bold red", Outcome.INCONCLUSIVE: "bold yellow"}
ROW_STYLE = {Status.WORSE: "red", Status.WITHIN: "green", Status.UNDECIDED: "yellow"}
ROW_TEXT = {Status.WORSE: "worse", Status.WITHIN: "within", Status.UNDECIDED: "undecided"}


@dataclass(frozen=True)
class HealthReport:
    """A health verdict as the outputs show it."""

    verdict: HealthVerdict
    attribution: str                                  # how failed calls got a version: header, telemetry, ...
    points: Sequence[ErrorPoint] = field(default_factory=tuple)
    extra: dict[str, Any] = field(default_factory=dict)   # source-specific (e.g. the destination side)

    @classmethod
    def of(cls, health: ResponseHealth | BatchHealth) -> HealthReport:
        return cls(health.verdict(), health.attribution(), tuple(getattr(health, "points", ())))

    def gate(self, split: Verdict) -> GateOutcome:
        return combine(split, self.verdict)


# ------------------------------------------------------------------------------------------------- words

def metric_name(m: MetricVerdict) -> str:
    if m.criterion is None:
        return m.metric
    return m.criterion.noun


def row_bounds(row: ComparisonRow) -> str:
    return f"{fmt.signed_pp(row.lo)} to {fmt.signed_pp(row.hi)}"


def shares_text(row: ComparisonRow) -> str:
    """"canary had 100% of the errors with 20% of the traffic" -- the share-aware reading."""
    if row.bad_share is None or row.traffic_share is None:
        return "no bad responses yet"
    return f"{fmt.pct(row.bad_share)} of the bad with {fmt.pct(row.traffic_share)} of the responses"


def outcome_text(m: MetricVerdict) -> str:
    return "not judged" if m.outcome is None else str(m.outcome)


# ------------------------------------------------------------------------------------------------- terminal

def health_table(report: HealthReport) -> Table:
    v = report.verdict
    table = Table(title=f"canary health · {v.method} · alpha {v.alpha:g} · errors attributed by {report.attribution}",
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for name, justify in (("metric", "left"), ("version", "left"), ("n", "right"), ("bad", "right"),
                          ("rate", "right"), (v.baseline, "right"), ("difference", "right"), ("bounds", "center"),
                          ("margin", "right"), ("status", "left")):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for m in v.metrics:
        if m.outcome is None or not m.rows:
            table.add_row(metric_name(m), "–", "", "", "", "", "", "", "",
                          Text(outcome_text(m) if m.outcome is None else "pending", style="dim"))
            continue
        for row in m.rows:
            margin = fmt.plus_pp(m.criterion.max_increase) if m.criterion else ""
            table.add_row(metric_name(m), row.version, f"{row.n:,}", f"{row.bad:,}", fmt.rate(row.rate),
                          fmt.rate(row.baseline_rate),
                          fmt.signed_pp(row.difference) if row.difference is not None else "–",
                          row_bounds(row) if row.n and row.baseline_n else "–", margin,
                          Text(ROW_TEXT.get(row.status, str(row.status)), style=ROW_STYLE.get(row.status, "")))
    return table


def print_health(report: HealthReport, gate: GateOutcome, console: Console) -> None:
    v = report.verdict
    console.print(health_table(report))
    console.print(f"[dim]{v.interval_name} · FAIL tests at {v.alpha_fail:.3g} each (Bonferroni), PASS at "
                  f"{v.alpha:g}[/dim]", highlight=False)
    for note in v.notes:
        console.print(f"[yellow]warning:[/yellow] {note}", highlight=False)
    dest = report.extra.get("destination")
    if isinstance(dest, dict) and dest and "error" not in dest:
        shown = ", ".join(f"{ver} {fmt.rate(d['rate'])} of {d['requests']:,}" for ver, d in dest.items())
        console.print(f"[dim]destination side (reporter=destination, before client retries; not judged): errors "
                      f"{shown}[/dim]", highlight=False)
    line = Text("health ")
    line.append(str(v.outcome), style=OUTCOME_STYLE[v.outcome])
    line.append(f" — {v.reason}")
    console.print(line)
    gate_line = Text("gate ")
    gate_line.append(str(gate.outcome), style=OUTCOME_STYLE[gate.outcome])
    gate_line.append(f" — {gate.reason}")
    console.print(gate_line)


# ------------------------------------------------------------------------------------------------- JSON

def row_to_dict(row: ComparisonRow) -> dict[str, Any]:
    return {"version": row.version, "baseline": row.baseline, "n": row.n, "bad": row.bad,
            "baseline_n": row.baseline_n, "baseline_bad": row.baseline_bad, "rate": row.rate,
            "baseline_rate": row.baseline_rate, "difference": row.difference, "lo": row.lo, "hi": row.hi,
            "p_worse": row.p_worse, "p_within": row.p_within, "status": row.status,
            "samples_needed": row.samples_needed, "bad_share": row.bad_share, "traffic_share": row.traffic_share}


def metric_to_dict(m: MetricVerdict) -> dict[str, Any]:
    c = m.criterion
    threshold = c.threshold.ms if c is not None and c.threshold is not None else None
    return {"metric": m.metric, "outcome": m.outcome, "reason": m.reason,
            "max_increase": c.max_increase if c else None, "fail_margin": c.fail_margin if c else None,
            "definition": c.definition if c else None, "threshold_ms": threshold,
            "rows": [row_to_dict(r) for r in m.rows]}


def health_to_dict(report: HealthReport) -> dict[str, Any]:
    v = report.verdict
    out = {"outcome": v.outcome, "exit_code": int(v.exit_code), "reason": v.reason, "method": v.method,
           "baseline": v.baseline, "alpha": v.alpha, "alpha_fail": v.alpha_fail, "interval": v.interval_name,
           "samples_needed": v.samples_needed, "attribution": report.attribution,
           "metrics": [metric_to_dict(m) for m in v.metrics], "parameters": dict(v.parameters),
           "method_details": dict(v.method_details), "notes": list(v.notes)}
    if report.extra:
        out.update(report.extra)
    return out


def gate_fields(split: Verdict, report: HealthReport) -> dict[str, Any]:
    """What ``--json`` says with ``--health``: the gate's outcome on top, the split's own under ``split``."""
    gate = report.gate(split)
    return {"outcome": gate.outcome, "exit_code": int(gate.exit_code), "reason": gate.reason,
            "split": {"outcome": split.outcome, "exit_code": int(split.exit_code), "reason": split.reason},
            "health": health_to_dict(report)}


# ------------------------------------------------------------------------------------------------- JUnit

@dataclass(frozen=True)
class Case:
    name: str
    failure: str | None
    skipped: str | None
    output: str


def junit_cases(report: HealthReport) -> list[Case]:
    """One testcase per health metric: FAIL fails it, INCONCLUSIVE and not judged skip it."""
    cases = []
    for m in report.verdict.metrics:
        margin = f" (PASS below +{fmt.pp(m.criterion.max_increase)})" if m.criterion else ""
        rows = "\n".join(f"{r.version}: {r.bad} of {r.n} ({fmt.rate(r.rate)}) vs {r.baseline} {r.baseline_bad} of "
                         f"{r.baseline_n} ({fmt.rate(r.baseline_rate)}); difference bounds {row_bounds(r)}; "
                         f"{shares_text(r)}; p(worse) = {fmt.pvalue(r.p_worse)}, p(within) = "
                         f"{fmt.pvalue(r.p_within)}" for r in m.rows)
        output = f"{outcome_text(m)}: {m.reason}" + (f"\n{rows}" if rows else "")
        name = f"{metric_name(m)}: canary no worse than {report.verdict.baseline}{margin}"
        cases.append(Case(name, m.reason if m.outcome == Outcome.FAIL else None,
                          m.reason if m.outcome != Outcome.FAIL and m.outcome != Outcome.PASS else None, output))
    return cases


# ------------------------------------------------------------------------------------------------- markdown

def markdown_lines(report: HealthReport) -> list[str]:
    v = report.verdict
    lines = ["", f"**canary health: {v.outcome}** — {v.reason.replace('|', '/')}", "",
             f"| metric | version | n | bad | rate | {v.baseline} | difference | bounds | status |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | :---: | --- |"]
    for m in v.metrics:
        if not m.rows:
            lines.append(f"| {metric_name(m)} | – | | | | | | | {outcome_text(m)} |")
        for r in m.rows:
            diff = fmt.signed_pp(r.difference) if r.difference is not None else "–"
            lines.append(f"| {metric_name(m)} | {r.version} | {r.n:,} | {r.bad:,} | {fmt.rate(r.rate)} | "
                         f"{fmt.rate(r.baseline_rate)} | {diff} | {row_bounds(r)} | {ROW_TEXT.get(r.status)} |")
    lines.append(f"\nerrors attributed by {report.attribution} · {v.interval_name}")
    return lines
