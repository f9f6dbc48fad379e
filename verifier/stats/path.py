"""Where the sequential gate decides along a deterministic path -- its own arithmetic, for ``--plan`` and for the
"about N more samples" of an undecided gate.

Along the path every observed fraction is exactly ``shares`` (of the attributed responses) and
``unattributed_share`` (of all), at every step; the closed forms of :mod:`verifier.stats.mixture` are evaluated at
real-valued counts, and each criterion is located by doubling then bisection (each is monotone along a path).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from splitproof.verifier import fmt
from splitproof.verifier.expected import as_expected
from splitproof.verifier.stats.decide import TO_FAIL, TO_PASS, TO_UNATTRIBUTED
from splitproof.verifier.stats.margins import version_margins, version_prior
from splitproof.verifier.stats.mixture import (
    dm_concentration,
    inside,
    log_bf_binomial,
    log_bf_split,
    log_threshold,
    unattributed_prior,
)

MAX_PATH = 10**9


def _first(decided: Callable[[float], bool], start: int) -> int | None:
    """The first total >= start at which ``decided`` holds (None beyond MAX_PATH)."""
    lo_n = max(1, start)
    if decided(lo_n):
        return lo_n
    hi_n = lo_n * 2
    while not decided(hi_n):
        lo_n, hi_n = hi_n, hi_n * 2
        if hi_n > MAX_PATH:
            return None
    while hi_n - lo_n > 1:
        mid = (lo_n + hi_n) // 2
        lo_n, hi_n = (lo_n, mid) if decided(mid) else (mid, hi_n)
    return hi_n


def samples_on_path_why(expected: Mapping[str, float], shares: Mapping[str, float], unattributed_share: float, *,
                        alpha: float, tolerance: float, max_unattributed: float,
                        start: int = 0) -> tuple[int | None, str]:
    """(responses at which the gate decides on this path, what decides it); None when it would never decide."""
    exp = as_expected(expected)
    names = list(exp)
    probs = [exp[v] for v in names]
    fr = [float(shares.get(v, 0.0)) for v in names]
    limit = log_threshold(alpha)
    conc = dm_concentration(tolerance)
    priors = [version_prior(p, tolerance) for p in probs]
    bounds = [version_margins(p, tolerance) for p in probs]
    ua, ub = unattributed_prior(max_unattributed)
    positive = [i for i, p in enumerate(probs) if p > 0]
    u_share = unattributed_share

    def counts(total: float) -> tuple[float, list[float]]:
        n = total * (1 - u_share)
        return n, [f * n for f in fr]

    def split_fails(total: float) -> bool:
        _, x = counts(total)
        return len(positive) > 1 and log_bf_split([x[i] for i in positive], [probs[i] for i in positive],
                                                  conc) > limit

    def versions_within(total: float) -> bool:
        n, x = counts(total)
        for i in positive:
            a, b = priors[i]
            if not inside(x[i], n, a, b, bounds[i][0], bounds[i][1], limit):
                return False
        return all(fr[i] == 0 for i in range(len(probs)) if probs[i] <= 0)

    def unattributed_decided(total: float) -> bool:  # shown below or above the limit
        if max_unattributed <= 0:
            return True
        return log_bf_binomial(total * u_share, total, max_unattributed, ua, ub) > limit and \
            u_share != max_unattributed

    t_fail = _first(split_fails, start)
    t_pass = _first(versions_within, start)
    t_u = _first(unattributed_decided, start)
    u_above = u_share > max_unattributed if max_unattributed > 0 else u_share > 0
    candidates: list[tuple[int, str]] = []
    if t_fail is not None:
        candidates.append((t_fail, TO_FAIL))
    if t_u is not None and u_above:
        candidates.append((t_u, TO_UNATTRIBUTED.format(limit=fmt.share(max_unattributed))))
    if t_pass is not None and t_u is not None and not u_above:
        if t_u > t_pass:
            candidates.append((t_u, TO_UNATTRIBUTED.format(limit=fmt.share(max_unattributed))))
        else:
            candidates.append((t_pass, TO_PASS))
    if not candidates:
        return None, TO_PASS
    return min(candidates)


def samples_on_path(expected: Mapping[str, float], shares: Mapping[str, float], unattributed_share: float, *,
                    alpha: float, tolerance: float, max_unattributed: float, start: int = 0) -> int | None:
    """Responses at which the sequential gate decides if the observed fractions are exactly ``shares`` (of the
    attributed) and ``unattributed_share`` (of all) at every step. None when it would never decide."""
    return samples_on_path_why(expected, shares, unattributed_share, alpha=alpha, tolerance=tolerance,
                               max_unattributed=max_unattributed, start=start)[0]
