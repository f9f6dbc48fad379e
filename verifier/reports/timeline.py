"""Streaming summaries of a run for the HTML report: share-over-time checkpoints and latency histograms.

Memory is bounded regardless of how many records are fed: the share timeline keeps at most ``max_points``
checkpoints (thinning by half when full) and latencies go into fixed log-spaced bins.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from splitproof.verifier.inputs.records import Record

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
