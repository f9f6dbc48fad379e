"""The PASS margin of a version: its expected share ± the tolerance."""

from __future__ import annotations


def margins(expected: float, tolerance: float) -> tuple[float, float]:
    """expected +- tolerance, rounded so that e.g. 0.05 - 0.05 is exactly 0 (a bound at 0 is not vacuous)."""
    return round(expected - tolerance, 12), round(expected + tolerance, 12)
