"""Exact counter increments from raw samples: the reason the Prometheus source does not use ``increase()``.

Prometheus' ``increase()`` extrapolates to the window edges (non-integer results) and has no baseline for a series
whose first sample is inside the range, so it drops that series' first count -- exactly the brand-new canary pods
(https://prometheus.io/docs/prometheus/latest/querying/functions/#increase). Here, per series:

* the last sample at or before the window start is the baseline (not counted);
* a series with no sample at or before the start began inside the window: its first sample counts in full;
* a sample lower than the one before is a counter reset (the process restarted at 0): its value counts in full;
* otherwise the difference to the previous sample counts.

Samples must come in time order per series; samples at or before the last one seen are skipped, so overlapping
reads (chunk edges, watch polls) never count twice. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from splitproof.verifier.telemetry.errors import TelemetryQueryError


@dataclass(slots=True)
class _Series:
    last_ms: int
    last_value: float
    counted: float = 0.0
    taken: float = 0.0


class CounterAccumulator:
    """Counts increments in ``(start_ms, end_ms]`` for any number of series (``end_ms`` None: open-ended)."""

    def __init__(self, start_ms: int, end_ms: int | None = None) -> None:
        self.start_ms = start_ms
        self.end_ms = end_ms
        self._series: dict[Hashable, _Series] = {}
        self.resets = 0
        self.began_inside = 0

    def feed(self, key: Hashable, samples: Iterable[tuple[int, float]]) -> None:
        """Consume one series' samples ``(t_ms, value)`` in time order."""
        state = self._series.get(key)
        for t_ms, value in samples:
            if not math.isfinite(value) or value < 0:
                raise TelemetryQueryError(f"series {_show(key)} has the value {value} at {t_ms / 1000:.3f}: "
                                          "not a counter")
            if self.end_ms is not None and t_ms > self.end_ms:
                break
            if state is None:
                state = _Series(t_ms, value)
                self._series[key] = state
                if t_ms > self.start_ms:  # no baseline: the series began inside the window
                    state.counted = value
                    self.began_inside += 1
                continue
            if t_ms <= state.last_ms:
                continue
            if t_ms <= self.start_ms:  # still before the window: move the baseline
                state.last_ms, state.last_value = t_ms, value
                continue
            if value < state.last_value:
                state.counted += value
                self.resets += 1
            else:
                state.counted += value - state.last_value
            state.last_ms, state.last_value = t_ms, value

    def keys(self) -> list[Hashable]:
        return list(self._series)

    def totals(self) -> dict[Hashable, int]:
        """Every series' count in the window so far (exact integers; raises for a non-integer counter)."""
        return {k: _integral(k, s.counted) for k, s in self._series.items()}

    def take(self) -> dict[Hashable, int]:
        """Counts added since the previous ``take`` (a watch's batch), per series with a non-zero increment."""
        out = {}
        for k, s in self._series.items():
            n = _integral(k, s.counted - s.taken)
            if n:
                out[k] = n
            s.taken = s.counted
        return out


def _integral(key: Hashable, value: float) -> int:
    n = round(value)
    if abs(value - n) > 1e-6:
        raise TelemetryQueryError(f"series {_show(key)} increased by {value:g}, not a whole number: "
                                  "not a request counter")
    return n


def _show(key: Hashable) -> str:
    if isinstance(key, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in key):
        inner = ",".join(f'{k}="{v}"' for k, v in key if k != "__name__")
        name = dict(key).get("__name__", "")
        return f"{name}{{{inner}}}"
    return str(key)
