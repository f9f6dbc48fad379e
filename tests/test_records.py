"""The results record format: round trips, the fast path agrees with the general parser, bad lines are counted."""

from __future__ import annotations

import io
import json
import random

import pytest

from splitproof.verifier.inputs.records import (
    ReadStats,
    Record,
    RecordError,
    RecordWriter,
    _parse_general,
    iter_records,
    parse_record,
    read_records,
)


def random_record(rng: random.Random) -> Record:
    version = rng.choice(["production", "canary", None, "v2-ß", "a b"])
    ok = rng.random() < 0.9
    return Record(
        t=rng.uniform(0, 2e9),
        channel=rng.choice(["grpc", "http"]),
        items=rng.choice([None, 0, 2, 4, 5, 12]),
        version=version if ok else None,
        status="ok" if ok else rng.choice(["error:UNAVAILABLE", "error:http_503", 'error:quote"d', "error:tab\t"]),
        latency_ms=rng.choice([0.0, rng.uniform(0, 5000), 1e-7, 123456.789]),
        source=rng.choice([None, "ShopperUser", "verify-split"]),
    )


def test_round_trip_and_fast_path_agree_with_the_general_parser() -> None:
    rng = random.Random(5)
    for _ in range(5_000):
        rec = random_record(rng)
        line = rec.to_json()
        parsed = parse_record(line)
        assert parsed == _parse_general(line)
        assert parsed.channel == rec.channel and parsed.items == rec.items and parsed.version == rec.version
        assert parsed.status == rec.status and parsed.source == rec.source
        assert parsed.t == pytest.approx(rec.t, abs=1e-6) and parsed.latency_ms == pytest.approx(rec.latency_ms,
                                                                                                 abs=1e-3)


@pytest.mark.parametrize("line", [
    # other key order, spaces, escapes, extra fields: valid JSON records the general path takes
    '{"t": 1.5, "v": 1, "channel": "grpc", "items": 5, "version": "production", "status": "ok", "latency_ms": 2}',
    '{"v":1,"t":1.5,"channel":"http","items":4,"version":"prod\\u0075ction","status":"ok","latency_ms":2}',
    '{"v":1,"t":1.5,"channel":"http","items":4,"version":"production","status":"ok","latency_ms":2,"x":1}',
    '{"v":1,"t":1,"channel":"grpc","items":null,"version":null,"status":"error:DEADLINE_EXCEEDED","latency_ms":5e3}',
])
def test_valid_lines_off_the_fast_path(line: str) -> None:
    assert parse_record(line) == _parse_general(line)


@pytest.mark.parametrize("line, reason", [
    ('{"v":1,"t":NaN,"channel":"grpc","items":5,"version":"production","status":"ok","latency_ms":1}', "non-finite"),
    ('{"v":1,"t":1e999,"channel":"grpc","items":5,"version":"production","status":"ok","latency_ms":1}', "non-finite"),
    ('{"v":1,"t":1,"channel":"grpc","items":5,"version":"","status":"ok","latency_ms":1}', "bad version"),
    ('{"v":1,"t":1,"channel":"grpc","items":05,"version":"canary","status":"ok","latency_ms":1}', "not JSON"),
    ('{"v":1,"t":1,"channel":"grpc","items":-1,"version":"canary","status":"ok","latency_ms":1}', "bad items"),
    ('{"v":1,"t":1,"channel":"smtp","items":5,"version":"canary","status":"ok","latency_ms":1}', "unknown channel"),
    ('{"v":2,"t":1,"channel":"grpc","items":5,"version":"canary","status":"ok","latency_ms":1}', "format version"),
    ('{"v":1,"t":1,"channel":"grpc","items":5,"version":"can\x01ary","status":"ok","latency_ms":1}', "not JSON"),
    ('{"v":1,"t":1,"channel":"grpc","items":5,"version":"canary","status":"","latency_ms":1}', "bad status"),
    ('{"v":1,"channel":"grpc","items":5,"version":"canary","status":"ok","latency_ms":1}', "missing field"),
    ("[1, 2]", "not a JSON object"),
    # numbers Python cannot hold or the format does not allow: malformed, never an exception of another kind
    ('{"v":1,"t":1,"channel":"grpc","items":' + "9" * 5000 + ',"version":"canary","status":"ok","latency_ms":1}',
     "too many digits"),
    ('{"v":1,"t":1,"channel":"grpc","items":10000001,"version":"canary","status":"ok","latency_ms":1}', "bad items"),
    ('{"v":1,"t":1' + "0" * 400 + ',"channel":"grpc","items":5,"version":"canary","status":"ok","latency_ms":1}',
     "out of range"),
    ('{"v":1,"t":1,"channel":"grpc","items":5,"version":"canary","status":"ok","latency_ms":-0.5}',
     "negative latency_ms"),
    ('{"status":"ok","v":1,"t":1,"channel":"grpc","items":5,"version":"canary","latency_ms":-2}', "negative latency"),
])
def test_invalid_lines_are_rejected_with_a_reason(line: str, reason: str) -> None:
    with pytest.raises(RecordError, match=reason):
        parse_record(line)


