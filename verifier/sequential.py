"""The anytime-valid gate: look after every response and stop at the first decisive verdict.

* **FAIL** (the split differs): a mixture sequential probability ratio test -- the Dirichlet-multinomial Bayes
  factor against the expected multinomial (:mod:`verifier.mixture`) is a nonnegative martingale with mean 1 when
  the split is right, so by Ville's inequality it ever reaches 1/alpha with probability at most alpha, however
  many times one looks. A version that answers although the split gives it 0% fails at once (impossible under
  the expected split).
* **PASS**: a beta-binomial confidence sequence per version -- valid at all times simultaneously -- lies inside
  expected +- tolerance for every version (intersection-union, as in the fixed-n test: no multiplicity
  correction), and the unattributed rate's confidence sequence lies below its limit.
* **FAIL** on unattributed responses only when their confidence sequence lies entirely above the limit.

Each observation costs O(k): the log Bayes factors are updated by ratios of the predictive probabilities (no
gamma functions on the hot path). Once decided, the verdict is frozen: a crossing is a valid stop whatever the
statistic does afterwards.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping

from splitproof.verifier.expected import as_expected
from splitproof.verifier.mixture import (
    confidence_sequence,
    dm_concentration,
    inside,
    log_bf_binomial,
    log_bf_multinomial,
    log_threshold,
    share_prior,
    unattributed_prior,
)
from splitproof.verifier.stats import (
    DIFFERS,
    FAIL,
    INCONCLUSIVE,
    PASS,
    UNDECIDED,
    UNEXPECTED,
    WITHIN,
    UnattributedRow,
    Verdict,
    VersionRow,
    check_parameters,
    decide,
    margins,
)

_MAX_PATH = 10**9


def _log(x: float) -> float:
    return math.log(x) if x > 0 else -math.inf


def _exp_neg(log_bf: float) -> float:
    """Anytime-valid p-value min(1, 1/BF)."""
    if log_bf <= 0:
        return 1.0
    return math.exp(-log_bf) if log_bf < 745 else 0.0


class SequentialGate:
    """Feed every response with :meth:`observe`; read :attr:`decided` and :meth:`verdict` at any time."""

    def __init__(self, expected: Mapping[str, float], *, alpha: float = 0.01, tolerance: float = 0.05,
                 max_unattributed: float = 0.01) -> None:
        self.expected = as_expected(expected)
        check_parameters(alpha, tolerance, max_unattributed)
        self.alpha, self.tolerance, self.max_unattributed = alpha, tolerance, max_unattributed
        self._limit = log_threshold(alpha)
        self._names = list(self.expected)
        self._index = {name: i for i, name in enumerate(self._names)}
        k = len(self._names)
        self._p = [self.expected[v] for v in self._names]
        self._log_p = [_log(p) for p in self._p]
        self._concentration = dm_concentration(tolerance)
        self._a_dm = [self._concentration * p for p in self._p]
        self._a_dm_total = sum(self._a_dm)
        self._prior = [share_prior(p, tolerance) for p in self._p]
        self._ab = [a + b for a, b in self._prior]
        self._margins = [margins(p, tolerance) for p in self._p]
        # log q and log(1 - q) at each margin; None marks a vacuous margin (outside [0, 1]).
        self._lo_logs = [(_log(lo), _log(1 - lo)) if lo >= 0 else None for lo, _ in self._margins]
        self._hi_logs = [(_log(hi), _log(1 - hi)) if hi <= 1 else None for _, hi in self._margins]
        self._lbf_lo = [0.0] * k
        self._lbf_hi = [0.0] * k
        self._x = [0] * k
        self._n = 0
        self._lbf_dm = 0.0
        self._ua, self._ub = unattributed_prior(max_unattributed)
        self._log_m, self._log_1m = _log(max_unattributed), _log(1 - max_unattributed)
        self._u = 0
        self._total = 0
        self._lbf_u = 0.0
        self._unexpected: Counter[str] = Counter()
        self._decision: Verdict | None = None
        self.observed_after_decision = 0

    # ------------------------------------------------------------------------------------------- observation

    @property
    def decided(self) -> bool:
        return self._decision is not None

    @property
    def n(self) -> int:
        """Attributed responses observed (up to the decision)."""
        return self._n

    @property
    def total(self) -> int:
        return self._total

    def observe(self, version: str | None) -> None:
        """One response: its version, or None when it could not be attributed."""
        if self._decision is not None:
            self.observed_after_decision += 1
            return
        if version is None:
            self._observe_unattributed()
        else:
            i = self._index.get(version)
            if i is None or self._p[i] <= 0.0:
                self._unexpected[version] += 1
                self._count_attributed_in_total()
                if i is not None:
                    self._x[i] += 1
                    self._n += 1
                self._decision = self._build()
                return
            self._observe_version(i)
        if self._check() is not None:
            self._decision = self._build()

    def _count_attributed_in_total(self) -> None:
        if self.max_unattributed > 0:
            self._lbf_u += _log(self._ub + self._total - self._u) - math.log(self._ua + self._ub + self._total) \
                - self._log_1m
        self._total += 1

    def _observe_unattributed(self) -> None:
        if self.max_unattributed > 0:
            self._lbf_u += math.log(self._ua + self._u) - math.log(self._ua + self._ub + self._total) - self._log_m
        self._u += 1
        self._total += 1

    def _observe_version(self, i: int) -> None:
        n = self._n
        self._lbf_dm += math.log(self._a_dm[i] + self._x[i]) - math.log(self._a_dm_total + n) - self._log_p[i]
        for j in range(len(self._names)):
            a, b = self._prior[j]
            denom = math.log(self._ab[j] + n)
            lo_logs, hi_logs = self._lo_logs[j], self._hi_logs[j]
            if j == i:
                step = math.log(a + self._x[j]) - denom
                if lo_logs is not None:
                    self._lbf_lo[j] += step - lo_logs[0]
                if hi_logs is not None:
                    self._lbf_hi[j] += step - hi_logs[0]
            else:
                step = math.log(b + n - self._x[j]) - denom
                if lo_logs is not None:
                    self._lbf_lo[j] += step - lo_logs[1]
                if hi_logs is not None:
                    self._lbf_hi[j] += step - hi_logs[1]
        self._x[i] += 1
        self._n += 1
        self._count_attributed_in_total()

    # ---------------------------------------------------------------------------------------------- decision

    def _split_rejected(self) -> bool:
        return self._lbf_dm > self._limit

    def _unattributed_status(self) -> str:
        if self._total == 0:
            return UNDECIDED
        if self.max_unattributed <= 0:
            return DIFFERS if self._u > 0 else WITHIN
        share = self._u / self._total
        if self._lbf_u > self._limit:
            if share > self.max_unattributed:
                return DIFFERS
            if share < self.max_unattributed:
                return WITHIN
        return UNDECIDED

    def _version_within(self, j: int) -> bool:
        n = self._n
        if n == 0:
            return False
        center = self._x[j] / n
        lo, hi = self._margins[j]
        if self._lo_logs[j] is not None and (center <= lo or not self._lbf_lo[j] > self._limit):
            return False
        return not (self._hi_logs[j] is not None and (center >= hi or not self._lbf_hi[j] > self._limit))

    def _check(self) -> str | None:
        if self._unexpected or self._split_rejected():
            return FAIL
        unattributed = self._unattributed_status()
        if unattributed == DIFFERS:
            return FAIL
        if unattributed == WITHIN and all(self._version_within(j) for j in range(len(self._names))):
            return PASS
        return None

    def verdict(self) -> Verdict:
        """The frozen verdict once decided, else the current (INCONCLUSIVE) state."""
        return self._decision if self._decision is not None else self._build()

    def _build(self) -> Verdict:
        n, alpha = self._n, self.alpha
        rows: list[VersionRow] = []
        names = self._names + [v for v in self._unexpected if v not in self._index]
        for name in names:
            j = self._index.get(name)
            if j is None:
                x = self._unexpected[name]
                rows.append(VersionRow(name, 0.0, x, x / n if n else None, 0.0, 1.0, 0.0, 1.0, UNEXPECTED))
                continue
            x, e = self._x[j], self._p[j]
            a, b = self._prior[j]
            lo, hi = confidence_sequence(x, n, a, b, alpha)
            p_value = _exp_neg(log_bf_binomial(x, n, e, a, b)) if n else 1.0
            p_eq = self._p_equivalence(j)
            if e <= 0 and x > 0:
                status = UNEXPECTED
            elif p_value < alpha:
                status = DIFFERS
            elif self._version_within(j):
                status = WITHIN
            else:
                status = UNDECIDED
            rows.append(VersionRow(name, e, x, x / n if n else None, lo, hi, p_value, p_eq, status))
        urow = self._unattributed_row()
        gof_p = 0.0 if self._unexpected else _exp_neg(self._lbf_dm)
        positive = sum(1 for p in self._p if p > 0)
        method = (f"Dirichlet-multinomial mixture SPRT (concentration {self._concentration:g})" if positive > 1
                  else "single version")
        interval = f"{100 * (1 - alpha):g}% CS"
        outcome, reason = decide(rows, urow, bool(self._unexpected) or self._split_rejected(), gof_p,
                                 "sequential mixture test", n, self.tolerance, interval)
        if outcome == PASS and self._check() != PASS:  # statuses and the hot-path check must agree
            outcome, reason = INCONCLUSIVE, "not yet decided"
        needed = None
        if outcome == INCONCLUSIVE:
            needed = self.samples_needed()
            if needed:
                reason = f"{reason}; about {needed} more samples if the observed shares hold"
        else:
            reason = f"{reason} (decided after {self._total} responses)"
        return Verdict(
            outcome=outcome, reason=reason, rows=tuple(rows), n=n, unattributed=self._u, unattributed_row=urow,
            gof_statistic=self._lbf_dm, gof_p_value=gof_p, gof_method=method, samples_needed=needed,
            method="sequential", alpha=alpha, tolerance=self.tolerance, max_unattributed=self.max_unattributed,
            interval=f"{100 * (1 - alpha):g}% confidence sequence (beta-binomial mixture)",
            parameters={
                "alpha": alpha, "tolerance": self.tolerance, "max_unattributed": self.max_unattributed,
                "fail_test": "Dirichlet-multinomial mixture vs expected multinomial, reject at BF >= 1/alpha",
                "dirichlet_concentration": self._concentration,
                "share_priors": {name: list(self._prior[i]) for i, name in enumerate(self._names)},
                "unattributed_prior": [self._ua, self._ub],
                "pass_rule": "every version's confidence sequence inside expected +- tolerance",
                "log_bayes_factor": self._lbf_dm,
            },
        )

    def _p_equivalence(self, j: int) -> float:
        n = self._n
        if n == 0:
            return 1.0
        center = self._x[j] / n
        lo, hi = self._margins[j]
        p_lo = 0.0 if self._lo_logs[j] is None else (1.0 if center <= lo else _exp_neg(self._lbf_lo[j]))
        p_hi = 0.0 if self._hi_logs[j] is None else (1.0 if center >= hi else _exp_neg(self._lbf_hi[j]))
        return max(p_lo, p_hi)

    def _unattributed_row(self) -> UnattributedRow:
        u, total, m = self._u, self._total, self.max_unattributed
        if total == 0:
            return UnattributedRow(0, 0, None, 0.0, 1.0, m, 1.0, 1.0, UNDECIDED)
        lo, hi = confidence_sequence(u, total, self._ua, self._ub, self.alpha)
        share = u / total
        status = self._unattributed_status()
        if m <= 0:
            p_exceeds, p_within = (0.0, 1.0) if u > 0 else (1.0, 0.0)
        else:
            p = _exp_neg(self._lbf_u)
            p_exceeds = p if share > m else 1.0
            p_within = p if share < m else 1.0
        return UnattributedRow(u, total, share, lo, hi, m, p_exceeds, p_within, status)

    def samples_needed(self) -> int | None:
        """Further responses until a decision if every observed share (and the unattributed rate) holds."""
        if self._n == 0:
            shares = dict(self.expected)
        else:
            shares = {v: self._x[i] / self._n for i, v in enumerate(self._names)}
        u_share = self._u / self._total if self._total else 0.0
        target = samples_on_path(self.expected, shares, u_share, alpha=self.alpha, tolerance=self.tolerance,
                                 max_unattributed=self.max_unattributed, start=self._total)
        if target is None:
            return None
        return max(1, target - self._total)


def samples_on_path(expected: Mapping[str, float], shares: Mapping[str, float], unattributed_share: float, *,
                    alpha: float, tolerance: float, max_unattributed: float, start: int = 0) -> int | None:
    """Responses at which the sequential gate decides if the observed fractions are exactly ``shares`` (of the
    attributed) and ``unattributed_share`` (of all) at every step. None when it would never decide."""
    exp = as_expected(expected)
    names = list(exp)
    probs = [exp[v] for v in names]
    fr = [float(shares.get(v, 0.0)) for v in names]
    limit = log_threshold(alpha)
    conc = dm_concentration(tolerance)
    priors = [share_prior(p, tolerance) for p in probs]
    ua, ub = unattributed_prior(max_unattributed)
    positive = [i for i, p in enumerate(probs) if p > 0]

    def decided(total: float) -> bool:
        n = total * (1 - unattributed_share)
        u = total * unattributed_share
        x = [f * n for f in fr]
        if len(positive) > 1 and log_bf_multinomial([x[i] for i in positive], [probs[i] for i in positive],
                                                     conc) > limit:
            return True
        if max_unattributed > 0:
            lbf_u = log_bf_binomial(u, total, max_unattributed, ua, ub)
            if lbf_u > limit and unattributed_share > max_unattributed:
                return True
            u_ok = lbf_u > limit and unattributed_share < max_unattributed
        else:
            u_ok = unattributed_share == 0
        if not u_ok:
            return False
        for i, p in enumerate(probs):
            lo, hi = margins(p, tolerance)
            a, b = priors[i]
            if not inside(x[i], n, a, b, lo, hi, limit):
                return False
        return True

    lo_n = max(1, start)
    if decided(lo_n):
        return lo_n
    hi_n = lo_n * 2
    while not decided(hi_n):
        lo_n, hi_n = hi_n, hi_n * 2
        if hi_n > _MAX_PATH:
            return None
    while hi_n - lo_n > 1:
        mid = (lo_n + hi_n) // 2
        lo_n, hi_n = (lo_n, mid) if decided(mid) else (mid, hi_n)
    return hi_n
