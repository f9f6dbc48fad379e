"""Verdict outputs: the rich table, JSON, JUnit XML and the GitHub step-summary markdown.

Every output carries the same facts: per version the expected share, the count, the observed share with its
interval and p-values, the unattributed responses against their limit, the goodness-of-fit result, the verdict
with its one-line reason, and the method with its parameters.
"""

from __future__ import annotations

import dataclasses
import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from splitproof.verifier.stats import (
    DIFFERS,
    FAIL,
    PASS,
    UNDECIDED,
    UNEXPECTED,
    WITHIN,
    Verdict,
    fmt_p,
    margin_text,
    pct,
    pp,
)

OUTCOME_STYLE = {PASS: "bold green", FAIL: "bold red"}
STATUS_TEXT = {WITHIN: "within", DIFFERS: "differs", UNDECIDED: "undecided", UNEXPECTED: "unexpected"}
STATUS_STYLE = {WITHIN: "green", DIFFERS: "red", UNDECIDED: "yellow", UNEXPECTED: "red"}
UNATTRIBUTED_TEXT = {WITHIN: "below", DIFFERS: "above", UNDECIDED: "undecided"}


def _interval(lo: float, hi: float) -> str:
    return f"{100 * lo:.1f}–{100 * hi:.1f}%"


def expected_text(expected: float) -> str:
    return pct(expected, 0) if abs(100 * expected - round(100 * expected)) < 1e-9 else pct(expected, 2)


def interval_heading(verdict: Verdict) -> str:
    """``98% CI`` (fixed-n Clopper-Pearson) or ``99% CS`` (sequential confidence sequence)."""
    level = verdict.interval.split(" ", 1)[0]
    return f"{level} {'CS' if 'sequence' in verdict.interval else 'CI'}"


def gof_text(verdict: Verdict) -> str:
    stat = verdict.gof_statistic
    if verdict.method == "sequential":
        shown = f"log BF = {stat:.2f}, " if stat is not None and math.isfinite(stat) else ""
        return f"{verdict.gof_method}: {shown}anytime-valid p = {fmt_p(verdict.gof_p_value)}"
    shown = f"statistic = {stat:.2f}, " if stat is not None and math.isfinite(stat) else ""
    return f"{verdict.gof_method}: {shown}p = {fmt_p(verdict.gof_p_value)}"


