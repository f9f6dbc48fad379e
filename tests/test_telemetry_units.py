"""Pure parts of the telemetry sources: time parsing, exact counter increments, histograms, poll schedule."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from splitproof.verifier.telemetry.counters import CounterAccumulator
from splitproof.verifier.telemetry.errors import TelemetryInputError, TelemetryQueryError
from splitproof.verifier.telemetry.latency import ISTIO_DURATION_BUCKETS_MS, DurationBuckets, LatencyHistogram
from splitproof.verifier.telemetry.result import CountsBuilder, StatusKey
from splitproof.verifier.telemetry.watch import ticks
from splitproof.verifier.telemetry.window import Window, format_duration, parse_duration, parse_time, resolve_window

NOW = 1_764_110_000.0


# ------------------------------------------------------------------------------------------------------ time


@pytest.mark.parametrize("text,seconds", [("10m", 600), ("1h30m", 5400), ("90s", 90), ("1500ms", 1.5),
                                          ("2d", 172800), ("1w2d3h4m5s6ms", 788645.006), ("0s", 0)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)
    assert parse_time(text, NOW) == pytest.approx(NOW - seconds)


@pytest.mark.parametrize("bad", ["", "10", "m", "30m1h", "1h1h", "1.5h", "-5m", "10 m", "1y", "5M"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(TelemetryInputError):
        parse_duration(bad)


@pytest.mark.parametrize("text,want", [
    ("1764110000", 1764110000.0), ("1764110000.25", 1764110000.25),
    ("2025-11-25T22:33:20Z", datetime(2025, 11, 25, 22, 33, 20, tzinfo=UTC).timestamp()),
    ("2025-11-25t22:33:20.5z", datetime(2025, 11, 25, 22, 33, 20, 500000, tzinfo=UTC).timestamp()),
    ("2025-11-25 23:33:20+01:00", datetime(2025, 11, 25, 22, 33, 20, tzinfo=UTC).timestamp()),
    ("now", NOW),
])
def test_times(text: str, want: float) -> None:
    assert parse_time(text, NOW) == pytest.approx(want)


@pytest.mark.parametrize("bad,message", [("2025-11-25T22:33:20", "no zone"), ("2025-13-45T22:33:20Z", "bad RFC"),
                                         ("yesterday", "not a time"), ("1764110000000", "milliseconds"),
                                         ("", "empty")])
def test_bad_times(bad: str, message: str) -> None:
    with pytest.raises(TelemetryInputError, match=message):
        parse_time(bad, NOW)


def test_windows() -> None:
    assert resolve_window("10m", None, NOW) == Window(NOW - 600, NOW)
    assert resolve_window("1h", "30m", NOW) == Window(NOW - 3600, NOW - 1800)
    with pytest.raises(TelemetryInputError, match="empty window"):
        resolve_window("10m", "20m", NOW)
    with pytest.raises(TelemetryInputError, match="in the future"):
        resolve_window("10m", str(NOW + 60), NOW)
    assert format_duration(5400) == "1h30m" and format_duration(0.25) == "250ms"
    assert "(10m)" in Window(NOW - 600, NOW).describe()


# ---------------------------------------------------------------------------------------------------- counters


def counted(samples: list[tuple[int, float]], start: int = 100, end: int | None = 1000) -> int:
    acc = CounterAccumulator(start, end)
    acc.feed("s", samples)
    return acc.totals()["s"]


def test_baseline_is_the_last_sample_at_or_before_the_start() -> None:
    assert counted([(50, 10), (100, 12), (150, 15), (200, 20)]) == 8
    assert counted([(50, 10), (150, 15), (1000, 30), (1001, 99)]) == 20  # (start, end] only


def test_series_born_inside_counts_from_zero() -> None:
    acc = CounterAccumulator(100, 1000)
    acc.feed("new", [(150, 4), (200, 9)])
    assert acc.totals() == {"new": 9} and acc.began_inside == 1


def test_counter_resets_count_the_new_value() -> None:
    acc = CounterAccumulator(100, 1000)
    acc.feed("s", [(90, 50), (200, 55), (300, 3), (400, 10), (500, 2)])
    assert acc.totals() == {"s": 5 + 3 + 7 + 2} and acc.resets == 2


def test_overlapping_reads_never_count_twice() -> None:
    acc = CounterAccumulator(100, None)
    acc.feed("s", [(90, 1), (200, 5), (300, 9)])
    acc.feed("s", [(200, 5), (300, 9), (400, 12)])
    assert acc.totals() == {"s": 11}
    assert acc.take() == {"s": 11}
    acc.feed("s", [(300, 9), (400, 12), (500, 20)])
    assert acc.take() == {"s": 8} and acc.take() == {}


def test_a_sample_late_before_the_start_moves_the_baseline() -> None:
    acc = CounterAccumulator(100, None)
    acc.feed("s", [(50, 1)])
    acc.feed("s", [(90, 4), (150, 6)])
    assert acc.totals() == {"s": 2}


def test_non_counters_are_refused() -> None:
    with pytest.raises(TelemetryQueryError, match="not a whole number"):
        counted([(90, 1), (200, 2.5)])
    with pytest.raises(TelemetryQueryError, match="not a counter"):
        counted([(90, 1), (200, math.nan)])


# --------------------------------------------------------------------------------------------- histograms, result


def test_duration_buckets_follow_istio_defaults() -> None:
    assert ISTIO_DURATION_BUCKETS_MS[:3] == (0.5, 1, 5) and ISTIO_DURATION_BUCKETS_MS[-1] == 3600000
    b = DurationBuckets()
    for d in (0, 1, 3, 5, 7, 250, 4000000):
        b.add(d)
    h = b.freeze()
    assert h.count == 7 and h.at_most(0.5) == 1 and h.at_most(1) == 2 and h.at_most(5) == 4
    assert h.at_most(250) == 6 and h.cumulative[-1] == 7 and h.bounds[-1] == math.inf
    assert h.quantile_bound(0.5) == 5 and h.quantile_bound(1.0) == math.inf
    assert LatencyHistogram.from_durations([1, 3]).cumulative == (0, 1, 2, *([2] * 17))
    skewed = LatencyHistogram.from_cumulative({1.0: 5, 10.0: 4, math.inf: 6})
    assert skewed.cumulative == (5, 5, 6)
    assert math.isnan(LatencyHistogram.from_cumulative({}).quantile_bound(0.5))


def test_counts_result_is_frozen_and_relabels() -> None:
    b = CountsBuilder()
    b.add("v1", 8, StatusKey("200"))
    b.add("v2", 2, StatusKey("503", "14", "UH"))
    b.add(None, 1, StatusKey("503"), "destination_version=unknown")
    r = b.build(Window(0, 10), "test")
    assert r.total == 11 and r.attributed == 10 and r.as_counter() == {"v1": 8, "v2": 2}
    with pytest.raises(TypeError):
        r.counts["v1"] = 0  # type: ignore[index]
    renamed = r.relabel({"v1": "production", "v2": "canary"})
    assert dict(renamed.counts) == {"production": 8, "canary": 2}
    assert renamed.status_of("canary") == {StatusKey("503", "14", "UH"): 2}
    assert StatusKey("200").ok and not StatusKey("200", "14").ok and StatusKey().ok is None


def test_empty_results_carry_a_note() -> None:
    assert any("no requests" in n for n in CountsBuilder().build(Window(0, 1), "x").notes)
    assert CountsBuilder().build(Window(0, 1), "x", empty_note=False).notes == ()


# ------------------------------------------------------------------------------------------------- poll schedule


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(round(s, 6))
        self.t += s


def test_ticks_follow_a_fixed_schedule_until_the_duration() -> None:
    clock = FakeClock()
    got = list(ticks(2.0, duration=7.0, clock=clock, sleep=clock.sleep))
    assert got == [1002.0, 1004.0, 1006.0, 1007.0]


def test_ticks_skip_what_a_slow_poll_missed() -> None:
    clock = FakeClock()
    out = []
    for t in ticks(1.0, duration=10, clock=clock, sleep=clock.sleep):
        out.append(t)
        if len(out) == 2:
            clock.t += 3.5  # this poll took 3.5 s
        if len(out) == 4:
            break
    assert out == [1001.0, 1002.0, 1006.0, 1007.0]
    with pytest.raises(ValueError):
        next(ticks(0))
