"""The rollout's HTML report, built from its events alone (so a log written by a killed run renders too): a banner
with how the rollout ended, the canary's cumulative share over time across all steps against each step's PASS band
(expected share +- its margin), each step's verdict, and a table per step -- weights, time from written to served
and from served to verdict, responses, the split and the health verdicts and why. One self-contained file: the
chart is matplotlib SVG inlined (the verify-split report's building block, verifier.reports.charts)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from splitproof.setup.rollout import events as ev
from splitproof.verifier.reports.charts import _svg
from splitproof.verifier.reports.writer import write_text

COLOURS = {"PASS": "#1a7f37", "FAIL": "#cf222e", "INCONCLUSIVE": "#9a6700"}
ENDINGS = {ev.PROMOTED: ("promoted", "#1a7f37"), ev.ROLLED_BACK: ("rolled back", "#cf222e"),
           ev.HELD: ("held (inconclusive)", "#9a6700"), ev.INTERRUPTED: ("interrupted", "#57606a"),
           ev.ABORTED: ("stopped: target unreachable", "#57606a")}


def steps_of(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per step attempt: its events folded together (a resumed step appears once per attempt)."""
    rows: list[dict[str, Any]] = []
    for e in events:
        kind = e.get("event")
        if kind == ev.STEP_STARTED:
            rows.append({"step": e.get("step"), "percent": e.get("percent"), "weights": e.get("weights"),
                         "t_start": e.get("t")})
        elif rows and kind == ev.WEIGHTS_SERVED:
            rows[-1].update(t_served=e.get("t"), written_to_served_s=e.get("written_to_served_s"),
                            served=e.get("served"))
        elif rows and kind == ev.VERDICT:
            rows[-1].update({k: v for k, v in e.items() if k not in ("event", "step", "percent")}, t_verdict=e.get("t"))
    return rows


def ending(events: Sequence[dict[str, Any]]) -> tuple[str, str, str]:
    """(label, colour, detail) of how the rollout ended (or "in progress" for a log still being written)."""
    for e in reversed(events):
        if e.get("event") in ENDINGS:
            label, colour = ENDINGS[e["event"]]
            detail = str(e.get("reason") or "")
            if e["event"] == ev.ROLLED_BACK:
                detail += " -- rollback verified" if e.get("verified") else " -- rollback NOT verified"
            return label, colour, detail
    return "in progress", "#57606a", "the log ends without an outcome (still running, or the driver was killed)"


def share_chart(rows: Sequence[dict[str, Any]], t0: float) -> str:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6))
    ax = fig.add_subplot()
    for row in rows:
        start = float(row.get("t_served") or row.get("t_start") or t0) - t0
        series = row.get("series") or []
        end = start + (series[-1][0] if series else 0.0)
        if row.get("t_verdict"):
            end = max(end, float(row["t_verdict"]) - t0)
        band = row.get("band")
        if band:
            ax.fill_between([start, max(end, start + 1e-3)], band[0] * 100, band[1] * 100, color="#0969da",
                            alpha=0.12, linewidth=0)
        ax.hlines(row.get("percent") or 0, start, max(end, start + 1e-3), colors="#0969da", linestyles="dashed",
                  linewidth=1)
        if series:
            ax.plot([start + t for t, _ in series], [100 * s for _, s in series], color="#bf3989", linewidth=1.4)
        outcome = row.get("outcome")
        if outcome:
            ax.axvline(end, color=COLOURS.get(outcome, "#57606a"), linewidth=1, alpha=0.7)
            ax.annotate(f"{row.get('percent')}%: {outcome}", (end, row.get("percent") or 0), fontsize=8,
                        color=COLOURS.get(outcome, "#57606a"), xytext=(3, 6), textcoords="offset points")
    ax.set_xlabel("seconds since the rollout started (each step counted from the moment the proxies served it)")
    ax.set_ylabel("canary share (%)")
    ax.set_ylim(-2, 105)
    ax.grid(alpha=0.3)
    return _svg(fig)


def _fmt_s(value: Any, scale: float = 1.0, unit: str = "s", digits: int = 1) -> str:
    return "–" if value is None else f"{float(value) * scale:.{digits}f} {unit}"


def render(events: Sequence[dict[str, Any]], title: str = "Splitproof progressive rollout") -> str:
    rows = steps_of(events)
    t0 = float(events[0].get("t", 0.0)) if events else 0.0
    label, colour, detail = ending(events)
    plan = next((e.get("plan") for e in events if e.get("event") == ev.ROLLOUT_STARTED), {}) or {}
    chart = share_chart(rows, t0) if rows else "<p>no step started</p>"
    body = []
    for row in rows:
        outcome = row.get("outcome") or "running"
        body.append(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
                f"{row.get('step')} ({row.get('percent')}%)",
                ", ".join(f"{k}={v}" for k, v in (row.get("weights") or {}).items()),
                _fmt_s(row.get("written_to_served_s"), 1000, "ms", 0),
                _fmt_s(row.get("served_to_verdict_s")),
                f"{row.get('samples', 0):,}" if row.get("samples") is not None else "–",
                row.get("split") or "–", row.get("health") or "not judged"))
            + f"<td style='color:{COLOURS.get(outcome, '#57606a')};font-weight:bold'>{html.escape(outcome)}</td>"
            + f"<td class='why'>{html.escape(str(row.get('reason') or ''))}</td></tr>")
    log = "\n".join(html.escape(str(e)) for e in events)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}}
.banner{{background:{colour};color:#fff;padding:.8em 1em;border-radius:6px;font-size:1.2em}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #d0d7de;padding:4px 8px;text-align:left;
vertical-align:top}}.why{{font-size:.85em;max-width:520px}}pre{{font-size:.75em;white-space:pre-wrap}}</style>
</head><body><h1>{html.escape(title)}</h1>
<div class="banner" id="outcome">{html.escape(label)}</div><p>{html.escape(detail)}</p>
<p>steps {html.escape(" -> ".join(map(str, plan.get("steps", []))))}; whole-rollout alpha {plan.get("alpha")}
(split evenly over the steps); health {"on" if plan.get("health") else "off"}; source {plan.get("source")}.</p>
<h2>Canary share over time</h2><p>Shaded: each step's PASS band (expected share ± its margin); dashed: the
expected share; line: the cumulative canary share counted from the moment the proxies served the step.</p>
<div id="share-chart">{chart}</div>
<h2>Steps</h2><table id="steps"><tr><th>step</th><th>weights</th><th>written → served</th>
<th>served → verdict</th><th>responses</th><th>split</th><th>health</th><th>verdict</th><th>why</th></tr>
{"".join(body)}</table>
<details><summary>events ({len(events)})</summary><pre>{log}</pre></details></body></html>
"""


def write_report(path: str | Path, events: Sequence[dict[str, Any]]) -> Path:
    write_text(path, render(events))
    return Path(path)
