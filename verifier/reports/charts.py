"""The HTML report's charts, drawn with matplotlib (its Figure API, no pyplot) as inline SVG: the page needs no more.

* share over time: each version's cumulative observed share with *the verdict's own interval* at every checkpoint
  -- the one the table shows (:mod:`verifier.stats.intervals`): for a sequential verdict the anytime-valid
  confidence sequence (valid along the whole curve at once), for a fixed-n verdict the Clopper-Pearson interval
  (pointwise: valid at each n on its own; the table's at the last point) -- converging on the expected line inside
  each version's margin band;
* latency: each version's latency distribution (log-spaced histogram drawn as steps).
"""

from __future__ import annotations

import io
from collections.abc import Mapping

from splitproof.verifier import fmt
from splitproof.verifier.reports.timeline import Timeline, bin_upper_edge_ms
from splitproof.verifier.stats.intervals import share_interval
from splitproof.verifier.stats.margins import version_margins
from splitproof.verifier.verdict import Interval, IntervalKind, Method, Verdict

_PALETTE = ("#0969da", "#bf3989", "#1a7f37", "#9a6700", "#8250df", "#57606a")


def band(timeline: Timeline, verdict: Verdict) -> dict[str, list[tuple[int, Interval]]]:
    """Per version, the verdict's interval for its share at each checkpoint of the timeline (what the chart
    shades): the same function, method and parameters as the verdict's table rows."""
    expected = {row.version: row.expected for row in verdict.rows}
    p = verdict.parameters
    versions = _versions(timeline, expected)
    return {v: [(c.n, share_interval(verdict.method, c.counts.get(v, 0), c.n, expected.get(v, 0.0), alpha=p.alpha,
                                     tolerance=p.tolerance)) for c in timeline.checkpoints] for v in versions}


def _versions(timeline: Timeline, expected: Mapping[str, float]) -> list[str]:
    versions = [v for v in expected if v in timeline.counts or expected[v] > 0]
    return versions + [v for v in timeline.counts if v not in expected]


def band_label(verdict: Verdict) -> str:
    interval = verdict.unattributed_row.interval
    if verdict.method == Method.SEQUENTIAL or interval.kind == IntervalKind.CONFIDENCE_SEQUENCE:
        return f"shaded: the table's anytime-valid {fmt.level(interval.level)} confidence sequence"
    return f"shaded: the table's {fmt.level(interval.level)} Clopper-Pearson interval at each n (pointwise)"


# Margins in inches (left, right, bottom, top): room for the tick labels, the axis labels and the title. Fixed
# margins instead of a layout engine or ``bbox_inches="tight"``, which measure every text by drawing the figure
# once more -- a third of the charts' cost.
_MARGINS_IN = (0.75, 0.2, 0.6, 0.35)
_GAP_IN = 0.45  # between stacked axes (room for the lower one's title)


def _figure(figsize: tuple[float, float], nrows: int = 1, sharex: bool = False) -> tuple[object, object]:
    """A matplotlib Figure and its axes, without pyplot: pyplot's import (its backends, the GUI machinery) costs
    about as much again as matplotlib's own, and the report only ever writes SVG."""
    from matplotlib.figure import Figure

    width, height = figsize
    left, right, bottom, top = _MARGINS_IN
    fig = Figure(figsize=figsize, dpi=100)
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        hspace=_GAP_IN * nrows / (height - bottom - top - _GAP_IN * (nrows - 1)))
    return fig, fig.subplots(nrows, 1, sharex=sharex)


def _svg(fig: object) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg")  # type: ignore[attr-defined]
    text = buf.getvalue()
    start = text.find("<svg")
    return text[start:] if start >= 0 else text


def share_chart_svg(timeline: Timeline, verdict: Verdict) -> str:
    """Cumulative share per version vs responses, with the verdict's interval (:func:`band`) and each version's
    expected share and margin."""
    points = timeline.checkpoints
    expected = {row.version: row.expected for row in verdict.rows}
    tolerance = verdict.parameters.tolerance
    bands = band(timeline, verdict)
    fig, ax = _figure((8.5, 3.6))
    versions = list(bands)
    xs = [p.n for p in points]
    for version in versions:
        colour = _colour(version, versions)
        e = expected.get(version, 0.0)
        shares = [p.counts.get(version, 0) / p.n for p in points]
        ax.plot(xs, shares, color=colour, lw=1.6, label=f"{version} observed",
                marker="o" if len(xs) == 1 else None)  # a window is one point
        ax.fill_between(xs, [iv.lo for _, iv in bands[version]], [iv.hi for _, iv in bands[version]],
                        color=colour, alpha=0.15, lw=0)
        ax.axhline(e, color=colour, ls="--", lw=1.0, label=f"{version} expected {e:.0%}")
        lo_m, hi_m = version_margins(e, tolerance)
        ax.axhspan(max(lo_m, 0), min(hi_m, 1), color=colour, alpha=0.05)
    if xs:
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
        lo = max(1, xs[0])
        ax.set_xlim(lo / 2 if xs[-1] <= lo else lo, max(xs[-1], 2, 2 * lo if xs[-1] <= lo else 0))
    ax.set_ylim(0, 1)
    ax.set_xlabel("attributed responses (log scale)")
    ax.set_ylabel("cumulative share")
    ax.set_title(f"Share over time — {band_label(verdict)}; light band: each version's margin", fontsize=9)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="upper right", ncols=2)
    return _svg(fig)


def _colour(version: str, order: list[str]) -> str:
    if version not in order:
        return "#8c959f"  # unattributed and unknown: grey
    return _PALETTE[order.index(version) % len(_PALETTE)]


def _plain_log_ticks(axis: object, subs: tuple[float, ...] = (1.0,)) -> None:
    """Label a log axis with plain numbers at ``subs`` x each decade, no minor labels (they overlap)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=subs))  # type: ignore[attr-defined]
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))  # type: ignore[attr-defined]
    axis.set_minor_formatter(NullFormatter())  # type: ignore[attr-defined]


def latency_chart_svg(timeline: Timeline, order: list[str], threshold_ms: float | None = None) -> str:
    """Per-version latency distribution (log-spaced histogram, drawn as steps); colours follow ``order``;
    ``threshold_ms``: the health judge's slow threshold, drawn as a line."""
    fig, ax = _figure((8.5, 3.0))
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
    if threshold_ms is not None:
        ax.axvline(threshold_ms, color="#cf222e", ls="--", lw=1.0, label=f"slow above {threshold_ms:.3g} ms")
    ax.set_xscale("log")
    _plain_log_ticks(ax.xaxis, subs=(1.0, 2.0, 5.0))
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("fraction of responses")
    ax.set_title("Latency distribution per version", fontsize=9)
    ax.grid(True, which="both", alpha=0.25)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return _svg(fig)
