"""Vectorised (numpy) simulation of the health judge, for calibration, tests and the plan figures.

Responses are independent: each goes to the canary with probability ``share`` (Envoy's per-request weighted draw)
and is bad with its version's rate. :func:`crossings` evaluates exactly the statistics of
:class:`verifier.health.sequential.HealthMonitor` (tests check it agrees decision for decision) on many streams
at once, at every look -- after every response, or at batch boundaries. The fixed-n judge's exact error rates
are :func:`verifier.health.plan.fixed_n_rates`.

Latency: :func:`lognormal_latency` is the model used in bench/health_calibration.py; :func:`latency_counts` turns
per-response latencies into the judge's slow counts with the threshold set by a production-only warm-up that is
excluded from the counts, as the monitor does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from splitproof.verifier import defaults
from splitproof.verifier.crossings import CrossingRuns
from splitproof.verifier.health.difference import (
    constrained_mle,
    log_likelihood,
    log_marginal,
    rate_prior,
)


@dataclass(frozen=True)
class Counts:
    """Cumulative per-run counts at each look: arrays (runs, looks); ``n`` (looks,) responses so far."""

    n: np.ndarray
    nc: np.ndarray
    yc: np.ndarray
    np_: np.ndarray
    yp: np.ndarray


@dataclass(frozen=True)
class HealthRuns(CrossingRuns):
    """Per run: responses at the first FAIL / first PASS crossing (0 = none within the horizon)."""

    @property
    def stopped_at(self) -> np.ndarray:
        """Responses until the verdict; undecided runs count as ``inf`` (they were not decided by the horizon)."""
        return self.responses_to_verdict(np.inf)

    def ever_failed(self) -> float:
        """Runs whose FAIL e-process crossed at all within the horizon, even after a PASS (Ville's event)."""
        return float(np.mean(self.first_fail > 0))


def looks_at(horizon: int, look_every: int) -> np.ndarray:
    """Responses at each look: every ``look_every`` responses (a batch), and the horizon."""
    looks = np.arange(look_every, horizon + 1, look_every)
    return looks if looks[-1] == horizon else np.append(looks, horizon)


def draw(share: float, canary_rate, production_rate, runs: int, horizon: int,  # type: ignore[no-untyped-def]
         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(is_canary, is_bad) boolean arrays (runs, horizon); rates may be per-run arrays (runs,)."""
    canary = rng.random((runs, horizon)) < share
    pc = np.broadcast_to(np.asarray(canary_rate, dtype=float), (runs,))[:, None]
    pp = np.broadcast_to(np.asarray(production_rate, dtype=float), (runs,))[:, None]
    bad = rng.random((runs, horizon)) < np.where(canary, pc, pp)
    return canary, bad


def cumulate(canary: np.ndarray, bad: np.ndarray, looks: np.ndarray, counted: np.ndarray | None = None) -> Counts:
    """Counts at the looks; ``counted`` masks responses that take part (the latency warm-up does not)."""
    take = np.ones_like(canary) if counted is None else counted
    cols = looks - 1
    nc = np.cumsum(canary & take, axis=1, dtype=np.int64)[:, cols]
    np_ = np.cumsum(~canary & take, axis=1, dtype=np.int64)[:, cols]
    yc = np.cumsum(canary & bad & take, axis=1, dtype=np.int64)[:, cols]
    yp = np.cumsum(~canary & bad & take, axis=1, dtype=np.int64)[:, cols]
    return Counts(looks, nc, yc, np_, yp)


def _profile(y_c: np.ndarray, n_c: np.ndarray, y_p: np.ndarray, n_p: np.ndarray, margin: float) -> np.ndarray:
    """Max log-likelihood on d = margin (the pooled rate when margin is 0: the common case, no cubic)."""
    if margin == 0.0:
        pooled = (y_c + y_p) / (n_c + n_p)
        return log_likelihood(y_c, n_c, pooled) + log_likelihood(y_p, n_p, pooled)
    pc, pp = constrained_mle(y_c, n_c, y_p, n_p, margin)
    return log_likelihood(y_c, n_c, pc) + log_likelihood(y_p, n_p, pp)


def crossings(counts: Counts, *, max_increase: float, fail_margin: float, alpha: float,
              alpha_fail: float, block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(first FAIL, first PASS) in responses per run (0 = never): the monitor's two e-processes at each look.

    Evaluated block by block along the looks, only for runs not yet decided (a decided monitor is frozen) and only
    where each test can cross (the observed difference on its alternative side) -- the same values as
    :func:`verifier.health.difference.log_e_value`, just not computed where they cannot matter.
    """
    a, b = rate_prior(max_increase)
    limit_fail, limit_pass = math.log(1 / alpha_fail), math.log(1 / alpha)
    runs, looks = counts.nc.shape
    first_fail = np.zeros(runs, dtype=np.int64)
    first_pass = np.zeros(runs, dtype=np.int64)
    for start in range(0, looks, block):
        open_runs = np.flatnonzero((first_fail == 0) & (first_pass == 0))
        if open_runs.size == 0:
            break
        cols = slice(start, min(start + block, looks))
        nc = counts.nc[open_runs, cols].astype(float)
        np_ = counts.np_[open_runs, cols].astype(float)
        yc = counts.yc[open_runs, cols].astype(float)
        yp = counts.yp[open_runs, cols].astype(float)
        valid = (nc > 0) & (np_ > 0)
        d = np.where(valid, yc / np.where(valid, nc, 1.0) - yp / np.where(valid, np_, 1.0), 0.0)
        fail = np.zeros(nc.shape, dtype=bool)
        passed = np.zeros(nc.shape, dtype=bool)
        for mask, margin, limit, out in ((valid & (d > fail_margin), fail_margin, limit_fail, fail),
                                         (valid & (d < max_increase), max_increase, limit_pass, passed)):
            if not mask.any():
                continue
            yc_m, nc_m, yp_m, np_m = yc[mask], nc[mask], yp[mask], np_[mask]
            mix = log_marginal(yc_m, nc_m, a, b) + log_marginal(yp_m, np_m, a, b)
            with np.errstate(divide="ignore", invalid="ignore"):
                out[mask] = mix - _profile(yc_m, nc_m, yp_m, np_m, margin) >= limit
        n = counts.n[cols]
        for hits, target in ((fail, first_fail), (passed, first_pass)):
            any_hit = hits.any(axis=1)
            target[open_runs[any_hit]] = n[hits[any_hit].argmax(axis=1)]
    return first_fail, first_pass


def simulate_health(share: float, canary_rate: float, production_rate: float, *, runs: int, horizon: int,
                    look_every: int = 1, max_increase: float = defaults.MAX_ERROR_INCREASE, fail_margin: float = 0.0,
                    alpha: float = defaults.ALPHA, fail_tests: int = 2, seed: int = 0,
                    chunk_cells: int = 4_000_000) -> HealthRuns:
    """The sequential judge on ``runs`` independent streams of bad/good responses, one metric, one canary."""
    rng = np.random.default_rng(seed)
    looks = looks_at(horizon, look_every)
    chunk = max(1, chunk_cells // horizon)
    fails, passes = [], []
    for start in range(0, runs, chunk):
        size = min(chunk, runs - start)
        canary, bad = draw(share, canary_rate, production_rate, size, horizon, rng)
        f, p = crossings(cumulate(canary, bad, looks), max_increase=max_increase, fail_margin=fail_margin,
                         alpha=alpha, alpha_fail=alpha / fail_tests)
        fails.append(f)
        passes.append(p)
    return HealthRuns(np.concatenate(fails), np.concatenate(passes), horizon)


# ---------------------------------------------------------------------------------------------------- latency

def lognormal_latency(median_ms: float = 4.0, sigma: float = 0.5, *, shift_ms: float = 0.0,
                      scale: float = 1.0) -> Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]:
    """Latency model: ``scale * LogNormal(log median, sigma) + shift`` milliseconds."""
    def sample(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return scale * rng.lognormal(math.log(median_ms), sigma, shape) + shift_ms
    return sample


def draw_latencies(share: float, canary_model, production_model, runs: int, horizon: int,  # type: ignore[no-untyped-def]
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(is_canary, latency_ms) arrays (runs, horizon)."""
    canary = rng.random((runs, horizon)) < share
    return canary, np.where(canary, canary_model(rng, (runs, horizon)), production_model(rng, (runs, horizon)))


def warmup_mask(canary: np.ndarray, warmup: int) -> np.ndarray:
    """True for production's first ``warmup`` responses of each run (they set the threshold, not counted)."""
    production_rank = np.cumsum(~canary, axis=1)
    return ~canary & (production_rank <= warmup)


def latency_counts(canary: np.ndarray, latency: np.ndarray, looks: np.ndarray, *, warmup: int = 200,
                   quantile: float = 0.95, threshold_ms: float | None = None) -> tuple[Counts, np.ndarray]:
    """Slow counts at the looks, threshold per run from production's warm-up (or ``threshold_ms`` for all).

    Looks before a run's warm-up is complete see no counts (the monitor cannot decide latency before it).
    Returns (counts, thresholds per run).
    """
    runs = canary.shape[0]
    if threshold_ms is None:
        in_warmup = warmup_mask(canary, warmup)
        k = max(1, math.ceil(quantile * warmup))
        values = np.where(in_warmup, latency, np.inf)
        thresholds = np.sort(values, axis=1)[:, k - 1]  # the warm-up's ceil(q n)-th smallest
        done_at = np.argmax(np.cumsum(in_warmup, axis=1) >= warmup, axis=1) + 1
        counted = ~in_warmup & (np.arange(1, canary.shape[1] + 1)[None, :] > 0)
    else:
        thresholds = np.full(runs, float(threshold_ms))
        done_at = np.zeros(runs, dtype=np.int64)
        counted = np.ones_like(canary)
    slow = latency > thresholds[:, None]
    counts = cumulate(canary, slow, looks, counted)
    ready = looks[None, :] >= done_at[:, None]
    zero = np.zeros_like(counts.nc)
    counts = Counts(looks, np.where(ready, counts.nc, zero), np.where(ready, counts.yc, zero),
                    np.where(ready, counts.np_, zero), np.where(ready, counts.yp, zero))
    return counts, thresholds
