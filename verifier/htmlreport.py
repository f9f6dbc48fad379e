"""A self-contained HTML report of one verification: verdict banner, table, share-over-time chart, latencies.

Charts are drawn with matplotlib (Agg backend) as inline SVG, so the file has no external references and opens
anywhere. The share chart shows, for each version, the cumulative observed share with its anytime-valid
(1 - alpha) confidence sequence (valid at every point of the curve at once, unlike a pointwise interval),
converging on the expected line and its tolerance margin.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from splitproof.verifier.margins import version_margins, version_prior
from splitproof.verifier.mixture import confidence_sequence
from splitproof.verifier.stats import FAIL, PASS, Verdict
from splitproof.verifier.timeline import Timeline, bin_upper_edge_ms

_BANNER_COLOURS = {PASS: "#1a7f37", FAIL: "#cf222e"}
_INCONCLUSIVE_COLOUR = "#9a6700"
_PALETTE = ("#0969da", "#bf3989", "#1a7f37", "#9a6700", "#8250df", "#57606a")


def _svg(fig: object) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")  # type: ignore[attr-defined]
    text = buf.getvalue()
    start = text.find("<svg")
    return text[start:] if start >= 0 else text


def share_chart_svg(timeline: Timeline, expected: Mapping[str, float], alpha: float, tolerance: float) -> str:
    """Cumulative share per version vs responses, with its confidence sequence and the expected ± tolerance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = timeline.checkpoints
    fig, ax = plt.subplots(figsize=(8.5, 3.6), dpi=100)
    try:
        versions = [v for v in expected if v in timeline.counts or expected[v] > 0]
        versions += [v for v in timeline.counts if v not in expected]
        xs = [p.n for p in points]
        for version in versions:
            colour = _colour(version, versions)
            e = expected.get(version, 0.0)
            a, b = version_prior(e, tolerance)
            k = len(versions)
            shares, lo, hi = [], [], []
            for p in points:
                x = p.counts.get(version, 0)
                shares.append(x / p.n)
                band = confidence_sequence(x, p.n, a, b, alpha / max(k, 1))
                lo.append(band[0])
                hi.append(band[1])
            ax.plot(xs, shares, color=colour, lw=1.6, label=f"{version} observed")
            ax.fill_between(xs, lo, hi, color=colour, alpha=0.15, lw=0)
            ax.axhline(e, color=colour, ls="--", lw=1.0, label=f"{version} expected {e:.0%}")
            lo_m, hi_m = version_margins(e, tolerance)
            ax.axhspan(max(lo_m, 0), min(hi_m, 1), color=colour, alpha=0.05)
        if xs:
            ax.set_xscale("log")
            _plain_log_ticks(ax.xaxis)
            ax.set_xlim(max(1, xs[0]), max(xs[-1], 2))
        ax.set_ylim(0, 1)
        ax.set_xlabel("attributed responses (log scale)")
        ax.set_ylabel("cumulative share")
        ax.set_title(f"Share over time — shaded: anytime-valid {_level(alpha)} confidence sequence; "
                     "light band: each version's margin", fontsize=9)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=8, loc="upper right", ncols=2)
        return _svg(fig)
    finally:
        plt.close(fig)


def _colour(version: str, order: list[str]) -> str:
    if version not in order:
        return "#8c959f"  # unattributed and unknown: grey
    return _PALETTE[order.index(version) % len(_PALETTE)]


def _level(alpha: float) -> str:
    """Confidence level as a percentage with the digits alpha needs: 0.01 -> '99%', 0.001 -> '99.9%'."""
    level = 100 * (1 - alpha)
    for digits in range(0, 5):
        text = f"{level:.{digits}f}"
        if abs(float(text) - level) < 1e-9:
            return f"{text}%"
    return f"{level:.4f}%"


