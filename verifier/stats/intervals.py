"""The one interval each method shows -- in the verdict table, the HTML report's band and the live views alike.

* fixed-n: the equal-tailed (1 - 2 alpha) Clopper-Pearson interval, the one the TOST decides with (a version is
  shown within its margin exactly when this interval lies inside it); pointwise, valid at the n it is computed at;
* sequential: the gate's (1 - alpha) beta-binomial confidence sequence, with the gate's prior for that version
  (:func:`verifier.stats.margins.version_prior`); valid at every n at once, so it may be watched continuously.
"""

from __future__ import annotations

from splitproof.verifier.stats.exact import clopper_pearson
from splitproof.verifier.stats.margins import version_prior
from splitproof.verifier.verdict import Interval, IntervalKind, Method


def level(method: Method, alpha: float) -> float:
    """The confidence level of the method's intervals: 1 - 2 alpha (fixed-n), 1 - alpha (sequential)."""
    return 1 - 2 * alpha if method == Method.FIXED_N else 1 - alpha


def share_interval(method: Method, x: int, n: int, expected: float, *, alpha: float, tolerance: float) -> Interval:
    """The interval for a version's share after ``x`` of ``n`` attributed responses."""
    if method == Method.FIXED_N:
        lo, hi = clopper_pearson(x, n, alpha)
        return Interval(lo, hi, level(method, alpha), IntervalKind.CLOPPER_PEARSON)
    from splitproof.verifier.stats.mixture import confidence_sequence  # sequential only: a fixed-n run needs none

    a, b = version_prior(expected, tolerance)
    lo, hi = confidence_sequence(x, n, a, b, alpha)
    return Interval(lo, hi, level(method, alpha), IntervalKind.CONFIDENCE_SEQUENCE)


def unattributed_interval(method: Method, u: int, total: int, *, alpha: float, limit: float) -> Interval:
    """The interval for the unattributed rate after ``u`` of ``total`` responses."""
    if method == Method.FIXED_N:
        lo, hi = clopper_pearson(u, total, alpha)
        return Interval(lo, hi, level(method, alpha), IntervalKind.CLOPPER_PEARSON)
    from splitproof.verifier.stats.mixture import confidence_sequence, unattributed_prior  # sequential only

    a, b = unattributed_prior(limit)
    lo, hi = confidence_sequence(u, total, a, b, alpha)
    return Interval(lo, hi, level(method, alpha), IntervalKind.CONFIDENCE_SEQUENCE)
