"""Latency as cumulative histogram buckets: what Istio's ``istio_request_duration_milliseconds`` exports, and what
the access-log source builds from each line's ``%DURATION%``.

Istio's stats filter records the request duration into an Envoy histogram; with no
``sidecar.istio.io/statsHistogramBuckets`` annotation (istio/istio ``pkg/bootstrap/config.go``) it uses Envoy's
default bucket bounds, ``HistogramSettingsImpl::defaultBuckets()`` in envoyproxy/envoy
``source/common/stats/histogram_impl.cc``: 0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000,
60000, 300000, 600000, 1800000, 3600000 ms, plus Prometheus' ``+Inf``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

ISTIO_DURATION_BUCKETS_MS: tuple[float, ...] = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
                                                30000, 60000, 300000, 600000, 1800000, 3600000)


@dataclass(frozen=True, slots=True)
class LatencyHistogram:
    """Cumulative counts: ``cumulative[i]`` requests took at most ``bounds[i]`` ms; the last bound is +Inf."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.bounds) != len(self.cumulative) or not self.bounds or self.bounds[-1] != math.inf:
            raise ValueError("a histogram needs one cumulative count per bound, the last bound +Inf")

    @property
    def count(self) -> int:
        return self.cumulative[-1]

    def at_most(self, bound_ms: float) -> int:
        """Requests that took at most ``bound_ms`` (which must be one of the bounds)."""
        return self.cumulative[self.bounds.index(bound_ms)]

    def quantile_bound(self, q: float) -> float:
        """The smallest bucket bound below which at least a share ``q`` of requests fall: an honest upper bound
        for the ``q`` quantile (no interpolation inside a bucket). NaN for an empty histogram."""
        if self.count == 0:
            return math.nan
        need = q * self.count
        for bound, n in zip(self.bounds, self.cumulative, strict=True):
            if n >= need:
                return bound
        return math.inf

    @classmethod
    def from_cumulative(cls, pairs: Mapping[float, int]) -> LatencyHistogram:
        """From ``{le: cumulative count}`` (Prometheus ``_bucket`` series); adds +Inf when it is missing."""
        bounds = sorted(pairs)
        counts = [pairs[b] for b in bounds]
        if not bounds or bounds[-1] != math.inf:
            bounds.append(math.inf)
            counts.append(counts[-1] if counts else 0)
        # Exact window counts of a consistent histogram are monotone; repair scrape skew between bucket series.
        for i in range(1, len(counts)):
            counts[i] = max(counts[i], counts[i - 1])
        return cls(tuple(bounds), tuple(counts))

    @classmethod
    def from_durations(cls, durations_ms: Iterable[float],
                       bounds: tuple[float, ...] = ISTIO_DURATION_BUCKETS_MS) -> LatencyHistogram:
        buckets = DurationBuckets(bounds)
        for d in durations_ms:
            buckets.add(d)
        return buckets.freeze()


class DurationBuckets:
    """A mutable per-bucket tally (one increment per access-log line), frozen into a LatencyHistogram."""

    __slots__ = ("bounds", "per")

    def __init__(self, bounds: tuple[float, ...] = ISTIO_DURATION_BUCKETS_MS) -> None:
        self.bounds = bounds
        self.per = [0] * (len(bounds) + 1)

    def add(self, duration_ms: float) -> None:
        self.per[bisect.bisect_left(self.bounds, duration_ms)] += 1

    def freeze(self) -> LatencyHistogram:
        cumulative, run = [], 0
        for n in self.per:
            run += n
            cumulative.append(run)
        return LatencyHistogram((*self.bounds, math.inf), tuple(cumulative))
