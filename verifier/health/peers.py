"""The peers' canary judges, re-implemented (vectorised) to be calibrated side by side with the health judge.

* **Kayenta** (Spinnaker's NetflixACAJudge, spinnaker/kayenta ``MannWhitneyClassifier``): per metric, the canary's
  and the baseline's time series (one value per step, e.g. the error rate of each minute) are compared with a
  Mann-Whitney test: the canary is *High* when the lower end of the 98% confidence interval of the Hodges-Lehmann
  shift (canary - baseline) exceeds 0.25 x |estimate| and the mean ratio is at least 1 (or undefined). Series
  that are identical or all one value PASS; if each series has a single value, Gaussian noise of 1e-5 x that value
  is added; a zero tie-corrected variance is Kayenta's classification error (not High). The interval is the
  normal approximation with continuity and tie corrections, as Kayenta's ``MannWhitney.wilcoxonDiff``: its
  root-finding on the step function lands on a pairwise difference, which :func:`kayenta_high` picks directly.
  Spinnaker re-runs the analysis every interval over the data so far; one High fails the canary here.
* **Fixed threshold** (Flagger ``request-success-rate``/``request-duration``, Argo Rollouts ``successCondition``):
  each interval the canary's own metric over that interval is compared with a fixed limit (error rate below 1%,
  p99 latency below a number of ms); the rollout fails after ``failures`` breached checks (Argo's default
  failureLimit 0: the first; Flagger's ``threshold``: e.g. 5).
"""

from __future__ import annotations

import numpy as np
from scipy import stats as sps


def _ties_term(values: np.ndarray) -> np.ndarray:
    """Sum over tie groups of (t^3 - t) per row."""
    s = np.sort(values, axis=1)
    k = s.shape[1]
    starts = np.ones_like(s, dtype=bool)
    starts[:, 1:] = s[:, 1:] != s[:, :-1]
    group = np.cumsum(starts, axis=1) - 1
    out = np.zeros(s.shape[0])
    for r in range(s.shape[0]):
        t = np.bincount(group[r], minlength=k).astype(float)
        out[r] = float((t**3 - t).sum())
    return out


def kayenta_high(canary: np.ndarray, baseline: np.ndarray, *, confidence: float = 0.98, tolerance: float = 0.25,
                 rng: np.random.Generator | None = None) -> np.ndarray:
    """Kayenta's "High" classification per row of (runs, steps) series, direction increase."""
    x = np.array(canary, dtype=float)
    y = np.array(baseline, dtype=float)
    runs, nx = x.shape
    ny = y.shape[1]
    rng = rng or np.random.default_rng(0)
    identical = np.all(np.sort(x, axis=1) == np.sort(y, axis=1), axis=1) if nx == ny else np.zeros(runs, bool)
    both = np.concatenate([x, y], axis=1)
    one_value = np.all(both == both[:, :1], axis=1)
    single = np.all(x == x[:, :1], axis=1) & np.all(y == y[:, :1], axis=1) & ~one_value
    if single.any():  # Kayenta adds noise scaled to each series' value (none when the value is 0)
        x[single] += rng.normal(0.0, 1.0, x[single].shape) * np.abs(x[single, :1]) * 1e-5
        y[single] += rng.normal(0.0, 1.0, y[single].shape) * np.abs(y[single, :1]) * 1e-5
    d = np.sort((x[:, :, None] - y[:, None, :]).reshape(runs, nx * ny), axis=1)
    k = nx * ny
    ends = np.ones_like(d, dtype=bool)
    ends[:, :-1] = d[:, 1:] != d[:, :-1]
    last = np.where(ends, np.arange(k)[None, :], k)
    last = np.minimum.accumulate(last[:, ::-1], axis=1)[:, ::-1]
    above = k - last - 1  # pairs with difference strictly above each candidate shift
    n = nx + ny
    ties = _ties_term(x) + _ties_term(y)  # within-sample ties (between-sample ones only at the jump itself)
    sigma = np.sqrt(nx * ny / 12.0 * ((n + 1) - ties / (n * (n - 1))))
    ok = sigma > 0
    sig = np.where(ok, sigma, 1.0)[:, None]
    dz = above - k / 2.0
    f0 = (dz - 0.5 * np.sign(dz)) / sig

    def root(zq: float) -> np.ndarray:
        hit = f0 - zq <= 0
        idx = np.where(hit.any(axis=1), hit.argmax(axis=1), k - 1)
        return d[np.arange(runs), idx]

    lower = root(float(sps.norm.ppf(1 - (1 - confidence) / 2)))
    estimate = root(0.0)
    mx, my = x.mean(axis=1), y.mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((mx == 0) | (my == 0), np.nan, mx / my)
    high = (lower > tolerance * np.abs(estimate)) & (np.isnan(ratio) | (ratio >= 1.0))
    return high & ok & ~identical & ~one_value


def step_series(canary: np.ndarray, values: np.ndarray, step: int, statistic: str = "mean") -> tuple[np.ndarray,
                                                                                                    np.ndarray]:
    """Per-step metric of each version: (canary (runs, steps), baseline (runs, steps)); NaN -> 0 (Kayenta's
    default NaN strategy). ``statistic`` "mean" (error rate, mean latency) or "p99"."""
    runs, horizon = canary.shape
    steps = horizon // step
    c = canary[:, : steps * step].reshape(runs, steps, step)
    v = values[:, : steps * step].reshape(runs, steps, step).astype(float)
    out = []
    for mask in (c, ~c):
        if statistic == "mean":
            with np.errstate(invalid="ignore", divide="ignore"):
                series = (v * mask).sum(axis=2) / mask.sum(axis=2)
        else:
            with np.errstate(invalid="ignore"), np.testing.suppress_warnings() as sup:
                sup.filter(RuntimeWarning)
                series = np.nanquantile(np.where(mask, v, np.nan), 0.99, axis=2)
        out.append(np.nan_to_num(series, nan=0.0))
    return out[0], out[1]


def kayenta_first_high(canary_series: np.ndarray, baseline_series: np.ndarray, *, every: int, step: int,
                       rng: np.random.Generator | None = None) -> np.ndarray:
    """Responses at the first analysis (every ``every`` steps, over all steps so far) that says High; 0 = never."""
    runs, steps = canary_series.shape
    first = np.zeros(runs, dtype=np.int64)
    rng = rng or np.random.default_rng(0)
    for upto in range(every, steps + 1, every):
        open_runs = first == 0
        if not open_runs.any():
            break
        high = kayenta_high(canary_series[open_runs, :upto], baseline_series[open_runs, :upto], rng=rng)
        idx = np.flatnonzero(open_runs)[high]
        first[idx] = upto * step
    return first


def threshold_first_failure(canary_series: np.ndarray, limit: float, *, interval_steps: int, step: int,
                            failures: int = 1, counts: np.ndarray | None = None) -> np.ndarray:
    """Responses at which the ``failures``-th breached check happened (0 = never).

    ``canary_series`` holds the canary's metric per interval (already aggregated over ``interval_steps`` steps of
    ``step`` responses); a check with no canary responses (``counts`` 0) is skipped, as a query with no data.
    """
    breached = canary_series > limit
    if counts is not None:
        breached &= counts > 0
    running = np.cumsum(breached, axis=1)
    hit = running >= failures
    first = np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, 0)
    return first * interval_steps * step
