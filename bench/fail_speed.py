"""How fast each FAIL design catches a misroute, on the same simulated streams (used by bench/calibration.py).

Designs, all anytime-valid (FAIL when the statistic reaches 1/alpha; Ville's inequality bounds the false-FAIL
rate by alpha for each):

* ``tight``: the Dirichlet-multinomial mixture centred on the expected split (concentration 1/(4 tol^2)) -- the
  gate's FAIL test before the betting e-value joined it;
* ``betting``: the plug-in Kelly bettor, computed here response by response: on response t it stakes its running
  add-1/2 estimate of the shares, wealth ``prod_t q_t(x_t) / p(x_t)`` with ``q_t = (x_{<t} + 1/2) / (t - 1 + k/2)``
  (a betting confidence sequence's test of the expected split);
* ``gate``: the gate's FAIL test now -- the mean of the two, evaluated by ``verifier.stats.simulation`` (the bench
  checks it equals the mean of the other two columns, so the comparison is of the shipped code).

PASS is the same rule for all three (the confidence sequences of ``verifier.stats.simulation``); a run stops at the
first crossing of either, FAIL winning a tie.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

from splitproof.verifier.stats.mixture import KT_PRIOR, LOG_HALF, dm_concentration, log_threshold
from splitproof.verifier.stats.simulation import batch_looks, sequential_statistics

DESIGNS = ("tight", "betting", "gate")


@dataclass(frozen=True)
class Crossings:
    """Per design, per run: the response count at the first FAIL crossing (0 = none); and the shared first PASS."""

    fail: dict[str, np.ndarray]
    first_pass: np.ndarray
    horizon: int

    def fails(self, design: str) -> np.ndarray:
        """Runs that stop at FAIL under this design."""
        f = self.fail[design]
        return (f > 0) & ((self.first_pass == 0) | (f <= self.first_pass))

    def fail_rate(self, design: str) -> float:
        return float(np.mean(self.fails(design)))

    def ever_fail(self, design: str) -> float:
        return float(np.mean(self.fail[design] > 0))

    def fail_times(self, design: str) -> np.ndarray:
        return self.fail[design][self.fails(design)]

    def pass_times(self, design: str) -> np.ndarray:
        return self.first_pass[(self.first_pass > 0) & ~self.fails(design)]


def _first(mask: np.ndarray, looks: np.ndarray) -> np.ndarray:
    hit = mask.any(axis=1)
    return np.where(hit, looks[mask.argmax(axis=1)], 0)


def crossings(expected: np.ndarray, truth: np.ndarray, *, runs: int, horizon: int, seed: int, alpha: float = 0.01,
              tolerance: float = 0.05, max_unattributed: float = 0.01, batch: int = 1, chunk: int = 200,
              order: str = "drawn") -> Crossings:
    """Every design on the same seeded streams. ``batch``: looks only at batch ends (a counts-only source);
    ``order``: "drawn", or "production first" / "canary first" -- each batch sorted before a look after every
    response (the mistake of feeding counts through ``observe``)."""
    k = len(expected)
    rng = np.random.default_rng(seed)
    limit = log_threshold(alpha)
    a_tight = dm_concentration(tolerance) * expected
    looks = batch_looks(horizon, batch) if order == "drawn" else np.arange(1, horizon + 1)
    out: dict[str, list[np.ndarray]] = {d: [] for d in DESIGNS}
    passes = []
    log_p = np.log(expected)
    for start in range(0, runs, chunk):
        size = min(chunk, runs - start)
        draws = rng.choice(k, size=(size, horizon), p=truth)
        if order != "drawn":
            shaped = draws[:, : horizon // batch * batch].reshape(size, -1, batch)
            first = 0 if order == "production first" else k - 1
            key = np.where(shaped == first, -1, shaped)
            draws[:, : horizon // batch * batch] = np.take_along_axis(shaped, np.argsort(key, axis=2, kind="stable"),
                                                                      axis=2).reshape(size, -1)
        onehot = np.zeros((size, horizon, k), dtype=np.int32)
        np.put_along_axis(onehot, draws[..., None], 1, axis=2)
        counts = onehot.cumsum(axis=1, dtype=np.int32)
        fail_gate, within = sequential_statistics(counts, expected, alpha=alpha, tolerance=tolerance,
                                                  max_unattributed=max_unattributed, looks=looks)
        x = counts[:, looks - 1, :].astype(float)
        n = looks.astype(float)[None, :]
        tight = (gammaln(a_tight.sum()) - gammaln(a_tight.sum() + n) + (gammaln(a_tight + x) - gammaln(a_tight))
                 .sum(axis=2) - (x * log_p).sum(axis=2))
        # the bettor, one response at a time: its estimate before response t, the log wealth factor of response t
        before = counts - onehot
        t = np.arange(horizon, dtype=float)[None, :]
        chosen = np.take_along_axis(before, draws[..., None], axis=2)[..., 0]
        step = np.log((chosen + KT_PRIOR) / (t + KT_PRIOR * k)) - log_p[draws]
        betting = np.cumsum(step, axis=1)[:, looks - 1]
        mean = np.logaddexp(tight, betting) + LOG_HALF
        if not np.array_equal(mean > limit, fail_gate):  # the shipped statistic is exactly the mean of the two
            close = np.abs(mean - limit) < 1e-6
            if not np.array_equal((mean > limit) | close, fail_gate | close):
                raise RuntimeError("verifier.stats.simulation's FAIL statistic is not the mean of tight and betting")
        out["tight"].append(_first(tight > limit, looks))
        out["betting"].append(_first(betting > limit, looks))
        out["gate"].append(_first(fail_gate, looks))
        passes.append(_first(within, looks))
    return Crossings({d: np.concatenate(v) for d, v in out.items()}, np.concatenate(passes), horizon)
