"""The anytime-valid gate: look after every response (or every batch) and stop at the first PASS or FAIL.

* **FAIL** (the split differs): the split test's e-value -- the average of two Dirichlet-multinomial Bayes factors
  against the expected multinomial, one with a prior a tolerance wide around the expected split, one the
  Krichevsky-Trofimov plug-in bettor (:mod:`verifier.stats.mixture`) -- is a nonnegative martingale with mean 1 when
  the split is right, so by Ville's inequality it ever reaches 1/alpha with probability at most alpha, however
  many times one looks. A version that answers although the split gives it 0% fails at once (impossible under
  the expected split).
* **PASS**: a beta-binomial confidence sequence per version -- valid at all times simultaneously -- lies inside
  its margin, expected ± min(tolerance, share / 2) (:mod:`verifier.stats.margins`), for every version
  (intersection-union, as in the fixed-n test: no multiplicity correction), and the unattributed rate's
  confidence sequence lies below its limit.
* **FAIL** on unattributed responses only when their confidence sequence lies entirely above the limit.

Two ways in, one test:

* :meth:`SequentialGate.observe` -- one response at a time, for an *ordered stream* (responses in the order they
  happened: a load generator, a replayed results file). Checked after every response.
* :meth:`SequentialGate.observe_counts` / :meth:`SequentialGate.observe_batch` -- for *counts-only sources*
  (telemetry: Prometheus counters, access-log aggregates), which know how many responses each version served in
  an interval but not their order. The statistics are functions of the counts, so the batch update is exact; the
  gate decides only at batch boundaries, and the order inside a batch cannot matter. Feeding such a batch through
  :meth:`observe` in an order of one's choosing (all production first, say) is *not* valid -- the stream would
  look like a broken split for its first hundred responses -- so counts-only sources must use the batch API.

Each observation costs O(k): the log Bayes factors are updated by ratios of the predictive probabilities (no
gamma functions on the hot path); a batch costs O(k) gamma functions. Once decided (PASS or FAIL -- never an
INCONCLUSIVE), the verdict is frozen: a crossing is a valid stop whatever the statistic does afterwards.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping

from splitproof.verifier import defaults, fmt
from splitproof.verifier.expected import as_expected
from splitproof.verifier.stats.checks import check_counts, check_parameters
from splitproof.verifier.stats.decide import decide, row_status
from splitproof.verifier.stats.intervals import share_interval, unattributed_interval
from splitproof.verifier.stats.margins import version_margins, version_prior, version_tolerance
from splitproof.verifier.stats.mixture import (
    KT_PRIOR,
    dm_concentration,
    log_bf_binomial,
    log_bf_dirichlet,
    log_split_evidence,
    log_threshold,
    unattributed_prior,
)
from splitproof.verifier.stats.path import samples_on_path_why
from splitproof.verifier.verdict import Method, Outcome, Parameters, Status, UnattributedRow, Verdict, VersionRow


def _log(x: float) -> float:
    return math.log(x) if x > 0 else -math.inf


def _exp_neg(log_bf: float) -> float:
    """Anytime-valid p-value min(1, 1/BF)."""
    if log_bf <= 0:
        return 1.0
    return math.exp(-log_bf) if log_bf < 745 else 0.0


class SequentialGate:
    """Feed responses with :meth:`observe` (ordered stream) or :meth:`observe_counts` (counts-only batches);
    read :attr:`decided` and :meth:`verdict` at any time."""

    def __init__(self, expected: Mapping[str, float], *, alpha: float = defaults.ALPHA,
                 tolerance: float = defaults.TOLERANCE, max_unattributed: float = defaults.MAX_UNATTRIBUTED) -> None:
        self.expected = as_expected(expected)
        check_parameters(alpha, tolerance, max_unattributed)
        self.alpha, self.tolerance, self.max_unattributed = alpha, tolerance, max_unattributed
        self._limit = log_threshold(alpha)
        self._names = list(self.expected)
        self._index = {name: i for i, name in enumerate(self._names)}
        k = len(self._names)
        self._p = [self.expected[v] for v in self._names]
        self._positive = [i for i, p in enumerate(self._p) if p > 0]
        self._log_p = [_log(p) for p in self._p]
        self._concentration = dm_concentration(tolerance)
        self._a_dm = [self._concentration * p for p in self._p]
        self._a_dm_total = sum(self._a_dm)
        self._a_kt_total = KT_PRIOR * len(self._positive)
        self._prior = [version_prior(p, tolerance) for p in self._p]
        self._ab = [a + b for a, b in self._prior]
        self._margins = [version_margins(p, tolerance) for p in self._p]
        # log q and log(1 - q) at each margin; None marks a vacuous margin (outside [0, 1]) or a 0% version
        self._lo_logs = [(_log(lo), _log(1 - lo)) if lo >= 0 and p > 0 else None
                         for (lo, _), p in zip(self._margins, self._p, strict=True)]
        self._hi_logs = [(_log(hi), _log(1 - hi)) if hi <= 1 and p > 0 else None
                         for (_, hi), p in zip(self._margins, self._p, strict=True)]
        self._lbf_lo = [0.0] * k
        self._lbf_hi = [0.0] * k
        self._x = [0] * k
        self._n = 0
        self._lbf_dm = 0.0
        self._lbf_kt = 0.0
        self._ua, self._ub = unattributed_prior(max_unattributed)
        self._log_m, self._log_1m = _log(max_unattributed), _log(1 - max_unattributed)
        self._u = 0
        self._total = 0
        self._lbf_u = 0.0
        self._unexpected: Counter[str] = Counter()
        self._decision: Verdict | None = None
        self.observed_after_decision = 0
        self.batches = 0

    # ------------------------------------------------------------------------------------------- observation

    @property
    def decided(self) -> bool:
        """True once the gate reached PASS or FAIL (an INCONCLUSIVE is never a decision)."""
        return self._decision is not None

    @property
    def n(self) -> int:
        """Attributed responses observed (up to the decision)."""
        return self._n

    @property
    def total(self) -> int:
        return self._total

    def observe(self, version: str | None) -> None:
        """One response of an ordered stream: its version, or None when it could not be attributed."""
        if self._decision is not None:
            self.observed_after_decision += 1
            return
        if version is None:
            self._observe_unattributed()
        else:
            i = self._index.get(version)
            if i is None or self._p[i] <= 0.0:
                self._observe_unexpected(version, 1)
                self._decide()
                return
            self._observe_version(i)
        if self._check() is not None:
            self._decide()

    def observe_counts(self, counts: Mapping[str, int], unattributed: int = 0) -> None:
        """A batch known only by its counts: per-version responses plus unattributed ones, in no known order.

        The statistics are updated by the whole batch (closed forms of the counts, so exactly what the same
        responses one by one would give, in any order) and the gate decides only at the batch's end.
        """
        clean = check_counts(counts, unattributed)
        size = sum(clean.values()) + int(unattributed)
        if self._decision is not None:
            self.observed_after_decision += size
            return
        if size == 0:
            return
        self.batches += 1
        for version, count in clean.items():
            if count == 0:
                continue
            i = self._index.get(version)
            if i is None or self._p[i] <= 0.0:
                self._observe_unexpected(version, count)
            else:
                self._x[i] += count
                self._n += count
                self._total += count
        self._u += int(unattributed)
        self._total += int(unattributed)
        self._recompute()
        if self._check() is not None:
            self._decide()

    def observe_batch(self, versions: Iterable[str | None]) -> None:
        """A batch of responses whose order carries no information (e.g. collected per interval): counted, then
        :meth:`observe_counts`. Use :meth:`observe` for each response instead when the order is the real one."""
        counts: Counter[str] = Counter()
        unattributed = 0
        for version in versions:
            if version is None:
                unattributed += 1
            else:
                counts[str(version)] += 1
        self.observe_counts(counts, unattributed)

    def _observe_unexpected(self, version: str, count: int) -> None:
        self._unexpected[version] += count
        i = self._index.get(version)
        if i is not None:
            self._x[i] += count
        self._n += count
        self._total += count
        self._recompute()  # the gate FAILs now: its frozen verdict shows the statistics of every response

    def _observe_unattributed(self) -> None:
        if self.max_unattributed > 0:
            self._lbf_u += math.log(self._ua + self._u) - math.log(self._ua + self._ub + self._total) - self._log_m
        self._u += 1
        self._total += 1

    def _observe_version(self, i: int) -> None:
        n = self._n
        self._lbf_dm += math.log(self._a_dm[i] + self._x[i]) - math.log(self._a_dm_total + n) - self._log_p[i]
        self._lbf_kt += math.log(KT_PRIOR + self._x[i]) - math.log(self._a_kt_total + n) - self._log_p[i]
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
        if self.max_unattributed > 0:
            self._lbf_u += _log(self._ub + self._total - self._u) - math.log(self._ua + self._ub + self._total) \
                - self._log_1m
        self._total += 1

    def _recompute(self) -> None:
        """Every statistic from the counts (the closed forms the per-response updates accumulate)."""
        n = self._n
        pos = self._positive
        if len(pos) > 1:
            x = [self._x[i] for i in pos]
            p = [self._p[i] for i in pos]
            self._lbf_dm = log_bf_dirichlet(x, p, [self._a_dm[i] for i in pos])
            self._lbf_kt = log_bf_dirichlet(x, p, [KT_PRIOR] * len(pos))
        for j, (lo, hi) in enumerate(self._margins):
            a, b = self._prior[j]
            if self._lo_logs[j] is not None:
                self._lbf_lo[j] = log_bf_binomial(self._x[j], n, lo, a, b)
            if self._hi_logs[j] is not None:
                self._lbf_hi[j] = log_bf_binomial(self._x[j], n, hi, a, b)
        self._recompute_unattributed()

    def _recompute_unattributed(self) -> None:
        if self.max_unattributed > 0:
            self._lbf_u = log_bf_binomial(self._u, self._total, self.max_unattributed, self._ua, self._ub)

    # ---------------------------------------------------------------------------------------------- decision

    @property
    def log_evidence(self) -> float:
        """log of the split test's e-value (FAIL above log(1/alpha))."""
        return log_split_evidence(self._lbf_dm, self._lbf_kt)

    def _split_rejected(self) -> bool:
        return self.log_evidence > self._limit

    def _unattributed_status(self) -> Status:
        if self._total == 0:
            return Status.UNDECIDED
        if self.max_unattributed <= 0:
            return Status.DIFFERS if self._u > 0 else Status.WITHIN
        share = self._u / self._total
        if self._lbf_u > self._limit:
            if share > self.max_unattributed:
                return Status.DIFFERS
            if share < self.max_unattributed:
                return Status.WITHIN
        return Status.UNDECIDED

    def _version_within(self, j: int) -> bool:
        n = self._n
        if n == 0:
            return False
        if self._p[j] <= 0:  # a 0% version: silent is all it can show (one response is a FAIL)
            return self._x[j] == 0
        center = self._x[j] / n
        lo, hi = self._margins[j]
        if self._lo_logs[j] is not None and (center <= lo or not self._lbf_lo[j] > self._limit):
            return False
        return not (self._hi_logs[j] is not None and (center >= hi or not self._lbf_hi[j] > self._limit))

    def _check(self) -> Outcome | None:
        if self._unexpected or self._split_rejected():
            return Outcome.FAIL
        unattributed = self._unattributed_status()
        if unattributed == Status.DIFFERS:
            return Outcome.FAIL
        if unattributed == Status.WITHIN and all(self._version_within(j) for j in range(len(self._names))):
            return Outcome.PASS
        return None

    def _decide(self) -> None:
        """Freeze the verdict -- only a PASS or a FAIL (the rows' statuses and the hot-path check agree by
        construction; should they ever not, the gate keeps listening rather than freeze an INCONCLUSIVE)."""
        verdict = self._build()
        if verdict.decided:
            self._decision = verdict

    def verdict(self) -> Verdict:
        """The frozen verdict once decided, else the current (INCONCLUSIVE) state."""
        return self._decision if self._decision is not None else self._build()

    def _build(self) -> Verdict:
        n, alpha, tolerance = self._n, self.alpha, self.tolerance
        rows: list[VersionRow] = []
        split_rejected = bool(self._unexpected) or self._split_rejected()
        for name in self._names + [v for v in self._unexpected if v not in self._index]:
            j = self._index.get(name)
            x, e = (self._unexpected[name], 0.0) if j is None else (self._x[j], self._p[j])
            interval = share_interval(Method.SEQUENTIAL, x, n, e, alpha=alpha, tolerance=tolerance)
            if j is None:  # a version the split does not name: it answered, so the run FAILs
                rows.append(VersionRow(name, 0.0, x, x / n if n else None, interval, 0.0, 1.0, Status.UNEXPECTED,
                                       0.0))
                continue
            a, b = self._prior[j]
            p_value = _exp_neg(log_bf_binomial(x, n, e, a, b)) if n else 1.0
            rows.append(VersionRow(name, e, x, x / n if n else None, interval, p_value, self._p_equivalence(j),
                                   row_status(x, e, p_value < alpha, self._version_within(j), split_rejected),
                                   version_tolerance(e, tolerance)))
        urow = self._unattributed_row()
        gof_p = 0.0 if self._unexpected else _exp_neg(self.log_evidence)
        method = (f"sequential split test: mean of Dirichlet-multinomial (concentration {self._concentration:g}) "
                  "and plug-in Kelly (KT) e-values" if len(self._positive) > 1 else "single version")
        outcome, reason = decide(rows, urow, split_rejected, gof_p, "sequential split test", n, tolerance)
        needed = None
        if outcome == Outcome.INCONCLUSIVE:
            needed, what = self.samples_needed_why()
            if needed:
                reason = f"{reason}; about {fmt.plural(needed, 'more sample')} needed {what}"
        else:
            batches = f" in {fmt.plural(self.batches, 'batch', 'batches')}" if self.batches else ""
            reason = f"{reason} (decided after {fmt.plural(self._total, 'response')}{batches})"
        return Verdict(
            outcome=outcome, reason=reason, method=Method.SEQUENTIAL, rows=tuple(rows), unattributed_row=urow, n=n,
            unattributed=self._u, gof_method=method, gof_p_value=gof_p, log_e_value=self.log_evidence,
            samples_needed=needed,
            parameters=Parameters(alpha, tolerance, self.max_unattributed, None,
                                  {v: version_tolerance(self._p[i], tolerance)
                                   for i, v in enumerate(self._names) if self._p[i] > 0}),
            method_details={
                "fail_test": "mean of the Dirichlet-multinomial (prior c*p) and Krichevsky-Trofimov (prior 1/2) "
                             "Bayes factors vs the expected multinomial; FAIL at >= 1/alpha",
                "dirichlet_concentration": self._concentration,
                "log_bayes_factor_tight": self._lbf_dm, "log_bayes_factor_kt": self._lbf_kt,
                "share_priors": {name: list(self._prior[i]) for i, name in enumerate(self._names)},
                "unattributed_prior": [self._ua, self._ub],
                "pass_rule": "every version's confidence sequence inside expected +- min(tolerance, share/2)",
                "batches": self.batches,
            },
        )

    def _p_equivalence(self, j: int) -> float:
        n = self._n
        if n == 0:
            return 1.0
        if self._p[j] <= 0:
            return 0.0 if self._x[j] == 0 else 1.0
        center = self._x[j] / n
        lo, hi = self._margins[j]
        p_lo = 0.0 if self._lo_logs[j] is None else (1.0 if center <= lo else _exp_neg(self._lbf_lo[j]))
        p_hi = 0.0 if self._hi_logs[j] is None else (1.0 if center >= hi else _exp_neg(self._lbf_hi[j]))
        return max(p_lo, p_hi)

    def _unattributed_row(self) -> UnattributedRow:
        u, total, m = self._u, self._total, self.max_unattributed
        interval = unattributed_interval(Method.SEQUENTIAL, u, total, alpha=self.alpha, limit=m)
        if total == 0:
            return UnattributedRow(0, 0, None, interval, m, 1.0, 1.0, Status.UNDECIDED)
        share = u / total
        if m <= 0:
            p_exceeds, p_within = (0.0, 1.0) if u > 0 else (1.0, 0.0)
        else:
            p = _exp_neg(self._lbf_u)
            p_exceeds = p if share > m else 1.0
            p_within = p if share < m else 1.0
        return UnattributedRow(u, total, share, interval, m, p_exceeds, p_within, self._unattributed_status())

    def samples_needed(self) -> int | None:
        """Further responses until a decision if every observed share (and the unattributed rate) holds."""
        return self.samples_needed_why()[0]

    def samples_needed_why(self) -> tuple[int | None, str]:
        """:meth:`samples_needed` and what those responses would show."""
        if self._n == 0:
            shares = dict(self.expected)
        else:
            shares = {v: self._x[i] / self._n for i, v in enumerate(self._names)}
        u_share = self._u / self._total if self._total else 0.0
        target, what = samples_on_path_why(self.expected, shares, u_share, alpha=self.alpha,
                                           tolerance=self.tolerance, max_unattributed=self.max_unattributed,
                                           start=self._total)
        if target is None:
            return None, what
        return max(1, target - self._total), what
