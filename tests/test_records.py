"""The results record format: round trips, the fast path agrees with the general parser, bad lines are counted."""

from __future__ import annotations

import io
import json
import math
import random

import pytest
from helpers import require_built

from splitproof.verifier.inputs import recordline
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


@pytest.mark.parametrize("places", [6, 3])
def test_the_fast_number_text_is_the_repr_of_the_rounded_number(places: int) -> None:
    """to_json writes t and latency_ms by one fixed-point conversion where that provably equals
    repr(round(x, places)) -- checked at every magnitude, at the guard's bounds and at rounding ties."""
    below = recordline.T_BELOW if places == 6 else recordline.LATENCY_BELOW
    rng = random.Random(places)
    xs = [0.0, -0.0, 1e-4, math.nextafter(1e-4, 0), below, math.nextafter(below, 0), 1e16, 5e-5, 0.5e-6, 2.5e-3,
          1764000000.0, 1764000000.0000005, 0.1 + 0.2, 1.0005, 2.675, 1e-3, 999.9995, 123456789.123456789]
    for _ in range(60_000):
        x = rng.uniform(1, 10) * 10.0 ** rng.randint(-9, 18)
        xs.append(-x if rng.random() < 0.1 else x)
        xs.append(round(x, rng.randint(0, places + 2)) + rng.choice([0.0, 5 * 10.0 ** -(places + 1)]))
        xs.append(math.nextafter(x, rng.choice([0.0, math.inf])))
    for x in xs:
        assert recordline.decimal(x, places, below) == repr(round(x, places)), x
    assert recordline.decimal(math.inf, places, below) is None and recordline.decimal(math.nan, places, below) is None


def test_the_c_record_line_writer_is_built() -> None:
    """Built at install wherever a compiler is (as the records scanner: tests/test_bulk_records.py)."""
    require_built("splitproof.verifier.inputs._line", recordline.LINE_C is not None,
                  "record lines are written in Python (the same bytes, slower)")


def test_to_line_is_to_json_with_its_newline_for_every_number() -> None:
    """The C line (verifier/inputs/_line.c) against the Python one, byte for byte: numbers of every magnitude, both
    sides of each bound of the C range, rounding ties at 6 and 3 decimals, negative and non-finite ones (which the
    C writer hands back to Python), and the line parts of random versions, statuses and sources."""
    if recordline.LINE_C is None:
        pytest.skip("the C record line writer is not built")
    rng = random.Random(16)
    bounds = [1e-4, recordline.T_BELOW, recordline.LATENCY_BELOW]
    edges = [x for b in bounds for x in (b, math.nextafter(b, 0), math.nextafter(b, math.inf))]
    ties = [k / 128 for k in range(1, 400)] + [k / 16 + 1764000000 for k in range(64)]  # ..5 at the 7th/4th decimal
    specials = [0.0, -0.0, -1.5, math.inf, -math.inf, math.nan, 1e16, 1.0, 1764000000.0, 0.1 + 0.2, 2.675, 999.9995]
    numbers = edges + ties + specials
    c_taken = 0
    for _ in range(60_000):
        def number() -> float:
            if rng.random() < 0.3:
                return rng.choice(numbers)
            return rng.uniform(1, 10) * 10.0 ** rng.randint(-9, 16)

        rec = Record(number(), rng.choice(["grpc", "http"]), rng.choice([None, 0, 2, 4, 5]),
                     rng.choice([None, "production", "canary", 'v"2', "caf\u00e9"]),
                     rng.choice(["ok", "error:UNAVAILABLE", "error:tab\t"]), number(),
                     rng.choice([None, "ShopperUser", "RecommendationUser"]), rng.choice([None, "header"]))
        want = (rec.to_json() + "\n").encode("utf-8")
        assert rec.to_line() == want, rec
        c_taken += recordline.LINE_C(rec, {}, recordline.parts(*rec[1:5], *rec[6:])) is not None
    assert c_taken > 10_000  # the C path really wrote lines (not only handed them back)
    with pytest.raises(TypeError):
        recordline.LINE_C(("not", "a record"), recordline.PARTS)
    with pytest.raises(TypeError):
        recordline.LINE_C(rec, {(rec.channel, rec.items, rec.version, rec.status, rec.source, rec.by): "not parts"})
    unseen = Record(1.5, "http", 4, "production", "ok", 2.0, "never seen")
    assert recordline.LINE_C(unseen, {}) is None  # parts not kept: the caller makes them
    assert unseen.to_line() == (unseen.to_json() + "\n").encode()


