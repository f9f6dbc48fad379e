"""The fixed-n verdict: goodness of fit, per-version equivalence (TOST) and the unattributed limit.

Method (documented for users in README "verify-split: the gate"):

* **FAIL** when the counts are shown to differ from the expected split -- the exact binomial test for two
  versions, the exact multinomial test for three or more (:mod:`verifier.exact`; at any n: the chi-square
  approximation overshoots alpha) -- at ``alpha``; or when a version with 0% expected (or not in the split at all)
  answered; or when the unattributed rate is shown above ``max_unattributed`` (exact one-sided binomial test).
* **PASS** when not FAIL and every version's share is shown within expected ± ``tolerance``: two one-sided exact
  binomial tests (TOST) per version, each at ``alpha``, i.e. its (1 - 2 alpha) Clopper-Pearson interval lies
  inside the margin; and the unattributed rate is shown below its limit. PASS needs *every* version's test to
  reject -- an intersection-union test, whose level is the largest of the component levels, so no multiplicity
  correction is needed: if any one version is really outside its margin, a PASS needs that version's own
  level-alpha test to (wrongly) reject.
* **INCONCLUSIVE** otherwise, with the number of further samples that would decide with probability ``power``
  if the observed shares hold (the :func:`plan` formulas).

Shares are of *attributed* responses; unattributed ones (errors, unexpected item counts) are judged separately
against their own limit and never folded into a version.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as sps

from splitproof.verifier.exact import (  # noqa: F401  (re-exported: the fixed-n building blocks)
    MONTE_CARLO_DRAWS,
    binomial_p_value,
    clopper_pearson,
    equivalence_p_value,
    exact_multinomial_p_value,
    goodness_of_fit,
    p_at_least,
    p_at_most,
    tost_p_value,
)
from splitproof.verifier.expected import Expected, InputError, as_expected
from splitproof.verifier.margins import margins

PASS = "PASS"
FAIL = "FAIL"
INCONCLUSIVE = "INCONCLUSIVE"
EXIT_CODES: dict[str, int] = {PASS: 0, FAIL: 1, INCONCLUSIVE: 3}

# Per-version status in a verdict's rows.
WITHIN = "within"          # shown within expected +- tolerance
DIFFERS = "differs"        # shown different from expected (p < alpha)
UNDECIDED = "undecided"    # neither yet
UNEXPECTED = "unexpected"  # answered although the split gives it 0%


@dataclass(frozen=True)
class VersionRow:
    version: str
    expected: float        # fraction
    count: int
    share: float | None    # count / attributed; None when nothing was attributed
    lo: float              # interval for the share (see Verdict.interval)
    hi: float
    p_value: float         # H0: share == expected (two-sided; anytime-valid in sequential mode)
    p_equivalence: float   # H0: |share - expected| >= tolerance; small means shown within the margin
    status: str            # WITHIN | DIFFERS | UNDECIDED | UNEXPECTED


@dataclass(frozen=True)
class UnattributedRow:
    count: int
    total: int
    share: float | None
    lo: float
    hi: float
    limit: float
    p_exceeds: float  # H0: rate <= limit; small means shown above the limit (FAIL)
    p_within: float   # H0: rate >= limit; small means shown below the limit (needed for PASS)
    status: str = UNDECIDED  # WITHIN (shown below the limit) | DIFFERS (shown above) | UNDECIDED


@dataclass(frozen=True)
class Verdict:
    outcome: str                      # PASS | FAIL | INCONCLUSIVE
    reason: str                       # one line
    rows: tuple[VersionRow, ...]
    n: int                            # attributed responses
    unattributed: int
    unattributed_row: UnattributedRow
    gof_statistic: float | None
    gof_p_value: float
    gof_method: str
    samples_needed: int | None        # further samples (all responses) likely to decide; INCONCLUSIVE only
    method: str                       # "fixed-n" | "sequential"
    alpha: float
    tolerance: float
    max_unattributed: float
    interval: str                     # what lo/hi are, e.g. "98% Clopper-Pearson interval"
    parameters: Mapping[str, Any] = field(default_factory=dict)
    unattributed_causes: Mapping[str, int] = field(default_factory=dict)  # filled by the CLI: status -> count
    notes: tuple[str, ...] = ()       # warnings to show with the verdict (bad input lines, target hints)

    @property
    def total(self) -> int:
        return self.n + self.unattributed

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    @property
    def decided(self) -> bool:
        return self.outcome != INCONCLUSIVE

    def row(self, version: str) -> VersionRow:
        for row in self.rows:
            if row.version == version:
                return row
        raise KeyError(version)


# ----------------------------------------------------------------------------------------------- validation


def check_parameters(alpha: float, tolerance: float, max_unattributed: float, power: float | None = None) -> None:
    if not (isinstance(alpha, int | float) and 0.0 < alpha < 0.5):
        raise InputError(f"alpha must be between 0 and 0.5, got {alpha!r}")
    if not (isinstance(tolerance, int | float) and 0.0 < tolerance < 1.0):
        raise InputError(f"tolerance must be between 0 and 1 (a fraction; 0.05 = 5 points), got {tolerance!r}")
    if not (isinstance(max_unattributed, int | float) and 0.0 <= max_unattributed < 1.0):
        raise InputError(f"max_unattributed must be a fraction from 0 to below 1, got {max_unattributed!r}")
    if power is not None and not (isinstance(power, int | float) and 0.0 < power < 1.0):
        raise InputError(f"power must be between 0 and 1, got {power!r}")


def check_counts(counts: Mapping[str, int], unattributed: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise InputError(f"count for {name!r} must be a non-negative integer, got {value!r}")
        out[str(name)] = int(value)
    if isinstance(unattributed, bool) or not isinstance(unattributed, int | np.integer) or unattributed < 0:
        raise InputError(f"unattributed must be a non-negative integer, got {unattributed!r}")
    return out


# ----------------------------------------------------------------------------------------------------- formatting


def pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def fmt_p(p: float) -> str:
    """Two significant digits, so that 0.0099 is not shown as 0.01 next to alpha = 0.01."""
    if p >= 0.999:
        return "1"
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def pp(tolerance: float) -> str:
    value = 100 * tolerance
    return f"{value:g} pp"


# --------------------------------------------------------------------------------------------------------- judge


def judge(counts: Mapping[str, int], unattributed: int, expected: Mapping[str, float], *, alpha: float = 0.01,
          tolerance: float = 0.05, max_unattributed: float = 0.01, power: float = 0.9) -> Verdict:
    """Fixed-n verdict for per-version counts plus unattributed responses against the expected split.

    Use it when the number of responses was not chosen by looking at the results (a load test of fixed length).
    Versions in ``counts`` that are not in ``expected`` are treated as expected at 0%.
    """
    exp = as_expected(expected)
    check_parameters(alpha, tolerance, max_unattributed, power)
    clean = check_counts(counts, unattributed)
    versions = list(exp) + [v for v in clean if v not in exp]
    x = np.array([clean.get(v, 0) for v in versions], dtype=np.int64)
    p = np.array([exp.get(v, 0.0) for v in versions], dtype=float)
    n = int(x.sum())
    statistic, gof_p, gof_method = goodness_of_fit(x, p)

    rows = []
    for version, xi, ei in zip(versions, x.tolist(), p.tolist(), strict=True):
        lo, hi = clopper_pearson(xi, n, alpha)
        p_value = binomial_p_value(xi, n, ei)
        p_eq = tost_p_value(xi, n, ei, tolerance)
        rows.append(VersionRow(version, ei, xi, xi / n if n else None, lo, hi, p_value, p_eq,
                               _status(xi, ei, p_value, p_eq, alpha)))
    urow = unattributed_fixed(int(unattributed), n + int(unattributed), max_unattributed, alpha)
    outcome, reason = decide(rows, urow, gof_p < alpha, gof_p, gof_method, n, tolerance,
                             f"{100 * (1 - 2 * alpha):g}% CI")
    needed = None
    if outcome == INCONCLUSIVE:
        needed = fixed_samples_needed(rows, urow, n, tolerance, alpha, power)
        reason = f"{reason}; about {needed} more samples needed" if needed else reason
    level = 100 * (1 - 2 * alpha)
    return Verdict(
        outcome=outcome, reason=reason, rows=tuple(rows), n=n, unattributed=int(unattributed), unattributed_row=urow,
        gof_statistic=statistic, gof_p_value=gof_p, gof_method=gof_method, samples_needed=needed, method="fixed-n",
        alpha=alpha, tolerance=tolerance, max_unattributed=max_unattributed,
        interval=f"{level:g}% Clopper-Pearson interval",
        parameters={"alpha": alpha, "tolerance": tolerance, "max_unattributed": max_unattributed, "power": power,
                    "equivalence": "exact binomial TOST per version (intersection-union)",
                    "unattributed_test": "exact one-sided binomial"},
    )


def _status(x: int, expected: float, p_value: float, p_eq: float, alpha: float) -> str:
    if expected <= 0.0 and x > 0:
        return UNEXPECTED
    if p_value < alpha:
        return DIFFERS
    if p_eq < alpha:
        return WITHIN
    return UNDECIDED


def unattributed_fixed(u: int, total: int, limit: float, alpha: float) -> UnattributedRow:
    lo, hi = clopper_pearson(u, total, alpha)
    if total == 0:
        return UnattributedRow(0, 0, None, lo, hi, limit, 1.0, 1.0, UNDECIDED)
    if limit <= 0.0:  # no unattributed response tolerated: one is proof enough, none is all one can show
        p_exceeds = 0.0 if u > 0 else 1.0
        p_within = 0.0 if u == 0 else 1.0
    else:
        p_exceeds = p_at_least(u, total, limit)
        p_within = p_at_most(u, total, limit)
    status = DIFFERS if p_exceeds < alpha else WITHIN if p_within < alpha else UNDECIDED
    return UnattributedRow(u, total, u / total, lo, hi, limit, p_exceeds, p_within, status)


def _gap(row: VersionRow) -> tuple[float, float]:
    """Largest gap first; on a tie (two versions) name the smaller one -- usually the canary."""
    return round(abs((row.share or 0.0) - row.expected), 12), -row.expected


def decide(rows: list[VersionRow], urow: UnattributedRow, gof_reject: bool, gof_p: float, gof_method: str, n: int,
           tolerance: float, interval_name: str) -> tuple[str, str]:
    """Outcome and one-line reason from the rows' statuses, shared by the fixed-n and the sequential verdicts."""
    failures: list[str] = []
    unexpected = [r for r in rows if r.status == UNEXPECTED]
    if unexpected:
        failures.append(", ".join(f"{r.count} responses from {r.version!r}, which the split gives 0%"
                                  for r in unexpected))
    elif gof_reject:
        worst = max(rows, key=_gap)
        text = (f"split differs from expected: {worst.version} got {pct(worst.share)} "
                f"({interval_name} {pct(worst.lo)}-{pct(worst.hi)}), expected {pct(worst.expected, 0)} "
                f"({gof_method} p = {fmt_p(gof_p)})")
        positive = [r for r in rows if r.expected > 0]
        if len(positive) > 1 and n >= 10 and sum(1 for r in rows if r.count > 0) == 1:
            only = next(r.version for r in rows if r.count > 0)
            text += (f"; every response came from {only}: is the target a pod or a port-forward that bypasses "
                     "the split?")
        failures.append(text)
    if urow.status == DIFFERS:
        failures.append(f"unattributed responses {pct(urow.share)} ({urow.count} of {urow.total}) exceed the "
                        f"{pct(urow.limit, 0)} limit (p = {fmt_p(urow.p_exceeds)})")
    if failures:
        return FAIL, "; ".join(failures)
    if n == 0:
        return INCONCLUSIVE, "no attributed responses yet"
    pending = [r for r in rows if r.status != WITHIN]
    if not pending and urow.status == WITHIN:
        worst = max(rows, key=_gap)
        return PASS, (f"every version within ±{pp(tolerance)} of its expected share (largest gap: {worst.version} "
                      f"{pct(worst.share)} vs {pct(worst.expected, 0)}, {interval_name} {pct(worst.lo)}-"
                      f"{pct(worst.hi)}); unattributed {pct(urow.share)} below the {pct(urow.limit, 0)} limit")
    parts = []
    if pending:
        parts.append("not yet shown within ±" + pp(tolerance) + ": " + ", ".join(
            f"{r.version} {pct(r.share)} ({interval_name} {pct(r.lo)}-{pct(r.hi)}, expected {pct(r.expected, 0)})"
            for r in pending))
    if urow.status != WITHIN:
        parts.append(f"unattributed {pct(urow.share)} not yet shown below {pct(urow.limit, 0)}")
    return INCONCLUSIVE, "; ".join(parts)


