"""How numbers read in every output -- the table, reasons, JSON-free reports, the HTML page, the Locust console --
defined once each. Inputs are fractions (the API's unit); the texts are percents and percentage points.

Use as ``from splitproof.verifier import fmt`` and ``fmt.pct(0.2)``.
"""

from __future__ import annotations

import math

MISSING = "n/a"


def _missing(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def pct(x: float | None, digits: int = 1, missing: str = MISSING) -> str:
    """An observed share or rate: ``pct(0.2034) == "20.3%"``; ``missing`` for None/NaN."""
    return missing if _missing(x) else f"{100 * x:.{digits}f}%"  # type: ignore[operator]


def share(x: float) -> str:
    """An expected share or a limit as written: 20%, 2.5%, 0.5% (never rounded to a different number)."""
    return f"{round(100 * x, 4):g}%"


def expected(x: float) -> str:
    """An expected share in a table column: ``20%`` for whole percents, else two decimals (``2.50%``)."""
    return pct(x, 0) if abs(100 * x - round(100 * x)) < 1e-9 else pct(x, 2)


def pp(x: float) -> str:
    """A tolerance or margin in percentage points: ``pp(0.05) == "5 pp"``."""
    return f"{round(100 * x, 4):g} pp"


def plus_pp(x: float) -> str:
    """A health margin: ``plus_pp(0.01) == "+1 pp"``."""
    return f"+{100 * x:g} pp"


def signed_pp(x: float) -> str:
    """A bound or a difference in percentage points, three significant digits: +4.3 pp, +0.998 pp, -12.5 pp."""
    value = 100 * x
    return "+0 pp" if abs(value) < 5e-4 else f"{value:+.3g} pp"


def rate(x: float | None) -> str:
    """An error or slow rate: 4.3% / 0.0% / 0.35% (two decimals below 1%, so 0.4% vs 0.5% does not read equal)."""
    if x is None:
        return MISSING
    return f"{100 * x:.2f}%" if 0 < abs(x) < 0.01 else f"{100 * x:.1f}%"


def interval(lo: float, hi: float, digits: int = 1) -> str:
    """``18.2–21.9%``: an interval of shares."""
    return f"{100 * lo:.{digits}f}–{100 * hi:.{digits}f}%"


def pvalue(p: float | None) -> str:
    """Two significant digits, so that 0.0099 is not shown as 0.01 next to alpha = 0.01."""
    if _missing(p):
        return "–"
    assert p is not None
    if p >= 0.999:
        return "1"
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def level(confidence: float) -> str:
    """A confidence level with the digits it needs: 0.99 -> ``99%``, 0.999 -> ``99.9%``, 0.98 -> ``98%``."""
    value = 100 * confidence
    for digits in range(0, 5):
        text = f"{value:.{digits}f}"
        if abs(float(text) - value) < 1e-9:
            return f"{text}%"
    return f"{value:.4f}%"


def plural(count: int, word: str, words: str | None = None) -> str:
    """``1 response``, ``2 responses`` (``words``: an irregular plural)."""
    return f"{count} {word if count == 1 else words or word + 's'}"


def ms(x: float | None) -> str:
    """A latency in milliseconds, ``–`` when unknown or unbounded."""
    return "–" if x is None or math.isinf(x) else f"{x:.2f}"
