"""``--html``: a self-contained report of one verification -- verdict banner, the table, the share-over-time
chart with the table's own interval (:mod:`verifier.reports.charts`), latencies, errors. No scripts, no external
resources: the file opens anywhere.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from splitproof.verifier import fmt
from splitproof.verifier.reports.charts import latency_chart_svg, share_chart_svg
from splitproof.verifier.reports.text import gof_text
from splitproof.verifier.reports.timeline import Timeline
from splitproof.verifier.verdict import Outcome, Verdict

if TYPE_CHECKING:
    from splitproof.verifier.reports.healthout import HealthReport

BANNER_COLOURS = {Outcome.PASS: "#1a7f37", Outcome.FAIL: "#cf222e", Outcome.INCONCLUSIVE: "#9a6700"}


def _pct(x: float | None) -> str:
    return fmt.pct(x, 2, missing="–")


def render_html(verdict: Verdict, timeline: Timeline, *, title: str = "Splitproof verification",
                source: str = "", health: HealthReport | None = None) -> str:
    """The whole report as one HTML string (no external resources)."""
    timeline.finish()
    outcome, reason = verdict.outcome, verdict.reason
    if health is not None:
        gate = health.gate(verdict)
        outcome, reason = gate.outcome, gate.reason
    colour = BANNER_COLOURS[outcome]
    p = verdict.parameters
    expected = {row.version: row.expected for row in verdict.rows}
    esc = html.escape
    rows_html = []
    for row in verdict.rows:
        p50 = timeline.latency_quantile(row.version, 0.5)
        p99 = timeline.latency_quantile(row.version, 0.99)
        rows_html.append(
            "<tr>"
            f"<td>{esc(row.version)}</td><td>{_pct(row.expected)}</td><td>{row.count:,}</td>"
            f"<td>{_pct(row.share)}</td><td>{_pct(row.lo)} – {_pct(row.hi)}</td>"
            f"<td>{fmt.pvalue(row.p_value)}</td><td>{fmt.pvalue(row.p_equivalence)}</td><td>{esc(row.status)}</td>"
            f"<td>{fmt.ms(p50)}</td><td>{fmt.ms(p99)}</td>"
            "</tr>"
        )
    u = verdict.unattributed_row
    rows_html.append(
        "<tr class='muted'>"
        f"<td>unattributed</td><td>≤ {_pct(u.limit)}</td><td>{u.count:,}</td><td>{_pct(u.share)}</td>"
        f"<td>{_pct(u.lo)} – {_pct(u.hi)}</td><td>{fmt.pvalue(u.p_exceeds)}</td><td>{fmt.pvalue(u.p_within)}</td>"
        f"<td>{esc(u.status)}</td><td>{fmt.ms(timeline.latency_quantile('unattributed', 0.5))}</td>"
        f"<td>{fmt.ms(timeline.latency_quantile('unattributed', 0.99))}</td></tr>"
    )
    causes = dict(verdict.unattributed_causes) or dict(timeline.errors)
    errors_html = "".join(
        f"<tr><td>{esc(cause)}</td><td>{count:,}</td></tr>"
        for cause, count in sorted(causes.items(), key=lambda kv: -kv[1])
    ) or "<tr><td colspan='2'>none</td></tr>"
    notes_html = "".join(f"<li>{esc(note)}</li>" for note in verdict.notes)
    share_svg = share_chart_svg(timeline, verdict) if timeline.checkpoints else \
        "<p>No attributed responses: nothing to chart.</p>"
    order = [row.version for row in verdict.rows] + [v for v in timeline.counts if v not in expected]
    threshold, health_html = None, ""
    if health is not None:
        from splitproof.verifier.reports.healthhtml import health_section, health_threshold  # with --health only

        threshold, health_html = health_threshold(health), health_section(health, order)
    latency_svg = latency_chart_svg(timeline, order, threshold) if timeline.latency else ""

    gof = gof_text(verdict)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{esc(title)} — {esc(outcome)}</title>
<style>
 body {{ font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 24px; color: #1f2328; max-width: 980px; }}
 .banner {{ background: {colour}; color: white; padding: 16px 20px; border-radius: 8px; }}
 .banner h1 {{ margin: 0 0 4px 0; font-size: 28px; }}
 table {{ border-collapse: collapse; margin: 12px 0; font-size: 14px; }}
 th, td {{ border-bottom: 1px solid #d0d7de; padding: 6px 10px; text-align: right; }}
 th:first-child, td:first-child {{ text-align: left; }}
 .muted td {{ color: #57606a; }}
 .meta {{ color: #57606a; font-size: 13px; }}
 figure {{ margin: 16px 0; }}
 svg {{ max-width: 100%; height: auto; }}
</style></head>
<body>
<div class="banner" id="verdict"><h1>{esc(outcome)}</h1><div>{esc(reason)}</div></div>
<p class="meta">{esc(source)} · method: {esc(verdict.method)} · alpha {p.alpha:g} · tolerance
 ±{fmt.pp(p.tolerance)} · max unattributed {_pct(p.max_unattributed)} · {esc(gof)} ·
 {verdict.n:,} attributed + {verdict.unattributed:,} unattributed responses · generated {generated}</p>
<h2>Expected vs observed</h2>
<table id="split">
<tr><th>version</th><th>expected</th><th>count</th><th>observed</th><th>{esc(verdict.interval_name)}</th>
<th>p (differs)</th><th>p (equivalence)</th><th>status</th><th>p50 ms</th><th>p99 ms</th></tr>
{''.join(rows_html)}
</table>
{f'<ul>{notes_html}</ul>' if notes_html else ''}
{health_html}
<h2>Canary share over time</h2>
<figure id="share-chart">{share_svg}</figure>
<h2>Latency</h2>
<figure id="latency-chart">{latency_svg}</figure>
<h2>Errors and unattributed causes</h2>
<table id="errors"><tr><th>cause</th><th>count</th></tr>{errors_html}</table>
</body></html>
"""


def write_html(path: str | Path, verdict: Verdict, timeline: Timeline, **kwargs: str) -> Path:
    out = Path(path)
    out.write_text(render_html(verdict, timeline, **kwargs), encoding="utf-8")
    return out
