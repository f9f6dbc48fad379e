"""Vectorised (numpy) simulation of the gates, for calibration, ``--plan`` and the statistical tests.

:func:`simulate_sequential` evaluates exactly the statistics of :class:`verifier.stats.sequential.SequentialGate` on
many simulated response streams at once -- looking after every response (``observe``) or only at the ends of
batches (``observe_counts``, ``batch=``) -- and tests check it agrees with the gate decision for decision, so
error rates and samples-to-verdict can be measured over thousands of runs in seconds. Responses are independent
draws from ``truth`` -- what Envoy's per-request weighted split produces.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps
from scipy.special import betaln, gammaln

from splitproof.verifier import defaults
from splitproof.verifier.crossings import CrossingRuns
from splitproof.verifier.expected import as_expected
from splitproof.verifier.stats.margins import version_margins, version_prior
from splitproof.verifier.stats.mixture import KT_PRIOR, LOG_HALF, dm_concentration, log_threshold, unattributed_prior


@dataclass(frozen=True)
class SequentialRuns(CrossingRuns):
    """Per run: the response count at the first FAIL / first PASS crossing (0 = none within the horizon)."""

    @property
    def stopped_at(self) -> np.ndarray:
        """Responses until the verdict (the horizon for undecided runs)."""
        return self.responses_to_verdict(self.horizon)


def _first_true(mask: np.ndarray) -> np.ndarray:
    """1-based index of the first True per row, 0 when none."""
    any_true = mask.any(axis=1)
    return np.where(any_true, mask.argmax(axis=1) + 1, 0)


def cumulative_counts(truth: np.ndarray, runs: int, horizon: int, rng: np.random.Generator) -> np.ndarray:
    """(runs, horizon, k) cumulative per-version counts of independent draws."""
    draws = rng.choice(len(truth), size=(runs, horizon), p=truth)
    onehot = np.zeros((runs, horizon, len(truth)), dtype=np.int32)
    np.put_along_axis(onehot, draws[..., None], 1, axis=2)
    return onehot.cumsum(axis=1, dtype=np.int32)


def sequential_statistics(counts: np.ndarray, expected: np.ndarray, *, alpha: float, tolerance: float,
                          max_unattributed: float, looks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(fail, pass) boolean arrays (runs, looks) of the gate's crossing conditions, no unattributed responses.

    ``counts`` (runs, horizon, k) are cumulative; ``looks`` the 1-based response counts at which the gate looks
    (default: after every response; ``batch_looks`` for a counts-only source fed in batches).
    """
    runs, horizon, k = counts.shape
    if looks is None:
        looks = np.arange(1, horizon + 1)
    x = counts[:, looks - 1, :].astype(float)
    n = looks.astype(float)[None, :]
    limit = log_threshold(alpha)
    conc = dm_concentration(tolerance)
    positive = expected > 0
    if (~positive).any():
        impossible = (x[..., ~positive] > 0).any(axis=2)
    else:
        impossible = np.zeros(x.shape[:2], dtype=bool)
    if positive.sum() > 1:
        xp, pp = x[..., positive], expected[positive]
        log_null = (xp * np.log(pp)).sum(axis=2)
        evidence = []
        for a in (conc * pp, np.full(len(pp), KT_PRIOR)):
            evidence.append(gammaln(a.sum()) - gammaln(a.sum() + n) + (gammaln(a + xp) - gammaln(a)).sum(axis=2)
                            - log_null)
        fail = impossible | (np.logaddexp(evidence[0], evidence[1]) + LOG_HALF > limit)
    else:
        fail = impossible
    within = np.ones(x.shape[:2], dtype=bool)
    for j, e in enumerate(expected):
        xj = x[..., j]
        if e <= 0:  # a 0% version: silent (any response already FAILs)
            within &= xj == 0
            continue
        a_j, b_j = version_prior(float(e), tolerance)
        lo, hi = version_margins(float(e), tolerance)
        base = betaln(a_j + xj, b_j + n - xj) - betaln(a_j, b_j)
        center = xj / n
        for q, side in ((lo, "lo"), (hi, "hi")):
            if (side == "lo" and q < 0) or (side == "hi" and q > 1):
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                loglik = np.where(xj > 0, xj * np.log(q) if q > 0 else -np.inf, 0.0) + \
                    np.where(n - xj > 0, (n - xj) * np.log1p(-q) if q < 1 else -np.inf, 0.0)
            lbf_q = base - loglik
            ok = (lbf_q > limit) & ((center > q) if side == "lo" else (center < q))
            within &= ok
    if max_unattributed > 0:
        ua, ub = unattributed_prior(max_unattributed)
        lbf_u = betaln(ua, ub + n) - betaln(ua, ub) - n * np.log1p(-max_unattributed)
        within &= lbf_u > limit
    return fail, within


