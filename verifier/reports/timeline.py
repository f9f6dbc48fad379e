"""Streaming summaries of a run for the HTML report: share-over-time checkpoints and latency histograms.

Memory is bounded regardless of how many records are fed: the share timeline keeps at most ``max_points``
checkpoints (thinning by half when full) and latencies go into fixed log-spaced bins.
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

from splitproof.verifier.inputs.records import Record

if TYPE_CHECKING:
    from splitproof.verifier.inputs.attribution import Attribution
    from splitproof.verifier.inputs.bulk import Run

# Latency bins: 0.05 ms .. ~100 s, 20 bins per decade (log-spaced), plus under/overflow.
_LAT_MIN_MS = 0.05
_BINS_PER_DECADE = 20
_N_BINS = 6 * _BINS_PER_DECADE + 2


def latency_bin(latency_ms: float) -> int:
    if latency_ms <= _LAT_MIN_MS:
        return 0
    idx = 1 + int(math.log10(latency_ms / _LAT_MIN_MS) * _BINS_PER_DECADE)
    return min(idx, _N_BINS - 1)


def bin_upper_edge_ms(idx: int) -> float:
    """Upper edge of bin ``idx`` in milliseconds (the overflow bin reports +inf)."""
    if idx >= _N_BINS - 1:
        return math.inf
    return _LAT_MIN_MS * 10 ** (idx / _BINS_PER_DECADE)


def _bits(x: float) -> int:
    return struct.unpack("<q", struct.pack("<d", x))[0]


def _float(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<q", bits))[0]


@lru_cache(maxsize=1)
def bin_thresholds() -> tuple[float, ...]:
    """For bins 1.., the smallest positive double :func:`latency_bin` puts in that bin or above, found by bisection
    over the doubles themselves: ``latency_bin(x) == searchsorted(thresholds, x, "right")`` for every x >= 0,
    because latency_bin is monotone. Vectorised binning thus gives exactly the scalar function's bins."""
    out = []
    hi_bits = _bits(1e300)
    for b in range(1, _N_BINS):
        lo, hi = 0, hi_bits  # latency_bin(_float(lo)) < b <= latency_bin(_float(hi))
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if latency_bin(_float(mid)) >= b:
                hi = mid
            else:
                lo = mid
        out.append(_float(hi))
    return tuple(out)


@lru_cache(maxsize=1)
def _threshold_array() -> object:
    import numpy as np

    # [b]: the smallest latency in bin b -- 0 for bin 0, +inf past the last bin (so "one bin up" never leaves them)
    return np.array((0.0, *bin_thresholds(), math.inf))


_LOG_OFFSET = 1.0 - _BINS_PER_DECADE * math.log10(_LAT_MIN_MS)  # latency_bin(x) ~ 20 log10(x) + this, truncated


def latency_bins(latencies: object) -> object:
    """:func:`latency_bin` of every element of a float64 array, exactly: numpy's log10 puts each latency in its bin
    or next to it (the formula is rearranged, and log10 may differ from math.log10 in the last bit), and one
    comparison with each neighbouring threshold (:func:`bin_thresholds`, the scalar function's own edges) moves it to
    the scalar function's bin -- a quarter of the cost of a binary search over all the thresholds. Latencies are
    >= 0 and not NaN (the records' shape)."""
    import numpy as np

    x = np.asarray(latencies, dtype=np.float64)
    thresholds = _threshold_array()
    with np.errstate(divide="ignore"):  # log10(0) = -inf: bin 0 after the clip
        guess = np.log10(x)
    guess *= _BINS_PER_DECADE
    guess += _LOG_OFFSET
    np.clip(guess, 0.0, _N_BINS - 1, out=guess)
    b = guess.astype(np.intp)
    b += x >= thresholds[b + 1]  # one bin too low
    b -= x < thresholds[b]  # one bin too high
    return b


@dataclass
class Checkpoint:
    n: int            # attributed responses so far
    t: float          # seconds since the first record
    counts: dict[str, int]


