"""Poll boundaries for ``--watch``: a fixed schedule ``start + k * interval`` that never drifts and skips the ticks
a slow poll missed (so batches are never polled back to back to catch up). Pure but for the injected clock/sleep."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator


def ticks(interval: float, *, start: float | None = None, duration: float | None = None,
          clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> Iterator[float]:
    """Yield the time of each poll (after sleeping until it): ``start + interval``, ``start + 2 interval``, ...
    up to ``start + duration`` (the last tick is at the duration, if it is not on the schedule)."""
    if not interval > 0:
        raise ValueError("the poll interval must be positive")
    t0 = clock() if start is None else start
    end = math.inf if duration is None else t0 + duration
    k = 1
    while True:
        target = min(t0 + k * interval, end)
        now = clock()
        if now < target:
            sleep(target - now)
            now = max(clock(), target)
        yield now
        if now >= end:
            return
        k = max(k + 1, math.floor((clock() - t0) / interval) + 1)