def test_to_line_keeps_the_parts_of_each_kind_of_record_for_the_c_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first line of a kind makes its parts and keeps them; the next ones are found by the C writer itself."""
    if recordline.LINE_C is None:
        pytest.skip("the C record line writer is not built")
    monkeypatch.setattr(recordline, "PARTS", {})
    first, second = (Record(1764000000.25 + i, "http", 4, "production", "ok", 3.5, "ShopperUser") for i in range(2))
    assert recordline.LINE_C(second, recordline.PARTS) is None
    assert first.to_line() == (first.to_json() + "\n").encode()
    assert len(recordline.PARTS) == 1
    assert recordline.LINE_C(second, recordline.PARTS) == second.to_line() == (second.to_json() + "\n").encode()


# ------------------------------------------------------------------ the memory-mapped writer and its NUL padding


def _line(i: int) -> str:
    return Record(1.5 + i, "grpc", 5, "production", "ok", 2.25, "RecommendationUser").to_json()


def _read(data: bytes) -> tuple[list[Record], ReadStats]:
    stats = ReadStats()
    fh = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace", newline="")
    return list(iter_records(fh, stats)), stats


@pytest.mark.parametrize("pad", [1, 4096, 70_000, 300_000])
def test_nul_padding_at_the_end_is_the_end_of_the_data(pad: int) -> None:
    body = "".join(f"{_line(i)}\n" for i in range(3)).encode()
    got, stats = _read(body + b"\0" * pad)
    assert len(got) == 3 and (stats.lines, stats.malformed, stats.truncated) == (3, 0, 0)
    cut = _line(3).encode()[:25]  # killed mid-copy: a torn last line, then the padding
    got, stats = _read(body + cut + b"\0" * pad)
    assert len(got) == 3 and (stats.malformed, stats.truncated) == (0, 1)
    whole = _line(3).encode()  # killed between the record and its newline: the record counts, as without padding
    assert len(_read(body + whole + b"\0" * pad)[0]) == 4


@pytest.mark.parametrize("pad", [1, 70_000])
def test_nuls_that_do_not_reach_the_end_are_content(pad: int) -> None:
    body = f"{_line(0)}\n".encode()
    got, stats = _read(body + b"\0" * pad + b"\n" + body)  # NULs, then more data: a malformed line
    assert len(got) == 2 and stats.malformed == 1 and stats.truncated == 0
    got, stats = _read(body + b"\0" * pad + b"x")  # NULs inside the last line
    assert len(got) == 1 and stats.malformed + stats.truncated == 1
    assert _read(body + b"x" * 70_000 + b"\0" * pad)[1].malformed == 1  # an overlong line stays overlong


def test_writer_crosses_windows_and_leaves_no_padding_on_close(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from splitproof.verifier.inputs import appendfile

    monkeypatch.setattr(appendfile, "WINDOW", 8192)
    path = tmp_path / "out.jsonl"
    lines = [_line(i) for i in range(400)]
    with RecordWriter(path) as writer:
        assert writer._file is not None and writer._file.mapped
        for i in range(100):
            writer.write(parse_record(lines[i]))
        writer.write_lines(lines[100:300])  # one batch larger than a window
        assert path.stat().st_size > path.read_bytes().rstrip(b"\0").__len__()  # padded while open
        for i in range(300, 400):
            writer.write(parse_record(lines[i]))
    assert path.read_text() == "".join(f"{line}\n" for line in lines)  # exact: no padding after close


def test_appending_to_a_killed_writers_file_writes_over_its_padding(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "out.jsonl"
    path.write_bytes(f"{_line(0)}\n".encode() + _line(1).encode()[:30] + b"\0" * 5000)  # torn line + padding
    with RecordWriter(path) as writer:
        writer.write(parse_record(_line(2)))
    data = path.read_bytes()
    assert b"\0" not in data
    got, stats = _read(data)
    assert len(got) == 2 and stats.malformed == 1  # the torn line is ended, not joined to the next record


def test_a_fifo_is_written_with_write_calls(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    with RecordWriter(fifo) as writer:
        assert writer._file is not None and not writer._file.mapped
        for i in range(50):
            writer.write(parse_record(_line(i)))
        writer.write_lines([_line(50)])
    reader.join(timeout=30)
    assert got == ["".join(f"{_line(i)}\n" for i in range(51)).encode()]