# ----------------------------------------------------------------------------------------------- sample sizes


def _z(q: float) -> float:
    return float(sps.norm.ppf(q))


def _n_to_detect(lam: float, df: int, alpha: float, power: float) -> int:
    """Smallest n whose chi-square test (df) rejects with ``power`` at per-sample noncentrality ``lam``."""
    if lam <= 0 or df < 1:
        return 0
    crit = float(sps.chi2.ppf(1 - alpha, df))

    def short(n: float) -> float:
        return float(sps.ncx2.sf(crit, df, n * lam)) - power

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


def _tost_power(n: int, expected: float, tolerance: float, alpha: float, truth: float | None = None) -> float:
    """Exact probability that the TOST of one version shows equivalence with n samples (truth = expected)."""
    truth = expected if truth is None else truth
    lo, hi = margins(expected, tolerance)
    xs = np.arange(n + 1)
    p_low = np.zeros(n + 1) if lo < 0 else sps.binom.sf(xs - 1, n, lo)
    p_high = np.zeros(n + 1) if hi > 1 else sps.binom.cdf(xs, n, hi)
    ok = np.maximum(p_low, p_high) < alpha
    return float(sps.binom.pmf(xs[ok], n, truth).sum())


def _versions_power(n: int, shares: list[float], tolerance: float, alpha: float) -> float:
    """Probability that every version shows equivalence (union bound over versions; exact for two)."""
    if len(shares) == 2:
        return _tost_power(n, shares[0], tolerance, alpha)
    return 1.0 - sum(1.0 - _tost_power(n, e, tolerance, alpha) for e in shares)


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


