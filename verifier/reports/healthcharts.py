"""The HTML report's health charts (matplotlib, inline SVG like :mod:`verifier.reports.charts`): each version's
cumulative error rate over the responses, and per canary the difference canary - production with its anytime-valid
confidence sequence (:func:`verifier.health.difference.sequence_bound`: valid along the whole curve at once) against
the FAIL margin (the lower end above it: FAIL) and the PASS margin (the upper end below it: within)."""

from __future__ import annotations

from collections.abc import Sequence

from splitproof.verifier.health.responses import ErrorPoint
from splitproof.verifier.reports.charts import _colour, _figure, _plain_log_ticks, _svg


def error_chart_svg(points: Sequence[ErrorPoint], versions: list[str], baseline: str, *, fail_margin: float,
                    max_increase: float) -> str:
    fig, (top, bottom) = _figure((8.5, 5.2), nrows=2, sharex=True)
    xs = [p.n for p in points]
    for version in versions:
        ys = [p.rates.get(version) for p in points]
        if any(y is not None for y in ys):
            top.plot(xs, [float("nan") if y is None else y for y in ys], color=_colour(version, versions), lw=1.6,
                     label=f"{version} error rate")
    top.set_ylabel("cumulative error rate")
    top.grid(True, which="both", alpha=0.25)
    if top.get_legend_handles_labels()[0]:
        top.legend(fontsize=8, loc="upper right")
    top.set_title("Errors over time — shaded: the difference's anytime-valid confidence sequence", fontsize=9)
    for canary in [v for v in versions if v != baseline]:
        colour = _colour(canary, versions)
        ok = [(p.n, p.rates.get(canary), p.rates.get(baseline), p.bounds.get(canary)) for p in points]
        ok = [o for o in ok if o[1] is not None and o[2] is not None and o[3] is not None]
        if not ok:
            continue
        bx = [o[0] for o in ok]
        bottom.plot(bx, [o[1] - o[2] for o in ok], color=colour, lw=1.6, label=f"{canary} − {baseline}")
        bottom.fill_between(bx, [o[3][0] for o in ok], [o[3][1] for o in ok], color=colour, alpha=0.18, lw=0)
    bottom.axhline(fail_margin, color="#cf222e", ls="--", lw=1.0, label=f"FAIL margin {100 * fail_margin:+g} pp")
    bottom.axhline(max_increase, color="#1a7f37", ls="--", lw=1.0,
                   label=f"PASS margin {100 * max_increase:+g} pp")
    bottom.set_ylabel("difference in error rate")
    bottom.set_xlabel("responses compared (log scale)")
    bottom.grid(True, which="both", alpha=0.25)
    bottom.legend(fontsize=8, loc="upper right")
    if xs:
        bottom.set_xscale("log")
        _plain_log_ticks(bottom.xaxis)
        bottom.set_xlim(max(1, xs[0]), max(xs[-1], 2))
    return _svg(fig)
