"""Dispatch order: the reorder buffer, the sampler and recorder that use it, and the simulated defect it fixes."""

from __future__ import annotations

import random
import threading
import time

import numpy as np
import pytest

from splitproof.loadtest.recording import SplitRecorder
from splitproof.verifier.defaults import ALPHA
from splitproof.verifier.inputs import sampling
from splitproof.verifier.inputs.records import Record, error_status
from splitproof.verifier.inputs.reorder import ReorderBuffer, by_start, dispatch_ordered
from splitproof.verifier.stats.concurrency import closed_loop, false_fail_rates

SPLIT = {"production": 0.8, "canary": 0.2}


# --------------------------------------------------------------------------------------------- the buffer


def test_buffer_releases_in_dispatch_order_whatever_the_completion_order():
    rng = random.Random(3)
    buf: ReorderBuffer[int] = ReorderBuffer()
    seqs = [buf.ticket() for _ in range(200)]
    completion = seqs[:]
    rng.shuffle(completion)
    out: list[int] = []
    for seq in completion:
        out += buf.put(seq, seq)
    assert out == seqs
    assert buf.held == 0 and buf.in_flight == 0


def test_buffer_holds_until_every_earlier_request_completed():
    buf: ReorderBuffer[str] = ReorderBuffer()
    a, b, c = buf.ticket(), buf.ticket(), buf.ticket()
    assert buf.put(c, "c") == []
    assert buf.put(b, "b") == []
    assert buf.held == 2 and buf.in_flight == 3
    assert buf.put(a, "a") == ["a", "b", "c"]


def test_failures_and_timeouts_are_released_in_their_slot():
    buf: ReorderBuffer[str] = ReorderBuffer()
    s = [buf.ticket() for _ in range(4)]
    assert buf.put(s[1], "ok-1") == []
    assert buf.put(s[3], "ok-3") == []
    assert buf.put(s[0], "error:DEADLINE_EXCEEDED") == ["error:DEADLINE_EXCEEDED", "ok-1"]  # a timeout, in slot 0
    assert buf.put(s[2], "error:UNAVAILABLE") == ["error:UNAVAILABLE", "ok-3"]


def test_skipped_slots_release_what_waits_behind_them_and_flush_ends_the_run():
    buf: ReorderBuffer[str] = ReorderBuffer()
    s = [buf.ticket() for _ in range(4)]
    assert buf.put(s[1], "b") == []
    assert buf.skip(s[0]) == ["b"]  # its user was stopped mid-request: nothing to count, nothing to wait for
    assert buf.put(s[3], "d") == []
    assert buf.flush() == ["d"]  # s[2] never completed
    assert buf.held == 0 and buf.in_flight == 0
    assert buf.put(buf.ticket(), "e") == ["e"]


def test_a_slot_released_twice_is_refused():
    buf: ReorderBuffer[str] = ReorderBuffer()
    seq = buf.ticket()
    buf.put(seq, "a")
    with pytest.raises(ValueError):
        buf.put(seq, "again")


def test_memory_is_bounded_by_concurrency_times_the_longest_request():
    """c requests in flight at once, each lasting 1..L steps (L: the timeout), each finished one replaced at once:
    while the oldest is in flight at most c per step complete, so at most c * L ever wait -- whatever the run's
    length; and what is released is exactly dispatch order."""
    rng = random.Random(5)
    for c, longest in ((1, 5), (4, 5), (16, 20)):
        buf: ReorderBuffer[int] = ReorderBuffer()
        ends = {buf.ticket(): rng.randint(1, longest) for _ in range(c)}
        released: list[int] = []
        for step in range(1, 5000):
            for seq in [s for s, end in ends.items() if end <= step]:
                del ends[seq]
                released += buf.put(seq, seq)
                ends[buf.ticket()] = step + rng.randint(1, longest)
        assert buf.max_held <= c * longest
        assert released == list(range(len(released))) and len(released) > 4000 * c // longest


def test_by_start_sorts_a_completion_ordered_stream_within_its_window():
    rng = random.Random(7)
    starts = sorted(rng.uniform(0, 100) for _ in range(2000))
    done = sorted(starts, key=lambda s: s + rng.expovariate(1 / 0.5))  # completion order: start + latency
    assert list(by_start(done, lambda s: s, window=256)) == starts
    assert sorted(by_start(done, lambda s: s, window=1)) == starts  # a tiny window loses nothing, only order


