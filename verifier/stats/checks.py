"""Validation of a judge's inputs: every bad parameter or count is an InputError with a one-line reason."""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Integral

from splitproof.verifier.errors import InputError


def check_parameters(alpha: float, tolerance: float, max_unattributed: float, power: float | None = None) -> None:
    if not (isinstance(alpha, int | float) and 0.0 < alpha < 0.5):
        raise InputError(f"alpha must be between 0 and 0.5, got {alpha!r}")
    if not (isinstance(tolerance, int | float) and 0.0 < tolerance < 1.0):
        raise InputError(f"tolerance must be between 0 and 1 (a fraction; 0.05 = 5 points), got {tolerance!r}")
    if not (isinstance(max_unattributed, int | float) and 0.0 <= max_unattributed < 1.0):
        raise InputError(f"max_unattributed must be a fraction from 0 to below 1, got {max_unattributed!r}")
    if power is not None and not (isinstance(power, int | float) and 0.0 < power < 1.0):
        raise InputError(f"power must be between 0 and 1, got {power!r}")


def _count(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool) and int(value) >= 0


def check_counts(counts: Mapping[str, int], unattributed: int) -> dict[str, int]:
    """{version: count} as plain ints; every count (and ``unattributed``) a non-negative integer."""
    out: dict[str, int] = {}
    for name, value in counts.items():
        if not _count(value):
            raise InputError(f"count for {name!r} must be a non-negative integer, got {value!r}")
        out[str(name)] = int(value)
    if not _count(unattributed):
        raise InputError(f"unattributed must be a non-negative integer, got {unattributed!r}")
    return out