def _plain_log_ticks(axis: object, subs: tuple[float, ...] = (1.0,)) -> None:
    """Label a log axis with plain numbers at ``subs`` x each decade, no minor labels (they overlap)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=subs))  # type: ignore[attr-defined]
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))  # type: ignore[attr-defined]
    axis.set_minor_formatter(NullFormatter())  # type: ignore[attr-defined]


def latency_chart_svg(timeline: Timeline, order: list[str]) -> str:
    """Per-version latency distribution (log-spaced histogram, drawn as steps); colours follow ``order``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 3.0), dpi=100)
    try:
        used = [j for bins in timeline.latency.values() for j, c in enumerate(bins) if c]
        first, last = (max(min(used) - 1, 0), min(max(used) + 1, len(next(iter(timeline.latency.values()))) - 2)) \
            if used else (0, 1)
        keys = [k for k in order if k in timeline.latency] + sorted(k for k in timeline.latency if k not in order)
        for key in keys:
            bins = timeline.latency[key]
            total = sum(bins)
            if not total:
                continue
            edges = [bin_upper_edge_ms(j) for j in range(first, last + 1)]
            fractions = [bins[j] / total for j in range(first, last + 1)]
            ax.step(edges, fractions, where="pre", color=_colour(key, order), lw=1.4, label=f"{key} (n={total:,})")
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis, subs=(1.0, 2.0, 5.0))
        ax.set_xlabel("latency (ms, log scale)")
        ax.set_ylabel("fraction of responses")
        ax.set_title("Latency distribution per version", fontsize=9)
        ax.grid(True, which="both", alpha=0.25)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        return _svg(fig)
    finally:
        plt.close(fig)


def _pct(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}%"


def _p(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.3g}" if x >= 1e-4 else f"{x:.1e}"


def _ms(x: float | None) -> str:
    return "–" if x is None or math.isinf(x) else f"{x:.2f}"


def render_html(verdict: Verdict, timeline: Timeline, *, title: str = "Splitproof verification",
                source: str = "") -> str:
    """The whole report as one HTML string (no external resources)."""
    timeline.finish()
    colour = _BANNER_COLOURS.get(verdict.outcome, _INCONCLUSIVE_COLOUR)
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
            f"<td>{_p(row.p_value)}</td><td>{_p(row.p_equivalence)}</td><td>{esc(row.status)}</td>"
            f"<td>{_ms(p50)}</td><td>{_ms(p99)}</td>"
            "</tr>"
        )
    u = verdict.unattributed_row
    rows_html.append(
        "<tr class='muted'>"
        f"<td>unattributed</td><td>≤ {_pct(u.limit)}</td><td>{u.count:,}</td><td>{_pct(u.share)}</td>"
        f"<td>{_pct(u.lo)} – {_pct(u.hi)}</td><td>{_p(u.p_exceeds)}</td><td>{_p(u.p_within)}</td>"
        f"<td>{esc(u.status)}</td><td>{_ms(timeline.latency_quantile('unattributed', 0.5))}</td>"
        f"<td>{_ms(timeline.latency_quantile('unattributed', 0.99))}</td></tr>"
    )
    causes = dict(verdict.unattributed_causes) or dict(timeline.errors)
    errors_html = "".join(
        f"<tr><td>{esc(cause)}</td><td>{count:,}</td></tr>"
        for cause, count in sorted(causes.items(), key=lambda kv: -kv[1])
    ) or "<tr><td colspan='2'>none</td></tr>"
    notes_html = "".join(f"<li>{esc(note)}</li>" for note in verdict.notes)
    share_svg = share_chart_svg(timeline, expected, verdict.alpha, verdict.tolerance) if timeline.checkpoints else \
        "<p>No attributed responses: nothing to chart.</p>"
    order = [row.version for row in verdict.rows] + [v for v in timeline.counts if v not in expected]
    latency_svg = latency_chart_svg(timeline, order) if timeline.latency else ""
    gof = f"{verdict.gof_method}: p = {_p(verdict.gof_p_value)}"
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{esc(title)} — {esc(verdict.outcome)}</title>
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
<div class="banner" id="verdict"><h1>{esc(verdict.outcome)}</h1><div>{esc(verdict.reason)}</div></div>
<p class="meta">{esc(source)} · method: {esc(verdict.method)} · alpha {verdict.alpha:g} · tolerance
 ±{100 * verdict.tolerance:g} pp · max unattributed {_pct(verdict.max_unattributed)} · {esc(gof)} ·
 {verdict.n:,} attributed + {verdict.unattributed:,} unattributed responses · generated {generated}</p>
<h2>Expected vs observed</h2>
<table id="split">
<tr><th>version</th><th>expected</th><th>count</th><th>observed</th><th>{esc(verdict.interval)}</th>
<th>p (differs)</th><th>p (equivalence)</th><th>status</th><th>p50 ms</th><th>p99 ms</th></tr>
{''.join(rows_html)}
</table>
{f'<ul>{notes_html}</ul>' if notes_html else ''}
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
