"""The verdict on the terminal: the rich table, the legend, unattributed causes, notes, and the verdict line."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from splitproof.verifier import fmt
from splitproof.verifier.reports.text import STATUS_TEXT, UNATTRIBUTED_TEXT, legend, title
from splitproof.verifier.verdict import Outcome, Status, Verdict

OUTCOME_STYLE = {Outcome.PASS: "bold green", Outcome.FAIL: "bold red", Outcome.INCONCLUSIVE: "bold yellow"}
STATUS_STYLE = {Status.WITHIN: "green", Status.DIFFERS: "red", Status.UNDECIDED: "yellow", Status.UNEXPECTED: "red"}


def verdict_table(verdict: Verdict) -> Table:
    """Columns: version, expected, count, observed share, interval, p (differs from expected; for unattributed:
    above the limit), p equiv. (within the margin; for unattributed: below the limit), status."""
    table = Table(title=title(verdict), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    table.add_column("version", no_wrap=True)
    table.add_column("exp.", justify="right", no_wrap=True)
    table.add_column("count", justify="right", no_wrap=True)
    table.add_column("share", justify="right", no_wrap=True)
    table.add_column(verdict.unattributed_row.interval.heading, justify="center", no_wrap=True)
    table.add_column("p", justify="right", no_wrap=True)
    table.add_column("p eq.", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for row in verdict.rows:
        table.add_row(row.version, fmt.expected(row.expected), f"{row.count:,}", fmt.pct(row.share),
                      fmt.interval(row.lo, row.hi) if row.share is not None else "–", fmt.pvalue(row.p_value),
                      fmt.pvalue(row.p_equivalence), Text(STATUS_TEXT[row.status], style=STATUS_STYLE[row.status]))
    u = verdict.unattributed_row
    table.add_row("unattributed", f"≤{fmt.pct(u.limit, 1)}", f"{u.count:,}", fmt.pct(u.share),
                  fmt.interval(u.lo, u.hi) if u.share is not None else "–", fmt.pvalue(u.p_exceeds),
                  fmt.pvalue(u.p_within), Text(UNATTRIBUTED_TEXT[u.status], style=STATUS_STYLE[u.status]),
                  style="dim")
    return table


def print_verdict(verdict: Verdict, console: Console | None = None) -> None:
    """The table, the goodness of fit, unattributed causes, notes, and the verdict with its reason."""
    console = console or Console()
    console.print(verdict_table(verdict))
    console.print(f"[dim]{legend(verdict)}[/dim]", highlight=False)
    if verdict.unattributed_causes:
        causes = ", ".join(f"{cause} × {count:,}" for cause, count in
                           sorted(verdict.unattributed_causes.items(), key=lambda kv: -kv[1]))
        console.print(f"[dim]unattributed by cause: {causes}[/dim]", highlight=False)
    for note in verdict.notes:
        console.print(f"[yellow]warning:[/yellow] {note}", highlight=False)
    line = Text()
    line.append(verdict.outcome, style=OUTCOME_STYLE[verdict.outcome])
    line.append(f" — {verdict.reason}")
    console.print(line)