def verdict_table(verdict: Verdict) -> Table:
    """Columns: version, expected, count, observed share, interval, p (differs from expected; for unattributed:
    above the limit), p equiv. (within the margin; for unattributed: below the limit), status."""
    table = Table(title=f"verify-split · {verdict.method} · alpha {verdict.alpha:g} · tolerance "
                        f"±{pp(verdict.tolerance)}", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    table.add_column("version", no_wrap=True)
    table.add_column("exp.", justify="right", no_wrap=True)
    table.add_column("count", justify="right", no_wrap=True)
    table.add_column("share", justify="right", no_wrap=True)
    table.add_column(interval_heading(verdict), justify="center", no_wrap=True)
    table.add_column("p", justify="right", no_wrap=True)
    table.add_column("p eq.", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for row in verdict.rows:
        table.add_row(row.version, expected_text(row.expected), f"{row.count:,}", pct(row.share),
                      _interval(row.lo, row.hi) if row.share is not None else "–", fmt_p(row.p_value),
                      fmt_p(row.p_equivalence), Text(STATUS_TEXT[row.status], style=STATUS_STYLE[row.status]))
    u = verdict.unattributed_row
    table.add_row("unattributed", f"≤{pct(u.limit, 1)}", f"{u.count:,}", pct(u.share),
                  _interval(u.lo, u.hi) if u.share is not None else "–", fmt_p(u.p_exceeds), fmt_p(u.p_within),
                  Text(UNATTRIBUTED_TEXT[u.status], style=STATUS_STYLE[u.status]), style="dim")
    return table


def print_verdict(verdict: Verdict, console: Console | None = None) -> None:
    """The table, the goodness of fit, unattributed causes, notes, and the verdict with its reason."""
    console = console or Console()
    console.print(verdict_table(verdict))
    console.print(f"[dim]{gof_text(verdict)} · {verdict.n:,} attributed + {verdict.unattributed:,} unattributed "
                  f"responses · {verdict.interval} · p: share differs from expected (unattributed: above the "
                  f"limit) · p eq.: within {margin_text(verdict.rows, verdict.tolerance)} (unattributed: below the "
                  "limit)[/dim]",
                  highlight=False)
    if verdict.unattributed_causes:
        causes = ", ".join(f"{cause} × {count:,}" for cause, count in
                           sorted(verdict.unattributed_causes.items(), key=lambda kv: -kv[1]))
        console.print(f"[dim]unattributed by cause: {causes}[/dim]", highlight=False)
    for note in verdict.notes:
        console.print(f"[yellow]warning:[/yellow] {note}", highlight=False)
    style = OUTCOME_STYLE.get(verdict.outcome, "bold yellow")
    line = Text()
    line.append(verdict.outcome, style=style)
    line.append(f" — {verdict.reason}")
    console.print(line)


# ---------------------------------------------------------------------------------------------------------- JSON


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become None, mappings/sequences recursively cleaned."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def verdict_to_dict(verdict: Verdict) -> dict[str, Any]:
    """Everything in the table plus method and parameters, JSON-ready."""
    data = dataclasses.asdict(verdict)
    data["rows"] = [dataclasses.asdict(r) for r in verdict.rows]
    data["unattributed_row"] = dataclasses.asdict(verdict.unattributed_row)
    data["total"] = verdict.total
    data["exit_code"] = verdict.exit_code
    return _clean(data)


def verdict_json(verdict: Verdict, extra: Mapping[str, Any] | None = None) -> str:
    data = verdict_to_dict(verdict)
    if extra:
        data.update(_clean(dict(extra)))
    return json.dumps(data, indent=2)


# --------------------------------------------------------------------------------------------------------- JUnit


def write_junit(verdict: Verdict, path: str | Path) -> Path:
    """One testcase per version (share within its margin) plus one for the overall verdict.

    A version shown within its margin passes, one shown different (or answering at 0% expected) fails, an
    undecided one is skipped; the overall testcase fails on FAIL and on INCONCLUSIVE (a gate that could not
    decide must not look green).
    """
    suite = ET.Element("testsuite", name="verify-split")
    failures = skipped = 0
    props = ET.SubElement(suite, "properties")
    for key, value in verdict.parameters.items():
        if isinstance(value, str | int | float):
            ET.SubElement(props, "property", name=str(key), value=str(value))
    ET.SubElement(props, "property", name="method", value=verdict.method)
    for row in verdict.rows:
        margin = f"± {pp(row.margin)}" if row.expected > 0 else "(no response allowed)"
        case = ET.SubElement(suite, "testcase", classname="verify-split.versions",
                             name=f"{row.version} share {expected_text(row.expected)} {margin}")
        observed = (f"{row.version}: {row.count} responses, {pct(row.share)} ({verdict.interval} "
                    f"{_interval(row.lo, row.hi)}), expected {pct(row.expected)}; p = {fmt_p(row.p_value)}, "
                    f"equivalence p = {fmt_p(row.p_equivalence)}")
        if row.status in (DIFFERS, UNEXPECTED):
            failures += 1
            ET.SubElement(case, "failure", message=f"{row.version} {STATUS_TEXT[row.status]}", type=row.status).text \
                = observed
        elif row.status == UNDECIDED:
            skipped += 1
            ET.SubElement(case, "skipped", message=f"{row.version}: not yet shown within the margin")
        ET.SubElement(case, "system-out").text = observed
    overall = ET.SubElement(suite, "testcase", classname="verify-split", name="verdict")
    summary = f"{verdict.outcome}: {verdict.reason}"
    if verdict.outcome != PASS:
        failures += 1
        ET.SubElement(overall, "failure", message=summary, type=verdict.outcome).text = summary
    u = verdict.unattributed_row
    ET.SubElement(overall, "system-out").text = (
        f"{summary}\n{gof_text(verdict)}\nunattributed: {u.count} of {u.total} ({pct(u.share)}), limit "
        f"{pct(u.limit)}")
    suite.set("tests", str(len(verdict.rows) + 1))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", str(skipped))
    root = ET.Element("testsuites", name="verify-split", tests=suite.get("tests", "0"), failures=str(failures))
    root.append(suite)
    ET.indent(root)
    out = Path(path)
    out.write_text(ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n", encoding="utf-8")
    return out


# ------------------------------------------------------------------------------------------------------ markdown


def github_summary_markdown(verdict: Verdict) -> str:
    """A markdown block for $GITHUB_STEP_SUMMARY."""
    icon = {PASS: "✅", FAIL: "❌"}.get(verdict.outcome, "⚠️")
    lines = [
        f"### {icon} verify-split: {verdict.outcome}",
        "",
        verdict.reason.replace("|", "\\|"),
        "",
        f"| version | expected | count | observed | {interval_heading(verdict)} | p | p equivalence | status |",
        "| --- | ---: | ---: | ---: | :---: | ---: | ---: | --- |",
    ]
    for row in verdict.rows:
        lines.append(f"| {row.version} | {expected_text(row.expected)} | {row.count:,} | {pct(row.share)} | "
                     f"{_interval(row.lo, row.hi)} | {fmt_p(row.p_value)} | {fmt_p(row.p_equivalence)} | "
                     f"{STATUS_TEXT[row.status]} |")
    u = verdict.unattributed_row
    lines.append(f"| *unattributed* | ≤{pct(u.limit)} | {u.count:,} | {pct(u.share)} | {_interval(u.lo, u.hi)} | "
                 f"{fmt_p(u.p_exceeds)} (above) | {fmt_p(u.p_within)} (below) | {UNATTRIBUTED_TEXT[u.status]} |")
    lines += ["", f"{gof_text(verdict)} · method **{verdict.method}**, alpha {verdict.alpha:g}, tolerance "
                  f"±{pp(verdict.tolerance)}, max unattributed {pct(verdict.max_unattributed)}"]
    if verdict.samples_needed:
        lines.append(f"· about {verdict.samples_needed:,} more samples needed")
    for note in verdict.notes:
        lines.append(f"\n> **warning:** {note}")
    return "\n".join(lines) + "\n"


def append_github_summary(verdict: Verdict, path: str | Path) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(github_summary_markdown(verdict) + "\n")
