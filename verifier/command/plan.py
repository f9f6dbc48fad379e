"""``--plan``: how many responses (and, with ``--rate``, how long) a verdict needs -- a table, and the JSON form."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from splitproof.verifier import fmt
from splitproof.verifier.command.settings import Settings
from splitproof.verifier.expected import Expected
from splitproof.verifier.reports.jsonout import plan_to_dict
from splitproof.verifier.stats.planning import plan


def print_plan(expected: Expected, s: Settings, rate: float | None, console: Console) -> dict[str, Any]:
    """Print the plan table; returns the ``--json`` document."""
    from rich.table import Table

    p = plan(expected, s.tolerance, s.alpha, s.power, s.max_unattributed)
    rows = [
        ("fixed-n: PASS with the given power when the split is exactly as expected", p.n_pass),
        (f"fixed-n: FAIL with the given power when a share is off by {fmt.pp(s.tolerance)}", p.n_fail),
        (f"unattributed shown below {fmt.share(s.max_unattributed)} (none occurring)", p.n_unattributed),
        ("fixed-n sample size (all of the above)", p.n),
        ("sequential: typical responses to PASS at the exact split", p.sequential_pass),
    ]
    table = Table(title=f"verify-split --plan · {expected.describe()} · alpha {s.alpha:g} · tolerance "
                        f"±{fmt.pp(s.tolerance)} · power {s.power:g}", title_justify="left")
    table.add_column("what")
    table.add_column("responses", justify="right")
    if rate:
        table.add_column(f"time at {rate:g}/s", justify="right")
    for what, n in rows:
        table.add_row(*[what, f"{n:,}"] + ([duration(n / rate)] if rate else []))
    console.print(table)
    return plan_to_dict(p, rate)


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"
