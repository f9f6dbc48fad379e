"""Sample sizes: how many responses a verdict needs (``--plan``, and the "more samples" of an INCONCLUSIVE).

Pure arithmetic over the margins of :mod:`verifier.stats.margins` and the exact tests of
:mod:`verifier.stats.exact`; :func:`plan` validates the inputs and calls :func:`plan_sizes`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from splitproof.verifier import defaults, fmt
from splitproof.verifier.expected import Expected, as_expected
from splitproof.verifier.stats.checks import check_parameters
from splitproof.verifier.stats.decide import TO_FAIL, TO_PASS, TO_UNATTRIBUTED
from splitproof.verifier.stats.dists import chi2_ppf, ncx2_sf, norm_ppf
from splitproof.verifier.stats.margins import version_margins, version_tolerance
from splitproof.verifier.verdict import Status, UnattributedRow, VersionRow


def _z(q: float) -> float:
    return norm_ppf(q)


def n_to_detect(lam: float, df: int, alpha: float, power: float) -> int:
    """Smallest n whose chi-square test (df) rejects with ``power`` at per-sample noncentrality ``lam``."""
    if lam <= 0 or df < 1:
        return 0
    crit = chi2_ppf(1 - alpha, df)

    def short(n: float) -> float:
        return ncx2_sf(crit, df, n * lam) - power

    hi = 1.0
    while short(hi) < 0:
        hi *= 2
        if hi > 1e12:
            return 10**12
    lo = hi / 2
    while hi - lo > 0.5:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if short(mid) >= 0 else (mid, hi)
    return math.ceil(hi)


def tost_power(n: int, expected: float, tolerance: float, alpha: float, truth: float | None = None) -> float:
    """Exact probability that one version's TOST shows it inside its margin with n samples (truth = expected)."""
    from scipy import stats as sps  # 0.7 s: only --plan and live runs size a test (not a results file's verdict)

    truth = expected if truth is None else truth
    lo, hi = version_margins(expected, tolerance)
    xs = np.arange(n + 1)
    p_low = np.zeros(n + 1) if lo < 0 else sps.binom.sf(xs - 1, n, lo)
    p_high = np.zeros(n + 1) if hi > 1 else sps.binom.cdf(xs, n, hi)
    ok = np.maximum(p_low, p_high) < alpha
    return float(sps.binom.pmf(xs[ok], n, truth).sum())


def versions_power(n: int, shares: Sequence[float], tolerance: float, alpha: float) -> float:
    """Probability that every version shows equivalence: exact for two versions (the narrower margin decides),
    a union bound over the positive-share versions for more."""
    positive = [e for e in shares if e > 0]
    if len(shares) == 2 and len(positive) == 2:
        narrow = min(positive, key=lambda e: version_tolerance(e, tolerance))
        return tost_power(n, narrow, tolerance, alpha)
    return 1.0 - sum(1.0 - tost_power(n, e, tolerance, alpha) for e in positive)


@dataclass(frozen=True)
class Plan:
    """How many samples a verdict needs at the expected split (see :func:`plan`)."""

    expected: Expected
    tolerance: float
    alpha: float
    power: float
    max_unattributed: float
    n_pass: int            # fixed-n: PASS with probability >= power when the split is exactly as expected
    n_fail: int            # fixed-n: FAIL with probability >= power when a share is off by the tolerance
    n_unattributed: int    # responses to show the unattributed rate below its limit when there are none
    sequential_pass: int   # sequential: samples to PASS when every share stays exactly at its expected value

    @property
    def n(self) -> int:
        """Fixed-n sample size that serves both purposes."""
        return max(self.n_pass, self.n_fail, self.n_unattributed)

    def seconds(self, rate: float) -> float:
        return self.n / rate


def plan(expected: Mapping[str, float], tolerance: float = defaults.TOLERANCE, alpha: float = defaults.ALPHA,
         power: float = defaults.POWER, max_unattributed: float = defaults.MAX_UNATTRIBUTED) -> Plan:
    """Sample sizes for the expected split, with every version's margin min(tolerance, share / 2).

    * ``n_pass``: the smallest n from the normal approximation ``n = (z(1-alpha) + z(1-beta/2))^2 e(1-e) / m^2``
      (m the version's margin, beta split over versions for more than two) upward at which the exact TOST power
      reaches ``power``.
    * ``n_fail``: noncentral chi-square power for the least detectable misroute of one tolerance (moved between
      the two largest versions): noncentrality per sample ``tol^2 (1/p_i + 1/p_j)``.
    * ``n_unattributed``: ``log(alpha) / log(1 - limit)`` -- with no unattributed response at all.
    * ``sequential_pass``: the anytime-valid gate's confidence sequences reach the margins along the path where
      every observed share equals its expected value (typical, not a guarantee).
    """
    exp = as_expected(expected)
    check_parameters(alpha, tolerance, max_unattributed, power)
    return plan_sizes(exp, tolerance, alpha, power, max_unattributed)