def test_dispatch_ordered_uses_t_minus_latency():
    recs = [Record(10.010, "grpc", 5, "production", "ok", 10.0), Record(10.003, "grpc", 2, "canary", "ok", 2.0)]
    recs.sort(key=lambda r: r.t)  # the file's order: completion
    assert [r.version for r in dispatch_ordered(recs)] == ["production", "canary"]  # sent at 10.000 and 10.001


# --------------------------------------------------------------------------------------------- the sampler


class SlowProductionProbe:
    """In-process probe: request i goes to a version drawn from its own seeded generator; production answers
    slower. Request 3 raises (a probe bug: an error record in its slot)."""

    target = "in-process"
    last_error = ""
    timeout = 1.0

    def __init__(self) -> None:
        self.versions: dict[int, str] = {}
        self.lock = threading.Lock()

    def check(self, timeout: float) -> None:
        pass

    def __call__(self, i: int) -> Record:
        version = "canary" if random.Random(i).random() < 0.2 else "production"
        with self.lock:
            self.versions[i] = version
        if i == 3:
            raise RuntimeError("probe bug")
        time.sleep(0.012 if version == "production" else 0.001)
        return Record(time.time(), "grpc", 2 if version == "canary" else 5, version, "ok", 1.0, str(i))

    def close(self) -> None:
        pass


def test_the_sampler_hands_records_over_in_dispatch_order():
    probe = SlowProductionProbe()
    seen: list[Record] = []
    result = sampling.sample(probe, concurrency=8, max_samples=120, duration=30.0,
                             on_record=lambda rec: seen.append(rec) is not None)
    assert result.stop_reason == "max-samples" and result.observed == 120
    assert seen[3].status == error_status("client")  # the failure, in its slot
    assert [int(r.source) for r in seen if r.source != "verify-split"] == [i for i in range(120) if i != 3]
    assert [r.version for k, r in enumerate(seen) if k != 3] == [probe.versions[i] for i in range(120) if i != 3]
    assert result.max_held <= 8 * 14  # concurrency x (slow / fast latency + 1)


def test_the_sampler_stops_at_the_decision_of_a_dispatch_order_prefix():
    probe = SlowProductionProbe()
    seen: list[Record] = []
    result = sampling.sample(probe, concurrency=8, max_samples=None, duration=30.0,
                             on_record=lambda rec: seen.append(rec) is None and len(seen) >= 40)
    assert result.stop_reason == "decided" and result.observed == 40 == len(seen)
    assert [int(r.source) for k, r in enumerate(seen) if k != 3] == [i for i in range(40) if i != 3]


# --------------------------------------------------------------------------------------------- Locust's recorder


def _rec(version: str | None, status: str = "ok") -> Record:
    return Record(1.0, "grpc", 5 if version == "production" else 2, version, status, 1.0)


def test_the_recorder_writes_at_once_but_observes_in_dispatch_order(tmp_path):
    from splitproof.loadtest.recording import open_results

    out = tmp_path / "r.jsonl"
    recorder = SplitRecorder("local", open_results(out, append=False))
    seen: list[str | None] = []
    recorder.observers.append(lambda version, cause: seen.append(version))
    a, b, c = recorder.dispatch(), recorder.dispatch(), recorder.dispatch()
    recorder.add(_rec("canary"), c)
    recorder.add(_rec(None, "error:UNAVAILABLE"), b)
    assert seen == [] and out.read_bytes().count(b"\n") == 2  # nothing measured is held back from the file
    recorder.add(_rec("production"), a)
    assert seen == ["production", None, "canary"]
    d, e = recorder.dispatch(), recorder.dispatch()
    recorder.add(_rec("canary"), e)
    recorder.skip(d)
    assert seen[-1] == "canary"
    recorder.add(_rec("production"), recorder.dispatch())
    recorder.dispatch()  # never completes: released at close
    recorder.add(_rec("canary"), recorder.dispatch())
    recorder.close()
    assert seen[-2:] == ["production", "canary"] and out.read_bytes().count(b"\n") == 6


