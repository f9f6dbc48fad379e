"""The fixed-n verdict: goodness of fit, per-version equivalence (TOST) and the unattributed limit.

Method (documented for users in README "verify-split: the gate"):

* **FAIL** when the counts are shown to differ from the expected split -- the exact binomial test for two
  versions, the exact multinomial test for three or more (:mod:`verifier.stats.exact`; at any n: the chi-square
  approximation overshoots alpha) -- at ``alpha``; or when a version with 0% expected (or not in the split at all)
  answered; or when the unattributed rate is shown above ``max_unattributed`` (exact one-sided binomial test).
* **PASS** when not FAIL and every version's share is shown inside its margin, expected ± min(``tolerance``,
  half its expected share) (:mod:`verifier.stats.margins`: a dead small canary can never PASS): two one-sided exact
  binomial tests (TOST) per version, each at ``alpha``, i.e. its (1 - 2 alpha) Clopper-Pearson interval lies
  inside the margin; and the unattributed rate is shown below its limit. PASS needs *every* version's test to
  reject -- an intersection-union test, whose level is the largest of the component levels, so no multiplicity
  correction is needed: if any one version is really outside its margin, a PASS needs that version's own
  level-alpha test to (wrongly) reject. A version's own two-sided p-value is reported, not a decision: the one
  FAIL test of the split is the goodness of fit (testing every version at alpha would inflate false FAILs).
* **INCONCLUSIVE** otherwise, with the number of further samples that would decide with probability ``power``
  if the observed shares hold (:mod:`verifier.stats.planning`), and what they would show.

Shares are of *attributed* responses; unattributed ones (errors, unexpected item counts) are judged separately
against their own limit and never folded into a version.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from splitproof.verifier import defaults, fmt
from splitproof.verifier.expected import as_expected
from splitproof.verifier.stats.checks import check_counts, check_parameters
from splitproof.verifier.stats.decide import decide, row_status
from splitproof.verifier.stats.exact import (
    binomial_p_value,
    equivalence_p_value,
    goodness_of_fit,
    p_at_least,
    p_at_most,
)
from splitproof.verifier.stats.intervals import share_interval, unattributed_interval
from splitproof.verifier.stats.margins import version_margins, version_tolerance
from splitproof.verifier.stats.planning import samples_needed
from splitproof.verifier.verdict import Method, Outcome, Parameters, Status, UnattributedRow, Verdict, VersionRow

METHOD_DETAILS = {"equivalence": "exact binomial TOST per version (intersection-union)",
                  "unattributed_test": "exact one-sided binomial"}


def judge(counts: Mapping[str, int], unattributed: int, expected: Mapping[str, float], *,
          alpha: float = defaults.ALPHA, tolerance: float = defaults.TOLERANCE,
          max_unattributed: float = defaults.MAX_UNATTRIBUTED, power: float = defaults.POWER) -> Verdict:
    """Fixed-n verdict for per-version counts plus unattributed responses against the expected split.

    Use it when the number of responses was not chosen by looking at the results (a load test of fixed length).
    Versions in ``counts`` that are not in ``expected`` are treated as expected at 0%. Fractions throughout.
    """
    exp = as_expected(expected)
    check_parameters(alpha, tolerance, max_unattributed, power)
    clean = check_counts(counts, unattributed)
    versions = list(exp) + [v for v in clean if v not in exp]
    x = np.array([clean.get(v, 0) for v in versions], dtype=np.int64)
    p = np.array([exp.get(v, 0.0) for v in versions], dtype=float)
    n = int(x.sum())
    _, gof_p, gof_method = goodness_of_fit(x, p)
    split_rejected = gof_p < alpha

    rows = []
    for version, xi, ei in zip(versions, x.tolist(), p.tolist(), strict=True):
        p_value = binomial_p_value(xi, n, ei)
        if ei <= 0:  # no margin: silent is all a 0% version can show, one response fails the run
            p_eq = 1.0 if n == 0 or xi > 0 else 0.0
        else:
            p_eq = equivalence_p_value(xi, n, *version_margins(ei, tolerance))
        rows.append(VersionRow(version, ei, xi, xi / n if n else None,
                               share_interval(Method.FIXED_N, xi, n, ei, alpha=alpha, tolerance=tolerance),
                               p_value, p_eq, row_status(xi, ei, p_value < alpha, p_eq < alpha, split_rejected),
                               version_tolerance(ei, tolerance)))
    urow = unattributed_fixed(int(unattributed), n + int(unattributed), max_unattributed, alpha)
    outcome, reason = decide(rows, urow, split_rejected, gof_p, gof_method, n, tolerance)
    needed = None
    if outcome == Outcome.INCONCLUSIVE:
        needed, what = samples_needed(rows, urow, n, tolerance, alpha, power)
        if needed:
            reason = f"{reason}; about {fmt.plural(needed, 'more sample')} needed {what}"
    return Verdict(
        outcome=outcome, reason=reason, method=Method.FIXED_N, rows=tuple(rows), unattributed_row=urow, n=n,
        unattributed=int(unattributed), gof_method=gof_method, gof_p_value=gof_p, log_e_value=None,
        samples_needed=needed,
        parameters=Parameters(alpha, tolerance, max_unattributed, power,
                              {r.version: r.margin for r in rows if r.expected > 0}),
        method_details=METHOD_DETAILS,
    )


def unattributed_fixed(u: int, total: int, limit: float, alpha: float) -> UnattributedRow:
    """The unattributed rate against its limit: exact one-sided binomial tests both ways."""
    interval = unattributed_interval(Method.FIXED_N, u, total, alpha=alpha, limit=limit)
    if total == 0:
        return UnattributedRow(0, 0, None, interval, limit, 1.0, 1.0, Status.UNDECIDED)
    if limit <= 0.0:  # no unattributed response tolerated: one is proof enough, none is all one can show
        p_exceeds = 0.0 if u > 0 else 1.0
        p_within = 0.0 if u == 0 else 1.0
    else:
        p_exceeds = p_at_least(u, total, limit)
        p_within = p_at_most(u, total, limit)
    status = Status.DIFFERS if p_exceeds < alpha else Status.WITHIN if p_within < alpha else Status.UNDECIDED
    return UnattributedRow(u, total, u / total, interval, limit, p_exceeds, p_within, status)