@dataclass
class Timeline:
    """Feed records in order with ``add``; read ``checkpoints``, ``latency`` and ``errors`` afterwards."""

    max_points: int = 400
    stride: int = 1
    t0: float | None = None
    n_attributed: int = 0
    n_unattributed: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    latency: dict[str, list[int]] = field(default_factory=dict)  # version (or "unattributed") -> bin counts
    errors: Counter[str] = field(default_factory=Counter)          # status -> count (non-ok responses)

    def add(self, rec: Record) -> None:
        if self.t0 is None:
            self.t0 = rec.t
        key = rec.version if rec.version is not None and rec.ok else "unattributed"  # versions: successes only
        bins = self.latency.get(key)
        if bins is None:
            bins = self.latency[key] = [0] * _N_BINS
        bins[latency_bin(rec.latency_ms)] += 1
        if not rec.ok:
            self.errors[rec.status] += 1
        if rec.version is None:
            self.n_unattributed += 1
            return
        self.counts[rec.version] += 1
        self.n_attributed += 1
        if self.n_attributed % self.stride == 0:
            self.checkpoints.append(Checkpoint(self.n_attributed, rec.t - self.t0, dict(self.counts)))
            if len(self.checkpoints) >= self.max_points:
                self.checkpoints = self.checkpoints[1::2]
                self.stride *= 2

    def add_run(self, run: Run, attribution: Attribution | None = None) -> None:
        """A replay's run of vouched lines (read with values), in file order: the same state as :meth:`add` of each
        of its records (as the tally hands them over: a successful record with its version re-attributed), computed
        with numpy. Checkpoints: after any number N of attributed responses, ``add`` leaves exactly the multiples
        of the stride s(N) -- the smallest power of two with N // s < max_points -- so a run adds the multiples of
        the new stride and drops the old ones that are not."""
        import numpy as np

        from splitproof.verifier.inputs.bulk import template

        if not len(run):
            return
        assert run.ts is not None and run.latencies is not None
        ts = run.ts  # doubles: Python's float of the text, as the exact parser
        if self.t0 is None:
            self.t0 = ts[0]
        table = np.frombuffer(run.codes, dtype=np.uint16)
        found = np.flatnonzero(np.bincount(table))  # the run's keys (a handful: ids index a small table)
        first = [int(np.argmax(table == k)) for k in found]
        by_first = found[np.argsort(first)]  # the run's keys in order of first appearance
        local = np.zeros(int(found[-1]) + 1, dtype=np.int64)
        local[by_first] = np.arange(len(by_first))
        codes = local[table]
        distinct = [run.keys[int(k)] for k in by_first]
        per_key = np.bincount(codes, minlength=len(distinct))
        versions: list[str | None] = []
        latency_keys: list[str] = []  # as add(): a version's latencies are its successes' only
        for i, key in enumerate(distinct):
            rec = template(key)
            version = rec.version
            if rec.ok and attribution is not None:
                version = attribution.by_count(rec.channel, rec.items)
            versions.append(version)
            latency_keys.append(version if version is not None and rec.ok else "unattributed")
            if not rec.ok:
                self.errors[rec.status] += int(per_key[i])
        latencies = np.frombuffer(run.latencies, dtype=np.float64)
        bins = latency_bins(latencies)
        groups = list(dict.fromkeys(latency_keys))
        group_of = np.array([groups.index(k) for k in latency_keys])[codes]
        per_group = np.bincount(group_of * _N_BINS + bins, minlength=len(groups) * _N_BINS).reshape(-1, _N_BINS)
        for g, name in enumerate(groups):
            target = self.latency.setdefault(name, [0] * _N_BINS)
            for idx in np.flatnonzero(per_group[g]):
                target[idx] += int(per_group[g, idx])
        named = list(dict.fromkeys(v for v in versions if v is not None))
        vcode = np.array([-1 if v is None else named.index(v) for v in versions])[codes]
        attributed = np.flatnonzero(vcode >= 0)
        self.n_unattributed += len(run) - len(attributed)
        n0, before = self.n_attributed, dict(self.counts)
        total = n0 + len(attributed)
        stride = self.stride
        while total // stride >= self.max_points:
            stride *= 2
        if stride != self.stride:
            self.checkpoints = [c for c in self.checkpoints if c.n % stride == 0]
            self.stride = stride
        positions = {v: np.flatnonzero(vcode == i) for i, v in enumerate(named)}
        for v in named:
            self.counts[v] += len(positions[v])
        order = list(self.counts)
        first = (n0 // stride + 1) * stride
        for j in range(first, total + 1, stride):
            pos = attributed[j - n0 - 1]
            counts_now = {}
            for v in order:
                c = before.get(v, 0) + (int(np.searchsorted(positions[v], pos, side="right")) if v in positions else 0)
                if c:
                    counts_now[v] = c
            self.checkpoints.append(Checkpoint(j, ts[int(pos)] - self.t0, counts_now))  # as add(): rec.t - t0
        self.n_attributed = total

    def add_batch(self, batch: object) -> None:
        """A count batch (a telemetry window or one ``--watch`` poll: ``counts``, ``unattributed`` by cause, and a
        ``window``): one checkpoint at the batch's end -- the share over time of a watch is per poll, and a window
        is a single point. Latency and statuses of batches are the health judge's, not drawn here."""
        counts = getattr(batch, "counts", {})
        unattributed = getattr(batch, "unattributed", {})
        window = getattr(batch, "window", None)
        if window is not None and self.t0 is None:
            self.t0 = window.since
        self.counts.update({v: n for v, n in counts.items() if n})
        self.n_attributed += sum(counts.values())
        self.n_unattributed += sum(unattributed.values())
        for cause, n in unattributed.items():
            if n:
                self.errors[cause] += n
        if self.n_attributed and (not self.checkpoints or self.checkpoints[-1].n != self.n_attributed):
            t = (window.until - self.t0) if window is not None and self.t0 is not None else 0.0
            self.checkpoints.append(Checkpoint(self.n_attributed, t, dict(self.counts)))
            if len(self.checkpoints) >= self.max_points:
                self.checkpoints = self.checkpoints[1::2]

    def finish(self) -> None:
        """Make sure the final state is the last checkpoint."""
        if self.n_attributed and (not self.checkpoints or self.checkpoints[-1].n != self.n_attributed):
            t = self.checkpoints[-1].t if self.checkpoints else 0.0
            self.checkpoints.append(Checkpoint(self.n_attributed, t, dict(self.counts)))

    def latency_quantile(self, key: str, q: float) -> float | None:
        """Approximate latency quantile (upper bin edge) for ``key``; None when no data."""
        bins = self.latency.get(key)
        if not bins:
            return None
        total = sum(bins)
        if total == 0:
            return None
        target = q * total
        acc = 0
        for idx, c in enumerate(bins):
            acc += c
            if acc >= target:
                return bin_upper_edge_ms(idx)
        return bin_upper_edge_ms(len(bins) - 1)
