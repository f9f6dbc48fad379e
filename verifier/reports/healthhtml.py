"""The HTML report's "Canary health" section: the health verdict, its table, errors over time with the confidence
sequence (:mod:`verifier.reports.healthcharts`); the latency distributions side by side are the report's latency
chart, with the slow threshold drawn on it."""

from __future__ import annotations

import html

from splitproof.verifier import fmt
from splitproof.verifier.health.model import ERRORS, LATENCY
from splitproof.verifier.reports.healthcharts import error_chart_svg
from splitproof.verifier.reports.healthout import ROW_TEXT, HealthReport, metric_name, outcome_text, row_bounds


def health_threshold(report: HealthReport | None) -> float | None:
    if report is None:
        return None
    for m in report.verdict.metrics:
        if m.metric == LATENCY and m.criterion is not None and m.criterion.threshold is not None:
            return m.criterion.threshold.ms
    return None


def health_section(report: HealthReport, order: list[str]) -> str:
    esc = html.escape
    v = report.verdict
    rows = []
    for m in v.metrics:
        if not m.rows:
            rows.append(f"<tr><td>{esc(metric_name(m))}</td><td>–</td><td colspan='7'>{esc(m.reason)}</td>"
                        f"<td>{esc(outcome_text(m))}</td></tr>")
        for r in m.rows:
            diff = fmt.signed_pp(r.difference) if r.difference is not None else "–"
            rows.append(f"<tr><td>{esc(metric_name(m))}</td><td>{esc(r.version)}</td><td>{r.n:,}</td>"
                        f"<td>{r.bad:,}</td><td>{fmt.rate(r.rate)}</td><td>{fmt.rate(r.baseline_rate)}</td>"
                        f"<td>{diff}</td><td>{esc(row_bounds(r))}</td><td>{fmt.pvalue(r.p_worse)}</td>"
                        f"<td>{esc(ROW_TEXT.get(r.status, str(r.status)))}</td></tr>")
    errors = next((m for m in v.metrics if m.metric == ERRORS), None)
    chart = ""
    versions = [x for x in order if any(x in p.rates for p in report.points)]
    if report.points and errors is not None and errors.criterion is not None and errors.outcome is not None:
        chart = "<figure id='health-error-chart'>" + error_chart_svg(
            report.points, versions, v.baseline, fail_margin=errors.criterion.fail_margin,
            max_increase=errors.criterion.max_increase) + "</figure>"
    notes = "".join(f"<li>{esc(n)}</li>" for n in v.notes)
    return f"""<h2>Canary health: {esc(v.outcome)}</h2>
<p>{esc(v.reason)}</p>
<p class="meta">{esc(v.method)} · errors attributed by {esc(report.attribution)} · {esc(v.interval_name)}</p>
<table id="health">
<tr><th>metric</th><th>version</th><th>n</th><th>bad</th><th>rate</th><th>{esc(v.baseline)}</th><th>difference</th>
<th>bounds</th><th>p (worse)</th><th>status</th></tr>
{''.join(rows)}
</table>
{f'<ul>{notes}</ul>' if notes else ''}
{chart}
"""