def plan(expected: Mapping[str, float], tolerance: float = 0.05, alpha: float = 0.01, power: float = 0.9,
         max_unattributed: float = 0.01) -> Plan:
    """Sample sizes for the expected split.

    * ``n_pass``: the smallest n from the normal approximation ``n = (z(1-alpha) + z(1-beta/2))^2 e(1-e) / tol^2``
      (beta split over versions for more than two) upward at which the exact TOST power reaches ``power``.
    * ``n_fail``: noncentral chi-square power for the least detectable misroute of one tolerance (moved between
      the two largest versions): noncentrality per sample ``tol^2 (1/p_i + 1/p_j)``.
    * ``n_unattributed``: ``log(alpha) / log(1 - limit)`` -- with no unattributed response at all.
    * ``sequential_pass``: the anytime-valid gate's confidence sequences reach the margins along the path where
      every observed share equals its expected value (typical, not a guarantee).
    """
    exp = as_expected(expected)
    check_parameters(alpha, tolerance, max_unattributed, power)
    shares = list(exp.values())
    k_eff = 1 if len(shares) <= 2 else len(shares)
    beta = (1 - power) / k_eff
    z = _z(1 - alpha) + _z(1 - beta / 2)
    sigma2 = max(e * (1 - e) for e in shares)
    n_pass = max(1, math.ceil(0.8 * z * z * sigma2 / tolerance**2))
    step = max(1, n_pass // 200)
    while _versions_power(n_pass, shares, tolerance, alpha) < power:
        n_pass += step
    positive = sorted((e for e in shares if e > 0), reverse=True)
    n_fail = 0
    if len(positive) >= 2:
        lam = tolerance**2 * (1 / positive[0] + 1 / positive[1])
        n_fail = _n_to_detect(lam, len(positive) - 1, alpha, power)
    n_unattr = 0
    if max_unattributed > 0:
        n_unattr = math.floor(math.log(alpha) / math.log(1 - max_unattributed)) + 1
    from splitproof.verifier.sequential import samples_on_path  # the sequential gate's own arithmetic

    seq = samples_on_path(exp, dict(exp), 0.0, alpha=alpha, tolerance=tolerance, max_unattributed=max_unattributed)
    return Plan(exp, tolerance, alpha, power, max_unattributed, n_pass, n_fail, n_unattr, seq or 0)


def fixed_samples_needed(rows: list[VersionRow], urow: UnattributedRow, n: int, tolerance: float, alpha: float,
                         power: float) -> int | None:
    """Further responses (attributed + unattributed) likely to decide if the observed shares hold.

    PASS route (every observed share inside its margin): ``n_i = ((z(1-alpha) + z(1-(1-power)/2)) s_i / room_i)^2``
    (both TOST sides bind when the share sits on its expected value, as in :func:`plan`);
    FAIL route (some share outside): chi-square power at the observed noncentrality. The unattributed rate needs
    the same one-sided formula against its limit.
    """
    za = _z(1 - alpha) + _z(1 - (1 - power) / 2)
    shares = {r.version: (r.share if r.share is not None else r.expected) for r in rows}
    gaps = {r.version: abs(shares[r.version] - r.expected) for r in rows}
    fail_route = math.inf  # the observed deviation, if real, shown by the goodness-of-fit test
    positive = [r for r in rows if r.expected > 0]
    lam = sum((shares[r.version] - r.expected) ** 2 / r.expected for r in positive)
    if n > 0 and len(positive) > 1 and lam > 0:
        fail_route = _n_to_detect(lam, len(positive) - 1, alpha, power)
    pass_route = 0.0  # every observed share inside its margin: each TOST needs its room to the margin
    for r in rows:
        room = tolerance - gaps[r.version]
        if room <= 1e-6:
            pass_route = math.inf
            break
        s2 = max(shares[r.version] * (1 - shares[r.version]), r.expected * (1 - r.expected), 1e-4)
        pass_route = max(pass_route, (za * math.sqrt(s2) / room) ** 2, math.log(alpha) / math.log(1 - min(room, 0.5)))
    target = min(fail_route, pass_route)
    total_target = target
    u_share = urow.share or 0.0
    if u_share < 1:
        total_target = target / (1 - u_share)
    if urow.status == UNDECIDED and urow.limit > 0:
        room = abs(urow.limit - u_share)
        if room <= 0:
            return None
        s2 = max(u_share * (1 - u_share), 1e-6)
        u_target = (za * math.sqrt(s2) / room) ** 2
        if u_share < urow.limit:
            u_target = max(u_target, math.log(alpha) / math.log(1 - room))
        total_target = max(total_target, u_target)
    if not math.isfinite(total_target):
        return None
    return max(1, math.ceil(total_target) - urow.total)
