"""Dispatch order: hand responses to the sequential gate in the order their requests were sent, not answered.

The mesh's routing choice is an independent draw per request *in dispatch order*. The order in which responses
come back depends on the outcome (the faster or less loaded version answers first: at a burst start the first
completions are the fast version's; in steady state the slow version's in-flight requests are systematically
late), so a completion-ordered stream is not i.i.d. and a gate that may stop after any response -- whose
guarantee (Ville's inequality for a nonnegative supermartingale) assumes the stream's order is not chosen by its
values -- false-alarms far above alpha (bench/dispatch_order.py measures it).

:class:`ReorderBuffer` restores dispatch order: each request is numbered when it is dispatched (0, 1, 2, ...), and
its response -- or its failure, timeout or abandonment, in its slot -- is released only when every request
numbered before it was released. A stopping decision then depends only on a dispatch-order prefix. What waits is
what completed while the oldest request was still in flight: with ``c`` requests in flight and every request
ending (answered, failed or timed out) within a timeout ``T``, at most ``c * T / (fastest response time)``
responses -- O(c) for a given latency spread and timeout, never growing with the run's length.

:func:`by_start` is the same idea for a records file (completion-ordered lines): a bounded window that re-sorts
the stream by each record's dispatch time.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from splitproof.verifier.inputs.records import Record

T = TypeVar("T")

SKIPPED = object()  # a slot whose request produced no response to count (its user was stopped mid-request)


class ReorderBuffer(Generic[T]):
    """Release items in sequence-number order. Not thread-safe: one consumer owns it (the sampler's calling
    thread, a Locust process's greenlets -- which never yield inside these methods)."""

    def __init__(self, start: int = 0) -> None:
        self._next_release = start
        self._next_ticket = start
        self._held: dict[int, object] = {}
        self.max_held = 0  # the most items ever waiting (bounded by the concurrency)

    def ticket(self) -> int:
        """Number the next dispatched request."""
        seq = self._next_ticket
        self._next_ticket += 1
        return seq

    @property
    def held(self) -> int:
        """Completed items waiting for an earlier request."""
        return len(self._held)

    @property
    def in_flight(self) -> int:
        """Dispatched requests not yet released (completed or not)."""
        return self._next_ticket - self._next_release

    @property
    def released(self) -> int:
        return self._next_release

    def skip(self, seq: int) -> list[T]:
        """Request ``seq`` will never produce an item (e.g. its user was killed): release past its slot."""
        return self.put(seq, SKIPPED)  # type: ignore[arg-type]

    def flush(self) -> list[T]:
        """The end of the run: every held item in dispatch order, past the gaps of requests that never completed."""
        out = [self._held[k] for k in sorted(self._held) if self._held[k] is not SKIPPED]
        self._held.clear()
        self._next_release = self._next_ticket = max(self._next_ticket, self._next_release)
        return out  # type: ignore[return-value]

    def put(self, seq: int, item: T) -> list[T]:
        """Item ``seq`` completed; returns the items now released, in dispatch order."""
        if seq == self._next_release and not self._held:  # the common case: the oldest, and nothing waits for it
            self._next_release = seq + 1
            if self._next_ticket <= seq:
                self._next_ticket = seq + 1
            return [] if item is SKIPPED else [item]  # type: ignore[list-item]
        if seq < self._next_release or seq in self._held:
            raise ValueError(f"sequence number {seq} released twice")
        if self._next_ticket <= seq:  # (comparisons, not max(): a third of a Locust run's responses come here)
            self._next_ticket = seq + 1
        if seq != self._next_release:
            self._held[seq] = item
            if len(self._held) > self.max_held:
                self.max_held = len(self._held)
            return []
        out: list[T] = [] if item is SKIPPED else [item]  # type: ignore[list-item]
        self._next_release += 1
        held = self._held
        while self._next_release in held:
            nxt = held.pop(self._next_release)
            if nxt is not SKIPPED:
                out.append(nxt)  # type: ignore[arg-type]
            self._next_release += 1
        return out


DISPATCH_SLACK_S = 60.0  # seconds: no request of a replayed file is assumed to take longer (or the window)
DEFAULT_WINDOW = 4096  # records: far above the number in flight at once in any run this tool makes


def by_start(items: Iterable[T], start: Callable[[T], float], window: int = DEFAULT_WINDOW,
             horizon: Callable[[T], float] | None = None) -> Iterator[T]:
    """``items`` (in completion order) re-sorted by ``start`` (their dispatch time) with a window of ``window``
    items: exact whenever no item completes more than ``window`` items after one dispatched after it, which holds
    when fewer than ``window`` requests are in flight at once. Ties keep the input order. Memory O(window).
    ``horizon``, called with each item as it arrives, returns a start time before which no item still to come can
    have started: held items that started before it are released at once."""
    if window < 1:
        raise ValueError("window must be >= 1")
    heap: list[tuple[float, int, T]] = []
    counter = itertools.count()
    for item in items:
        heapq.heappush(heap, (start(item), next(counter), item))
        before = horizon(item) if horizon is not None else float("-inf")
        while heap and (len(heap) > window or heap[0][0] < before):
            yield heapq.heappop(heap)[2]
    while heap:
        yield heapq.heappop(heap)[2]


def dispatch_time(record: Record) -> float:
    """When a record's request was sent: its completion time minus its latency (exact for the records the
    Locust file writes, whose ``t`` is the dispatch time plus the response time)."""
    return record.t - record.latency_ms / 1000.0


def dispatch_ordered(records: Iterable[Record], window: int = DEFAULT_WINDOW,
                     slack_s: float = DISPATCH_SLACK_S) -> Iterator[Record]:
    """A records stream (completion order) in dispatch order, within ``window`` records (as :func:`by_start`).

    A record is also released once no later line can have been dispatched before it: every line still to come
    completed at or after the latest completion seen and took at most ``max(longest latency seen, slack_s)``, so it
    was dispatched after ``latest completion - that bound``. That keeps a replay of a growing file or a pipe
    deciding as the lines arrive (``slack_s`` behind them), not only every ``window`` lines or at the end. The
    slack is not the longest latency seen alone: at a burst start the first answers are the fast ones, and a bound
    learnt from them would release them ahead of slower requests sent earlier -- the very bias this undoes."""
    latest = float("-inf")
    longest = 0.0

    def horizon(rec: Record) -> float:
        nonlocal latest, longest
        latest = max(latest, rec.t)
        longest = max(longest, rec.latency_ms / 1000.0)
        return latest - max(longest, slack_s)

    return by_start(records, dispatch_time, window, horizon)