def plan_sizes(exp: Expected, tolerance: float, alpha: float, power: float, max_unattributed: float) -> Plan:
    """The :class:`Plan` of validated inputs (formulas in :func:`plan`)."""
    from splitproof.verifier.stats.path import samples_on_path  # the sequential gate's arithmetic: --plan, live

    shares = list(exp.values())
    positive = [e for e in shares if e > 0]
    k_eff = 1 if len(shares) <= 2 else len(positive)
    beta = (1 - power) / k_eff
    z = _z(1 - alpha) + _z(1 - beta / 2)
    spread = max(e * (1 - e) / version_tolerance(e, tolerance) ** 2 for e in positive)
    n_pass = max(1, math.ceil(0.8 * z * z * spread))
    step = max(1, n_pass // 200)
    while versions_power(n_pass, shares, tolerance, alpha) < power:
        n_pass += step
    largest = sorted(positive, reverse=True)
    n_fail = 0
    if len(largest) >= 2:
        lam = tolerance**2 * (1 / largest[0] + 1 / largest[1])
        n_fail = n_to_detect(lam, len(largest) - 1, alpha, power)
    n_unattr = 0
    if max_unattributed > 0:
        n_unattr = math.floor(math.log(alpha) / math.log(1 - max_unattributed)) + 1
    seq = samples_on_path(exp, dict(exp), 0.0, alpha=alpha, tolerance=tolerance, max_unattributed=max_unattributed)
    return Plan(exp, tolerance, alpha, power, max_unattributed, n_pass, n_fail, n_unattr, seq or 0)


def samples_needed(rows: Sequence[VersionRow], urow: UnattributedRow, n: int, tolerance: float, alpha: float,
                   power: float) -> tuple[int | None, str]:
    """Further responses (attributed + unattributed) likely to decide if the observed shares hold, and what they
    would show (``TO_PASS``, ``TO_FAIL`` or ``TO_UNATTRIBUTED``).

    PASS route (every observed share inside its margin): ``n_i = ((z(1-alpha) + z(1-(1-power)/2)) s_i / room_i)^2``
    (both TOST sides bind when the share sits on its expected value, as in the plan);
    FAIL route (some share outside): chi-square power at the observed noncentrality. The unattributed rate needs
    the same one-sided formula against its limit.
    """
    za = _z(1 - alpha) + _z(1 - (1 - power) / 2)
    positive = [r for r in rows if r.expected > 0]
    shares = {r.version: (r.share if r.share is not None else r.expected) for r in positive}
    fail_route = math.inf  # the observed deviation, if real, shown by the goodness-of-fit test
    lam = sum((shares[r.version] - r.expected) ** 2 / r.expected for r in positive)
    if n > 0 and len(positive) > 1 and lam > 0:
        fail_route = n_to_detect(lam, len(positive) - 1, alpha, power)
    pass_route = 0.0  # every observed share inside its margin: each TOST needs its room to the margin
    for r in positive:
        share = shares[r.version]
        room = version_tolerance(r.expected, tolerance) - abs(share - r.expected)
        if room <= 1e-6:
            pass_route = math.inf
            break
        s2 = max(share * (1 - share), r.expected * (1 - r.expected), 1e-4)
        pass_route = max(pass_route, (za * math.sqrt(s2) / room) ** 2, math.log(alpha) / math.log(1 - min(room, 0.5)))
    target, what = (fail_route, TO_FAIL) if fail_route < pass_route else (pass_route, TO_PASS)
    u_share = urow.share or 0.0
    total_target = target / (1 - u_share) if u_share < 1 else target
    if urow.status == Status.UNDECIDED and urow.limit > 0:  # neither shown below nor above
        room = abs(urow.limit - u_share)
        if room <= 0:
            return None, what
        s2 = max(u_share * (1 - u_share), 1e-6)
        u_target = (za * math.sqrt(s2) / room) ** 2
        if u_share < urow.limit:
            u_target = max(u_target, math.log(alpha) / math.log(1 - room))
        if u_target > total_target:
            total_target, what = u_target, TO_UNATTRIBUTED.format(limit=fmt.share(urow.limit))
    if not math.isfinite(total_target):
        return None, what
    return max(1, math.ceil(total_target) - urow.total), what
