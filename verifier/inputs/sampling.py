"""Live sampling: run a probe from worker threads and hand each record to the caller, until it says stop.

Worker threads issue requests; the calling thread consumes the records, so the tally, the sequential gate and the
progress display need no locks. Records reach the consumer in *dispatch* order (verifier.inputs.reorder): each
request is numbered when a worker takes it, and a response waits until every request numbered before it has
completed or failed -- the completion order depends on which version answered faster, which would bias a gate that
may stop after any response. Bounded by ``max_samples`` and ``duration``; stops as soon as the consumer says so
(the gate decided). Responses that complete after the stop are discarded and counted as such.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from splitproof.verifier.inputs.probes import SOURCE, Probe
from splitproof.verifier.inputs.records import Record, error_status
from splitproof.verifier.inputs.reorder import ReorderBuffer


@dataclass(frozen=True)
class SamplingResult:
    stop_reason: str  # "decided" | "max-samples" | "duration"
    observed: int     # records handed to the consumer
    discarded: int    # responses that completed after the stop (not observed)
    elapsed: float
    max_held: int = 0  # most responses that ever waited for an earlier-dispatched one (< concurrency)


_DONE = object()


def sample(probe: Probe, *, concurrency: int, max_samples: int | None, duration: float | None,
           on_record: Callable[[Record], bool], stop: threading.Event | None = None) -> SamplingResult:
    """Run ``concurrency`` workers calling ``probe`` until ``on_record`` returns True, ``max_samples`` records were
    observed, ``duration`` seconds passed or ``stop`` is set. ``on_record`` runs in the calling thread; an
    exception from it (or KeyboardInterrupt) stops the workers and propagates."""
    stop = stop or threading.Event()
    results: queue.Queue[object] = queue.Queue()
    tickets = itertools.count()
    ticket_lock = threading.Lock()

    def worker() -> None:
        try:
            while not stop.is_set():
                with ticket_lock:
                    i = next(tickets)
                if max_samples is not None and i >= max_samples:
                    break
                try:
                    results.put((i, probe(i)))
                except Exception as exc:  # a probe bug must not hang the run: report it as an error response
                    probe.last_error = f"{type(exc).__name__}: {exc}"  # (in its slot, like any failure)
                    results.put((i, Record(time.time(), "grpc", None, None, error_status("client"), 0.0, SOURCE)))
        finally:
            results.put(_DONE)

    started = time.monotonic()
    deadline = started + duration if duration else None
    threads = [threading.Thread(target=worker, name=f"verify-split-{k}", daemon=True) for k in range(concurrency)]
    for thread in threads:
        thread.start()
    observed = discarded = finished = 0
    order: ReorderBuffer[Record] = ReorderBuffer()
    reason = "max-samples"
    try:
        while finished < len(threads):
            wait = 0.1
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - time.monotonic()))
            try:
                item = results.get(timeout=wait) if wait > 0 else results.get_nowait()
            except queue.Empty:
                item = None
            if item is _DONE:
                finished += 1
                continue
            if deadline is not None and time.monotonic() >= deadline and not stop.is_set():
                stop.set()
                reason = "duration"
            if item is None:
                continue
            if stop.is_set():
                discarded += 1
                continue
            assert isinstance(item, tuple)
            ready = order.put(*item)
            for k, record in enumerate(ready):
                observed += 1
                if on_record(record):
                    stop.set()
                    reason = "decided"
                elif max_samples is not None and observed >= max_samples:
                    stop.set()
                    reason = "max-samples"
                if stop.is_set():
                    discarded += len(ready) - k - 1
                    break
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=probe_timeout(probe) + 1.0)
    discarded += order.held  # completed, but an earlier request had not: never observed
    return SamplingResult(reason, observed, discarded, time.monotonic() - started, order.max_held)


def probe_timeout(probe: Probe) -> float:
    return float(getattr(probe, "timeout", 5.0))