def batch_looks(horizon: int, batch: int) -> np.ndarray:
    """The response counts at which a gate fed batches of ``batch`` responses looks: batch, 2 batch, ..."""
    return np.arange(batch, horizon + 1, batch)


def simulate_sequential(expected: Mapping[str, float], truth: Mapping[str, float], *, runs: int, horizon: int,
                        alpha: float = defaults.ALPHA, tolerance: float = defaults.TOLERANCE,
                        max_unattributed: float = defaults.MAX_UNATTRIBUTED,
                        seed: int = 0, chunk: int = 200, batch: int = 1) -> SequentialRuns:
    """Run the sequential gate on ``runs`` independent streams drawn from ``truth``, up to ``horizon`` each;
    ``batch`` > 1: fed through ``observe_counts`` in batches of that many responses (looks at batch ends)."""
    exp = as_expected(expected)
    names = list(exp) + [v for v in truth if v not in exp]
    e = np.array([exp.get(v, 0.0) for v in names])
    t = np.array([float(truth.get(v, 0.0)) for v in names])
    t = t / t.sum()
    rng = np.random.default_rng(seed)
    looks = batch_looks(horizon, batch)
    fails, passes = [], []
    for start in range(0, runs, chunk):
        size = min(chunk, runs - start)
        counts = cumulative_counts(t, size, horizon, rng)
        fail, within = sequential_statistics(counts, e, alpha=alpha, tolerance=tolerance,
                                             max_unattributed=max_unattributed, looks=looks)
        fails.append(_at_look(_first_true(fail), looks))
        passes.append(_at_look(_first_true(within), looks))
    return SequentialRuns(np.concatenate(fails), np.concatenate(passes), horizon)


def _at_look(first: np.ndarray, looks: np.ndarray) -> np.ndarray:
    """1-based look index (0 = none) -> the response count at that look (0 = none)."""
    return np.where(first > 0, looks[np.maximum(first, 1) - 1], 0)


def naive_repeated_chi_square(expected: Mapping[str, float], truth: Mapping[str, float], *, runs: int, horizon: int,
                              every: int, alpha: float = defaults.ALPHA, seed: int = 0, chunk: int = 200) -> float:
    """Fraction of runs in which a plain chi-square test, re-run after every ``every`` responses, ever rejects --
    the peeking mistake the sequential gate exists to avoid."""
    exp = as_expected(expected)
    names = list(exp)
    e = np.array([exp[v] for v in names])
    t = np.array([float(truth.get(v, 0.0)) for v in names])
    rng = np.random.default_rng(seed)
    looks = np.arange(every, horizon + 1, every)
    crit = float(sps.chi2.ppf(1 - alpha, len(e) - 1))
    hits = 0
    for start in range(0, runs, chunk):
        size = min(chunk, runs - start)
        counts = cumulative_counts(t / t.sum(), size, horizon, rng)[:, looks - 1, :].astype(float)
        n = looks[None, :, None].astype(float)
        stat = ((counts - n * e) ** 2 / (n * e)).sum(axis=2)
        hits += int((stat > crit).any(axis=1).sum())
    return hits / runs
