"""The one tally and the one verify() function: every way in gives the verdict the judges give on the same counts."""

from __future__ import annotations

import dataclasses
import random
from argparse import Namespace

import pytest

from splitproof.loadtest.ending import RUN_TIME_LIMIT, STOPPED
from splitproof.loadtest.live import LiveSplit
from splitproof.loadtest.options import config_from_options
from splitproof.verifier import Batch, InputError, Method, Outcome, Record, SequentialGate, Tally, judge, verify
from splitproof.verifier.telemetry.result import TelemetryCounts
from splitproof.verifier.telemetry.window import Window

SPLIT = {"production": 0.8, "canary": 0.2}


def stream(n: int, canary: float, seed: int = 4, errors: float = 0.0) -> list[str | None]:
    rng = random.Random(seed)
    out: list[str | None] = []
    for _ in range(n):
        if rng.random() < errors:
            out.append(None)
        else:
            out.append("canary" if rng.random() < canary else "production")
    return out


def counts_of(versions: list[str | None]) -> tuple[dict[str, int], int]:
    counts: dict[str, int] = {}
    for v in versions:
        if v is not None:
            counts[v] = counts.get(v, 0) + 1
    return counts, versions.count(None)


def test_fixed_n_verify_is_judge_on_the_counts() -> None:
    versions = stream(1500, 0.2, errors=0.002)
    counts, unattributed = counts_of(versions)
    a = verify(versions, SPLIT)
    b = judge(counts, unattributed, SPLIT)
    assert (a.outcome, a.reason, a.rows, a.unattributed_row) == (b.outcome, b.reason, b.rows, b.unattributed_row)
    assert a.method is Method.FIXED_N and a.unattributed_causes == ({"unattributed": unattributed} if unattributed
                                                                    else {})


def test_sequential_verify_is_the_gate_and_stops_reading_at_its_decision() -> None:
    versions = stream(5000, 0.5)
    gate = SequentialGate(SPLIT)
    for v in versions:
        gate.observe(v)
    consumed = []

    def source():  # type: ignore[no-untyped-def]
        for v in versions:
            consumed.append(v)
            yield v

    verdict = verify(source(), SPLIT, method="sequential")
    assert verdict.outcome is Outcome.FAIL and verdict == gate.verdict()
    assert len(consumed) == verdict.total < 300  # nothing read past the decision


def test_count_batches_feed_the_gate_at_batch_boundaries() -> None:
    """Batch objects, plain mappings and telemetry results go through SequentialGate.observe_counts exactly."""
    batches = [({"production": 400, "canary": 100}, 2), ({"production": 390, "canary": 110}, 0),
               ({"production": 410, "canary": 90}, 1)]
    gate = SequentialGate(SPLIT)
    for counts, u in batches:
        gate.observe_counts(counts, u)
    telemetry = [TelemetryCounts(counts=c, unattributed={"no subset": u} if u else {}, window=Window(0.0, 60.0),
                                 source="test") for c, u in batches]
    for observations in (telemetry, [Batch(c, {"no subset": u}) for c, u in batches]):
        v = verify(observations, SPLIT, method="sequential")
        assert (v.outcome, v.rows, v.log_e_value) == (gate.verdict().outcome, gate.verdict().rows,
                                                       gate.verdict().log_e_value)
        assert v.unattributed_causes == {"no subset": 3} and v.method_details["batches"] == 3
    tally = Tally(SPLIT, method="sequential")
    for counts, u in batches:
        tally.add_counts(counts, u)
    assert tally.verdict().rows == gate.verdict().rows and tally.causes == {"unattributed": 3}


def test_a_failed_record_is_unattributed_whatever_version_it_names() -> None:
    tally = Tally(SPLIT)
    tally.record(Record(1.0, "grpc", None, "canary", "error:UNAVAILABLE", 1.0))
    tally.record(Record(2.0, "grpc", 3, None, "ok", 1.0))
    tally.record(Record(3.0, "grpc", 5, "production", "ok", 1.0))
    assert tally.counts == {"production": 1} and tally.unattributed == 2 and tally.ok == 2
    assert tally.causes == {"error:UNAVAILABLE": 1, "grpc reply with 3 items": 1}


def test_the_locust_live_split_is_the_same_tally() -> None:
    """LiveSplit's two verdicts are verify()'s on the same responses: fixed-n for a -t run, the gate otherwise."""
    versions = stream(3000, 0.2, seed=8, errors=0.001)
    live = LiveSplit(config_from_options(Namespace(expected="20")))
    causes = ["error:http_503"] * versions.count(None)
    live.observe(versions, causes)
    fixed = live.final_verdict(RUN_TIME_LIMIT)
    assert fixed == dataclasses.replace(verify(versions, SPLIT), unattributed_causes=fixed.unattributed_causes)
    assert fixed.unattributed_causes == ({"error:http_503": len(causes)} if causes else {})
    sequential, gate = live.final_verdict(STOPPED), verify(versions, SPLIT, method="sequential")
    assert sequential.method is Method.SEQUENTIAL and (sequential.outcome, sequential.rows) == (gate.outcome, gate.rows)


def test_an_unknown_observation_is_an_input_error() -> None:
    with pytest.raises(InputError, match="not an observation"):
        verify([3.5], SPLIT)  # type: ignore[list-item]
    with pytest.raises(InputError):
        Tally(SPLIT).add_counts({"production": -1})


def test_telemetry_batches_feed_the_health_monitor_from_the_same_tally() -> None:
    """A canary answering 5% errors (by status) FAILs health while its split PASSes; unknown statuses count neither
    way."""
    from splitproof.verifier import HealthMonitor
    from splitproof.verifier.telemetry.result import StatusKey

    tally = Tally(SPLIT, method="sequential", health=HealthMonitor(list(SPLIT), "production"))
    for _ in range(6):
        by_status = {("production", StatusKey("200")): 800, ("canary", StatusKey("200")): 190,
                     ("canary", StatusKey("503", flags="UH")): 10, ("production", StatusKey()): 7}
        counts = {"production": 807, "canary": 200}
        tally.add_batch(TelemetryCounts(counts=counts, unattributed={}, window=Window(0.0, 60.0), source="t",
                                        by_status=by_status))
    health = tally.health_verdict()
    assert health.outcome is Outcome.FAIL and health.method is Method.SEQUENTIAL
    row = health.metric("errors").rows[0]  # frozen at its decision, after the first batch
    assert (row.n, row.bad, row.baseline_n, row.baseline_bad) == (200, 10, 800, 0)  # the 7 unknown left out
    assert tally.total == 6 * 1007
    with pytest.raises(InputError, match="statuses"):
        tally.add_batch(Batch({"production": 8, "canary": 2}))


def test_the_locust_live_tab_shows_the_sequential_verdicts_interval() -> None:
    from splitproof.verifier import fmt

    live = LiveSplit(config_from_options(Namespace(expected="20")))
    live.observe(stream(300, 0.2, seed=2))
    assert not live.decided
    rows = {r["version"]: r["interval"] for r in live.rows()}
    for row in live.gate.verdict().rows:
        assert rows[row.version] == f"{fmt.pct(row.lo, missing='-')} - {fmt.pct(row.hi, missing='-')}"


def test_one_count_batch_may_be_given_as_it_is() -> None:
    assert verify({"production": 800, "canary": 200}, SPLIT) == judge({"production": 800, "canary": 200}, 0, SPLIT)
    assert verify(Batch({"production": 800, "canary": 200}), SPLIT).n == 1000
    with pytest.raises(InputError, match="not a string"):
        verify("production", SPLIT)