def test_a_worker_sends_its_batches_in_dispatch_order():
    worker = SplitRecorder("worker")
    s = [worker.dispatch() for _ in range(3)]
    worker.add(_rec("canary"), s[2])
    worker.add(_rec("canary"), s[1])
    report: dict = {}
    worker.drain_into(report)
    assert report == {}  # nothing released yet: the oldest request is still in flight
    worker.add(_rec("production"), s[0])
    worker.drain_into(report)
    assert report["splitproof_records"]["versions"] == ["production", "canary", "canary"]


# --------------------------------------------------------------------------------------------- the defect, simulated


def test_the_simulated_streams_are_what_the_buffer_releases():
    """The simulation's dispatch order is exactly what ReorderBuffer makes of its completion order."""
    rng = np.random.default_rng(11)
    truth, latency = np.array([0.8, 0.2]), np.array([10.0, 2.0])
    versions = rng.choice(2, size=(4, 30), p=truth)
    lat = rng.exponential(1.0, size=versions.shape) * latency[versions]
    done = np.cumsum(lat, axis=1)
    sent = done - lat
    order = sorted((sent[w, j], w, j) for w in range(4) for j in range(30))
    seq = {(w, j): k for k, (_, w, j) in enumerate(order)}
    buf: ReorderBuffer[int] = ReorderBuffer()
    released: list[int] = []
    for _, w, j in sorted((done[w, j], w, j) for w in range(4) for j in range(30)):
        released += buf.put(seq[(w, j)], int(versions[w, j]))
    assert released == [int(versions[w, j]) for _, w, j in order]


def test_burst_start_completions_are_the_fast_versions():
    load = closed_loop(np.array([0.8, 0.2]), np.array([10.0, 2.0]), concurrency=12, runs=2000, horizon=12,
                       rng=np.random.default_rng(2))
    canary_first = float(np.mean(load.completion[:, 0] == 1))
    assert abs(float(np.mean(load.dispatch[:, 0] == 1)) - 0.2) < 0.03  # dispatch order: the true 20%
    assert canary_first > 0.4  # completion order: the canary's at least twice as often as it should be


def test_completion_order_inflates_false_fails_and_dispatch_order_does_not():
    """A correct 80/20 split, 12 clients starting at once, canary 5x faster: fed in completion order the gate's
    false-FAIL rate is several times alpha; fed in dispatch order (the buffer) it stays within alpha."""
    runs = 1500
    rates = false_fail_rates(SPLIT, {"production": 10.0, "canary": 2.0}, concurrency=12, runs=runs, horizon=1000,
                             seed=18)
    slack = 3 * (ALPHA * (1 - ALPHA) / runs) ** 0.5
    assert rates.completion_fail > 2 * ALPHA, rates
    assert rates.dispatch_fail <= ALPHA + slack, rates


def test_a_replay_releases_lines_behind_the_slack_and_never_a_fast_burst_ahead_of_slower_earlier_requests() -> None:
    """dispatch_ordered on a stream that never ends: lines dispatched more than the slack before the latest
    completion come out as they arrive; at a burst start the fast answers wait for the slow ones sent before them."""
    from splitproof.verifier.inputs.records import Record
    from splitproof.verifier.inputs.reorder import dispatch_ordered

    def rec(start: float, latency_s: float, version: str) -> Record:
        return Record(start + latency_s, "grpc", 2, version, "ok", latency_s * 1000)

    # a burst at t=0: 5 fast canary answers first (5 ms), then 5 production answers sent earlier (200 ms)
    burst = [rec(0.001 * (2 * i + 1), 0.005, "canary") for i in range(5)]
    burst += [rec(0.001 * (2 * i), 0.2, "production") for i in range(5)]
    out = list(dispatch_ordered(iter(burst)))
    assert [r.version for r in out] == ["production", "canary"] * 5  # exactly the dispatch order

    def endless():
        for i in range(200):
            yield rec(float(i), 0.5, "canary")
        raise AssertionError("read past what was needed")  # a pipe whose writer never closes

    got = []
    for r in dispatch_ordered(endless(), slack_s=60.0):
        got.append(r)
        if len(got) == 100:
            break
    assert [r.t for r in got] == [i + 0.5 for i in range(100)]
