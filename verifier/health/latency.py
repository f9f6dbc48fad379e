"""What "slow" means for the health judge: a latency threshold fixed before the test data is seen.

Latency becomes a bad-event count like errors: a successful response is *slow* when its latency is above a
threshold. The threshold is either given by the user (milliseconds), or derived from a production-only warm-up --
production's ``quantile`` (default 95th percentile) over its first ``count`` successful responses -- that is *not*
reused in the test: the test's responses are independent of the warm-up, so the test is exact given the threshold
whatever the warm-up happened to be.

Prometheus histograms (``istio_request_duration_milliseconds_bucket``) only know counts at their bucket boundaries
(``le``), so there the threshold must be a boundary: a given threshold is rounded *down* to the largest boundary at
or below it (every response slower than what the user asked for is still counted slow; the verdict names the
boundary used), and a warm-up threshold is the smallest boundary at or above production's quantile (production's
slow share at it is at most 1 - quantile). Envoy's and Istio's default boundaries are
:data:`ENVOY_DEFAULT_BUCKETS_MS` (Envoy source/common/stats/histogram_impl.cc).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from splitproof.verifier.errors import InputError

ENVOY_DEFAULT_BUCKETS_MS: tuple[float, ...] = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000,
                                               60000, 300000, 600000, 1800000, 3600000)
DEFAULT_QUANTILE = 0.95
DEFAULT_WARMUP = 200


@dataclass(frozen=True)
class SlowThreshold:
    """A response slower than ``ms`` milliseconds is slow; ``source`` says where the number came from."""

    ms: float
    source: str = "given"

    def __post_init__(self) -> None:
        if not (isinstance(self.ms, int | float) and math.isfinite(self.ms) and self.ms > 0):
            raise InputError(f"a latency threshold must be a positive number of milliseconds, got {self.ms!r}")

    def describe(self) -> str:
        return f"slower than {self.ms:.3g} ms ({self.source})"

    def is_slow(self, latency_ms: float) -> bool:
        return latency_ms > self.ms


def given_threshold(ms: float) -> SlowThreshold:
    return SlowThreshold(float(ms), "given")


def _check_quantile(quantile: float) -> None:
    if not 0.5 <= quantile < 1.0:
        raise InputError(f"the latency quantile must be from 0.5 to below 1, got {quantile!r}")


def warmup_threshold(latencies_ms: Iterable[float], quantile: float = DEFAULT_QUANTILE) -> SlowThreshold:
    """Production's empirical ``quantile`` (the ceil(q n)-th smallest latency) over its warm-up responses."""
    _check_quantile(quantile)
    values = sorted(float(x) for x in latencies_ms)
    if not values:
        raise InputError("no production latencies to derive the slow threshold from")
    k = max(1, math.ceil(quantile * len(values)))
    ms = max(values[k - 1], 1e-3)
    return SlowThreshold(ms, f"production's p{100 * quantile:g} over {len(values)} warm-up responses")


class WarmupThreshold:
    """Collects production's first ``count`` successful latencies; :meth:`add` returns the threshold once ready."""

    def __init__(self, count: int = DEFAULT_WARMUP, quantile: float = DEFAULT_QUANTILE) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 20:
            raise InputError(f"the latency warm-up needs at least 20 production responses, got {count!r}")
        _check_quantile(quantile)
        self.count, self.quantile = count, quantile
        self._values: list[float] = []
        self.threshold: SlowThreshold | None = None

    @property
    def collected(self) -> int:
        """Production latencies collected so far (the threshold is set at ``count``)."""
        return self.count if self.threshold is not None else len(self._values)

    def add(self, latency_ms: float) -> SlowThreshold | None:
        if self.threshold is None:
            self._values.append(float(latency_ms))
            if len(self._values) >= self.count:
                self.threshold = warmup_threshold(self._values, self.quantile)
                self._values = []
        return self.threshold


# ------------------------------------------------------------------------------------ Prometheus histograms

def _le(key: float | str) -> float:
    if isinstance(key, str):
        text = key.strip()
        if text in ("+Inf", "Inf", "inf", "+inf"):
            return math.inf
        try:
            return float(text)
        except ValueError:
            raise InputError(f"histogram bucket boundary must be a number or +Inf, got {key!r}") from None
    return float(key)


def cumulative_buckets(buckets: Mapping[float | str, float]) -> list[tuple[float, int]]:
    """Sorted (le, cumulative count) pairs; counts must be non-decreasing integers and include +Inf."""
    pairs = sorted((_le(k), v) for k, v in buckets.items())
    out: list[tuple[float, int]] = []
    for le, v in pairs:
        count = round(float(v))
        if count < 0 or abs(float(v) - count) > 1e-6:
            raise InputError(f"bucket le={le:g} holds {v!r}: expected a non-negative whole count (use counter "
                             "deltas over the window, not rate())")
        if out and count < out[-1][1]:
            raise InputError(f"bucket counts must not decrease with le (le={le:g}: {count} < {out[-1][1]})")
        out.append((le, count))
    if not out or out[-1][0] != math.inf:
        raise InputError("a histogram needs its +Inf bucket (the total count)")
    return out


def bucket_boundary(threshold_ms: float, boundaries: Iterable[float]) -> float:
    """The largest finite boundary at or below ``threshold_ms`` (conservative rounding, see the module doc)."""
    below = [b for b in (float(x) for x in boundaries) if math.isfinite(b) and b <= threshold_ms + 1e-9]
    if not below:
        raise InputError(f"no histogram bucket boundary at or below {threshold_ms:g} ms: the histogram cannot tell "
                         "slow from fast there")
    return max(below)


def bucket_threshold(threshold_ms: float, boundaries: Iterable[float]) -> SlowThreshold:
    b = bucket_boundary(threshold_ms, boundaries)
    source = "given" if abs(b - threshold_ms) < 1e-9 else f"bucket boundary at or below the {threshold_ms:g} ms asked"
    return SlowThreshold(b, source)


def warmup_threshold_from_buckets(buckets: Mapping[float | str, float],
                                  quantile: float = DEFAULT_QUANTILE) -> SlowThreshold:
    """The smallest boundary where production's warm-up histogram reaches ``quantile``."""
    _check_quantile(quantile)
    cum = cumulative_buckets(buckets)
    total = cum[-1][1]
    if total == 0:
        raise InputError("the production warm-up histogram is empty")
    for le, count in cum:
        if math.isfinite(le) and count >= quantile * total:
            return SlowThreshold(le, f"bucket boundary at production's p{100 * quantile:g} over {total} warm-up "
                                     "responses")
    raise InputError(f"production's p{100 * quantile:g} is above the largest finite bucket boundary")


def slow_counts_from_buckets(buckets: Mapping[float | str, float], threshold: SlowThreshold) -> tuple[int, int]:
    """(responses, slow responses) from one version's cumulative histogram; the threshold must be a boundary."""
    cum = cumulative_buckets(buckets)
    total = cum[-1][1]
    for le, count in cum:
        if abs(le - threshold.ms) < 1e-9:
            return total, total - count
    raise InputError(f"{threshold.ms:g} ms is not a bucket boundary of this histogram "
                     f"({', '.join(f'{le:g}' for le, _ in cum)}); round it with bucket_threshold()")


def slow_counts(latencies_ms: Iterable[float], threshold: SlowThreshold) -> tuple[int, int]:
    """(responses, slow responses) from individual latencies."""
    total = slow = 0
    for x in latencies_ms:
        total += 1
        slow += x > threshold.ms
    return total, slow
