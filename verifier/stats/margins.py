"""Each version's PASS margin: expected share ± min(tolerance, half the expected share).

A PASS claims every version receives its share to within its margin. With a fixed margin of ±5 pp a 1% or 3%
canary that receives *nothing* sits inside its margin, so "no traffic at all" could PASS. The margin therefore
shrinks to half the expected share for versions whose share is below twice the tolerance: a PASS always shows
that each version receives at least half its share (a dead canary can never PASS, whatever the tolerance), and a
1% canary is shown between 0.5% and 1.5%. Shares of 2 x tolerance and more (10% and more at ±5 pp) keep the full
tolerance. The fixed-n judge, the sequential gate, their simulation, ``--plan`` and the Locust live gate all take
their margins from :func:`version_margins`.

A version the split gives 0% has no margin: any response from it is a FAIL, none at all is all it can show.
"""

from __future__ import annotations

SHARE_FRACTION = 0.5  # a positive-share version's margin is at most this fraction of its expected share


def margins(expected: float, tolerance: float) -> tuple[float, float]:
    """expected +- tolerance, rounded so that e.g. 0.05 - 0.05 is exactly 0 (a bound at 0 is not vacuous)."""
    return round(expected - tolerance, 12), round(expected + tolerance, 12)


def version_tolerance(expected: float, tolerance: float) -> float:
    """The half-width of one version's margin: ``min(tolerance, expected / 2)``; 0 for a 0% version."""
    if expected <= 0.0:
        return 0.0
    return min(tolerance, round(SHARE_FRACTION * expected, 12))


def version_margins(expected: float, tolerance: float) -> tuple[float, float]:
    """The interval a version's share must be shown inside for a PASS."""
    return margins(expected, version_tolerance(expected, tolerance))


def version_prior(expected: float, tolerance: float) -> tuple[float, float]:
    """The beta prior of a version's confidence sequence, scaled to its margin
    (:func:`verifier.stats.mixture.share_prior`)."""
    from splitproof.verifier.stats.mixture import share_prior  # scipy: not needed to check a command line

    return share_prior(expected, version_tolerance(expected, tolerance) or tolerance)
