"""verifier.health.latency: slow thresholds given, from a warm-up, and on Prometheus histogram bucket boundaries."""

from __future__ import annotations

import math

import pytest

from splitproof.verifier.errors import InputError
from splitproof.verifier.health.latency import (
    ENVOY_DEFAULT_BUCKETS_MS,
    SlowThreshold,
    WarmupThreshold,
    bucket_boundary,
    bucket_threshold,
    cumulative_buckets,
    given_threshold,
    slow_counts,
    slow_counts_from_buckets,
    warmup_threshold,
    warmup_threshold_from_buckets,
)

# One version's istio_request_duration_milliseconds_bucket deltas over a window (cumulative, le as exported).
CANARY = {"0.5": 0, "1": 2, "5": 610, "10": 900, "25": 980, "50": 1000, "+Inf": 1000}


def test_envoy_default_boundaries() -> None:
    # Envoy source/common/stats/histogram_impl.cc, used by Istio's istio_request_duration_milliseconds.
    assert ENVOY_DEFAULT_BUCKETS_MS[:8] == (0.5, 1, 5, 10, 25, 50, 100, 250) and ENVOY_DEFAULT_BUCKETS_MS[-1] == 3600000


def test_a_given_threshold_rounds_down_to_a_boundary() -> None:
    assert bucket_boundary(10, ENVOY_DEFAULT_BUCKETS_MS) == 10
    assert bucket_boundary(40, ENVOY_DEFAULT_BUCKETS_MS) == 25
    t = bucket_threshold(40, ENVOY_DEFAULT_BUCKETS_MS)
    assert t.ms == 25 and "at or below the 40 ms asked" in t.describe()
    assert bucket_threshold(10, ENVOY_DEFAULT_BUCKETS_MS).source == "given"
    with pytest.raises(InputError):
        bucket_boundary(0.3, ENVOY_DEFAULT_BUCKETS_MS)


def test_slow_counts_from_buckets() -> None:
    assert slow_counts_from_buckets(CANARY, given_threshold(10)) == (1000, 100)
    assert slow_counts_from_buckets({**CANARY, math.inf: 1000}, given_threshold(25)) == (1000, 20)
    with pytest.raises(InputError, match="not a bucket boundary"):
        slow_counts_from_buckets(CANARY, given_threshold(12))


@pytest.mark.parametrize("bad", [
    {"1": 5, "5": 3, "+Inf": 9},         # decreasing
    {"1": 1.5, "+Inf": 3},                # a rate, not a count
    {"1": 1, "5": 2},                     # no +Inf bucket
    {"one": 1, "+Inf": 2},                # not a boundary
])
def test_malformed_histograms_are_input_errors(bad: dict) -> None:
    with pytest.raises(InputError):
        cumulative_buckets(bad)


def test_warm_up_threshold_from_buckets_is_the_quantiles_boundary() -> None:
    t = warmup_threshold_from_buckets(CANARY, 0.9)
    assert t.ms == 10 and "p90 over 1000 warm-up responses" in t.source
    assert warmup_threshold_from_buckets(CANARY, 0.95).ms == 25
    with pytest.raises(InputError):
        warmup_threshold_from_buckets({"1": 0, "+Inf": 0})


def test_warm_up_threshold_from_latencies() -> None:
    values = [float(i) for i in range(1, 101)]
    assert warmup_threshold(values, 0.95).ms == 95
    w = WarmupThreshold(20, 0.9)
    found = [w.add(float(i)) for i in range(1, 21)]
    assert found[:-1] == [None] * 19 and found[-1] is not None and found[-1].ms == 18
    assert w.add(1000.0) is found[-1]  # fixed once set
    assert slow_counts([1, 18, 18.5, 30], found[-1]) == (4, 2)
    for bad in (lambda: warmup_threshold([]), lambda: warmup_threshold([1.0], 0.3),
                lambda: SlowThreshold(-1), lambda: SlowThreshold(float("nan"))):
        with pytest.raises(InputError):
            bad()