def test_reader_counts_malformed_and_truncated_lines_and_keeps_the_rest(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "run.jsonl"
    with RecordWriter(path) as writer:
        for i in range(10):
            writer.write(Record(float(i), "grpc", 5, "production", "ok", 1.0))
        writer.write_lines(["not json at all", json.dumps({"v": 1})])
        for i in range(5):
            writer.write(Record(float(i), "http", 2, "canary", "ok", 1.0))
        assert writer.count == 17
    with open(path, "a") as fh:
        fh.write('{"v":1,"t":3,"chan')  # a run killed mid-write
    stats = ReadStats()
    versions = [r.version for r in read_records(path, stats)]
    assert versions == ["production"] * 10 + ["canary"] * 5
    assert (stats.lines, stats.valid, stats.malformed, stats.truncated) == (18, 15, 2, 1)
    assert stats.examples[0].startswith("line 11: not JSON") and "truncated" in stats.examples[-1]


def test_an_overlong_line_is_one_malformed_line_read_in_bounded_memory() -> None:
    good = Record(1.0, "grpc", 5, "production", "ok", 1.0).to_json()
    stream = io.StringIO(f"{good}\n" + "x" * 300_000 + f"\n{good}\n" + "y" * 200_000)  # the last one unended
    stats = ReadStats()
    assert len(list(iter_records(stream, stats))) == 2
    assert stats.malformed == 2 and "longer than 65,536 characters" in stats.examples[0]


def test_blank_lines_are_not_counted() -> None:
    stats = ReadStats()
    line = Record(1.0, "grpc", 5, "production", "ok", 1.0).to_json()
    assert len(list(iter_records(io.StringIO(f"\n{line}\n\n{line}\n"), stats))) == 2
    assert (stats.lines, stats.malformed) == (2, 0)


def test_to_json_is_byte_identical_to_the_json_dumps_reference() -> None:
    rng = random.Random(9)
    alphabet = 'abcXYZ09 -_:/"\\\t\n\x01é€😀<>{}'
    for _ in range(20_000):
        def text() -> str:
            return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))

        rec = Record(
            t=rng.choice([rng.uniform(-1e3, 2e9), 0.0, 1e-9, 1e16, 123.4567891]),
            channel=rng.choice(["grpc", "http"]),
            items=rng.choice([None, 0, 5, 10**12]),
            version=rng.choice([None, "production", text()]),
            status=rng.choice(["ok", "error:UNAVAILABLE", text()]),
            latency_ms=rng.choice([0.0, rng.uniform(0, 1e5), 1e-7, 2.5e10]),
            source=rng.choice([None, "ShopperUser", text()]),
        )
        assert rec.to_json() == rec.to_json_reference()
    odd = Record(float("nan"), "grpc", 5, "production", "ok", float("inf"))
    assert odd.to_json() == odd.to_json_reference()  # non-finite: the reference path (and readers reject it)
