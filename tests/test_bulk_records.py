"""The bulk reader (verifier/inputs/bulk.py) against the exact reader: the same records, in the same order, the same
counts, reasons, examples and line numbers, on seeded random mixes of canonical, non-canonical, malformed, truncated
and huge-number lines -- and the same verdicts and HTML timelines through verify-split's replay."""

from __future__ import annotations

import dataclasses
import io
import json
import random
from collections import Counter
from pathlib import Path

import pytest
from helpers import require_built

from splitproof.verifier.command import replay
from splitproof.verifier.command.prepare import TimelineSink
from splitproof.verifier.expected import from_canary_percent
from splitproof.verifier.inputs import bulk, extensions
from splitproof.verifier.inputs.attribution import Attribution
from splitproof.verifier.inputs.records import ReadStats, Record, iter_records
from splitproof.verifier.inputs.reorder import dispatch_ordered
from splitproof.verifier.reports.timeline import Timeline, bin_thresholds, latency_bin, latency_bins
from splitproof.verifier.tally import Tally
from splitproof.verifier.verdict import Method

SCANNERS = {"c": extensions.optional("_scan", "scan"), "regex": bulk.scan_regex}


@pytest.fixture(autouse=True, params=sorted(SCANNERS))
def scanner(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs with both scanners: the C one and the regex one recognise the same lines."""
    scan = SCANNERS[request.param]
    if scan is None:
        pytest.skip("the C scanner is not built (no compiler at install): see test_the_c_scanner_is_built")
    monkeypatch.setattr(bulk, "SCAN", scan)
    return request.param


VERSIONS = ["production", "canary", "v2", "canário", "a,b:c", "x" * 1000, "y" * 1001, None]
STATUSES = ["ok", "ok", "ok", "error:UNAVAILABLE", "error:http_503", "error:no_recommendations"]


def canonical(rng: random.Random) -> str:
    t = rng.choice([1_764_000_000 + rng.random() * 1e5, rng.random(), 0.0, 1e16, 123.0, 1e-7])
    rec = Record(t, rng.choice(["grpc", "http"]), rng.choice([None, 0, 2, 5, 999_999, 1_000_000]),
                 rng.choice(VERSIONS), rng.choice(STATUSES), rng.choice([rng.uniform(0, 20), 0.0, 0.0004, 1e17]),
                 rng.choice([None, None, "ShopperUser", "RecommendationUser", "", "s" * 1001]))
    return rec.to_json()


def other(rng: random.Random) -> str:
    """Valid but not in RecordWriter's exact shape, or malformed, or hostile."""
    line = canonical(rng)
    obj = json.loads(line)
    choices = [
        lambda: json.dumps(obj),                                        # spaces
        lambda: json.dumps(dict(reversed(list(obj.items())))),         # another key order
        lambda: line.replace('"t":', '"t":-', 1),                       # negative time (valid)
        lambda: line.replace('"latency_ms":', '"latency_ms":-', 1),     # negative latency (malformed)
        lambda: line.replace('"t":', '"t":0', 1),                        # leading zero (not JSON)
        lambda: line.replace('"t":', '"t":' + "9" * 400, 1),            # huge number: infinite
        lambda: line.replace('"t":', '"t":' + "9" * 20, 1),
        lambda: line.replace('"latency_ms":', '"latency_ms":1' + "0" * 5000, 1),
        lambda: line.replace('"v":1', '"v":2'),
        lambda: line.replace('"v":1', '"v":1.0'),
        lambda: line.replace('"channel":"', '"channel":"x'),
        lambda: line.replace('"items":', '"items":1234567', 1) if '"items":null' not in line else line[:-3],
        lambda: line.replace('"items":', '"items":0', 1),
        lambda: line[: rng.randrange(len(line))],                       # cut
        lambda: line + "x",
        lambda: " " + line + "\t",
        lambda: line.replace('"status":"', '"status":"\\u0041', 1),      # an escape (valid)
        lambda: line.replace("ok", "o\rk"),                              # a carriage return splits the line
        lambda: "",
        lambda: "   ",
        lambda: "[1, 2]",
        lambda: "{" * rng.randrange(1, 50),
        lambda: "1" * 5000,
        lambda: "x" * 70_000,                                            # longer than MAX_LINE
        lambda: line.replace('"t":', '"t":1.', 1),
        lambda: line.replace('"t":', '"t":1e', 1),
        lambda: line.replace(",", ",\x00", 1),
        lambda: line.replace('"latency_ms":', '"latency_ms":.5', 1),
    ]
    return rng.choice(choices)()


def make_file(rng: random.Random, n: int, bad_share: float) -> bytes:
    lines = [other(rng) if rng.random() < bad_share else canonical(rng) for _ in range(n)]
    data = "\n".join(lines).encode("utf-8")
    if rng.random() < 0.3:
        data = data.replace(b"\xc3\xa1", b"\xc3", 1)  # invalid UTF-8 somewhere
    if rng.random() < 0.5:
        data += b"\n"  # else the last line is unterminated (truncated, or a complete record without newline)
    return data


def exact(data: bytes) -> tuple[list[Record], ReadStats]:
    stats = ReadStats()
    fh = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace", newline="")
    return list(iter_records(fh, stats)), stats


def bulk_read(data: bytes, values: bool) -> tuple[list[Record], ReadStats, int]:
    stats = ReadStats()
    out: list[Record] = []
    runs = 0
    for item in bulk.iter_blocks(io.BytesIO(data), stats, values):
        if isinstance(item, Record):
            out.append(item)
            continue
        runs += len(item)
        stats.lines += len(item)
        stats.valid += len(item)
        recs = list(item.records())
        assert [item.record(i) for i in range(len(item))] == recs
        assert [bulk.template(key)._replace(t=r.t, latency_ms=r.latency_ms, source=r.source)
                for key, r in zip(item.line_keys(), recs, strict=True)] == recs
        out.extend(recs)
    return out, stats, runs


def strip_values(recs: list[Record]) -> list[tuple]:
    return [(r.channel, r.items, r.version, r.status) for r in recs]


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("block", [64, 997, 1 << 20])
def test_bulk_reader_equals_exact_reader(seed: int, block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "BLOCK", block)
    rng = random.Random(seed * 7 + block)
    data = make_file(rng, rng.choice([1, 5, 60, 400]), rng.choice([0.0, 0.02, 0.3, 0.9]))
    want, want_stats = exact(data)
    got, got_stats, _ = bulk_read(data, values=True)
    assert got == want  # every field, in order
    assert got_stats == want_stats  # counts, and the same examples with the same line numbers
    keys_only, keys_stats, _ = bulk_read(data, values=False)
    assert strip_values(keys_only) == strip_values(want)
    assert keys_stats == want_stats
    counted, counted_stats = bulk_counts(data)
    assert counted == Counter(strip_values(want))
    assert counted_stats == want_stats


def bulk_counts(data: bytes) -> tuple[Counter, ReadStats]:
    stats = ReadStats()
    out: Counter = Counter()
    for item in bulk.iter_blocks(io.BytesIO(data), stats, counts_only=True):
        if isinstance(item, Record):
            out[strip_values([item])[0]] += 1
            continue
        stats.lines += len(item)
        stats.valid += len(item)
        pairs = item.counts.items() if isinstance(item, bulk.Counted) else item.key_counts().items()
        for key, c in pairs:
            out[strip_values([bulk.template(key)])[0]] += c
    return out, stats


def test_counted_blocks_learn_new_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "BLOCK", 2048)
    lines = [Record(1.5 + i, "grpc", 5 if i < 300 else 2, "production" if i < 300 else "canary", "ok", 1.25)
             .to_json() for i in range(600)]
    data = ("\n".join(lines) + "\n").encode()
    items = list(bulk.iter_blocks(io.BytesIO(data), ReadStats(), counts_only=True))
    assert all(isinstance(item, bulk.Counted) for item in items)
    got: Counter = Counter()
    for item in items:
        got.update(item.counts)
    assert sorted(got.values()) == [300, 300]


def test_the_fast_path_takes_canonical_lines() -> None:
    """A test that could not fail if the regex matched nothing: RecordWriter's lines are vouched in bulk."""
    rng = random.Random(3)
    lines = [Record(1_764_000_000.5 + i, "grpc", 5, "production", "ok", rng.uniform(0.1, 9), "ShopperUser")
             .to_json() for i in range(1000)]
    data = ("\n".join(lines) + "\n" + "garbage\n" + lines[0] + "\n").encode()
    got, stats, vouched = bulk_read(data, values=True)
    assert vouched == 1001 and stats.malformed == 1 and stats.examples == ["line 1001: not JSON (Expecting value)"]
    assert got == exact(data)[0]


def test_a_line_without_end_is_read_by_the_streaming_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "BLOCK", 4096)
    line = canonical(random.Random(1))
    data = (line + "\n" + "z" * 300_000 + "\n" + line + "\n").encode()
    got, stats, _ = bulk_read(data, values=True)
    want, want_stats = exact(data)
    assert got == want and stats == want_stats and stats.malformed == 1


def test_vectorised_bins_equal_latency_bin() -> None:
    """latency_bins (numpy's log10, corrected against the thresholds) is the scalar function at every edge, either
    side of it, and on random latencies at every magnitude -- and so is a binary search over the thresholds."""
    import math

    import numpy as np

    rng = random.Random(5)
    thresholds = np.array(bin_thresholds())
    edges = [float(t) for t in thresholds]
    edges += [math.nextafter(t, 0) for t in edges] + [math.nextafter(t, math.inf) for t in edges]
    xs = edges + [0.0, 0.05, 0.5, 5.0, 50.0, 1e9, 1e300, 1e-300] + [rng.uniform(0, 200) for _ in range(20_000)] + \
        [round(rng.uniform(0, 20), 3) for _ in range(20_000)] + [rng.uniform(1, 10) * 10.0 ** rng.randint(-6, 9)
                                                                   for _ in range(40_000)]
    want = [latency_bin(x) for x in xs]
    assert [int(b) for b in latency_bins(np.array(xs))] == want
    assert [int(b) for b in np.searchsorted(thresholds, np.array(xs), side="right")] == want


# ----------------------------------------------------------------------------------------- through the replay


def replay_exact(path: Path, tally: Tally, attribution: Attribution | None) -> tuple[ReadStats, bool]:
    """verify-split's replay loop as it was before the bulk reader: every record through Tally.record (in dispatch
    order for the sequential gate)."""
    stats = ReadStats()
    data = path.read_bytes()
    fh = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace", newline="")
    seen = [0, 0]
    stopped = False

    def catch_up() -> None:
        while seen[0] < stats.malformed:
            seen[0] += 1
            tally.observe(None, replay.CAUSE_MALFORMED)
        while seen[1] < stats.truncated:
            seen[1] += 1
            tally.observe(None, replay.CAUSE_TRUNCATED)

    records = iter_records(fh, stats)
    if tally.method == Method.SEQUENTIAL:  # the sequential gate reads dispatch order (verifier/inputs/reorder.py)
        records = dispatch_ordered(records)
    for rec in records:
        catch_up()
        if tally.done:
            stopped = True
            break
        tally.record(rec, attribution)
    if not stopped:
        catch_up()
    return stats, stopped


def split_file(rng: random.Random, n: int, canary: float, bad_share: float) -> bytes:
    lines = []
    for i in range(n):
        if rng.random() < bad_share:
            lines.append(other(rng))
            continue
        r = rng.random()
        status = "ok" if r > 0.01 else "error:UNAVAILABLE"
        version, items = ("canary", 2) if rng.random() < canary else ("production", 5)
        if rng.random() < 0.01:
            version = None
        lines.append(Record(1_764_000_000 + i * 0.01, rng.choice(["grpc", "http"]), items, version, status,
                            rng.uniform(0.2, 30), "ShopperUser").to_json())
    return ("\n".join(lines) + ("\n" if rng.random() < 0.7 else "")).encode()


def timeline_state(tl: Timeline) -> dict:
    return {"t0": tl.t0, "stride": tl.stride, "n": (tl.n_attributed, tl.n_unattributed),
            "counts": list(tl.counts.items()), "checkpoints": [dataclasses.astuple(c) for c in tl.checkpoints],
            "latency": list(tl.latency.items()), "errors": list(tl.errors.items())}


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("mode", ["fixed", "fixed-html", "sequential", "max-samples", "classes"])
def test_replay_verdicts_equal_the_record_by_record_path(seed: int, mode: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "BLOCK", 4096)
    rng = random.Random(seed)
    path = tmp_path / "r.jsonl"
    path.write_bytes(split_file(rng, rng.choice([300, 3000]), rng.choice([0.2, 0.5]), rng.choice([0, 0.01, 0.2])))
    expected = from_canary_percent(20)
    method = Method.SEQUENTIAL if mode == "sequential" else Method.FIXED_N
    attribution = Attribution.with_overrides(["canary=5", "production=2"]) if mode == "classes" else None

    def tally() -> Tally:
        sinks = [TimelineSink()] if mode == "fixed-html" else []
        return Tally(expected, method=method, sinks=sinks, max_samples=777 if mode == "max-samples" else None)

    old, new = tally(), tally()
    try:
        want = replay_exact(path, old, attribution)
    except Exception:  # noqa: BLE001 -- compare "no valid records" the same way
        want = None
    try:
        got = replay.observe_results(str(path), new, attribution)
    except Exception:  # noqa: BLE001
        got = None
    if want is None:
        assert got is None
        return
    assert got == want
    old.close()
    new.close()
    assert new.verdict() == old.verdict()
    assert (new.counts, new.causes, new.ok, new.unattributed) == (old.counts, old.causes, old.ok, old.unattributed)
    assert list(new.causes) == list(old.causes)  # reported in the same order
    if mode == "fixed-html":
        assert timeline_state(new.sinks[0].timeline) == timeline_state(old.sinks[0].timeline)


def test_timeline_thinning_in_bulk_equals_one_by_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past max_points checkpoints the stride doubles: the bulk path keeps the same checkpoints."""
    monkeypatch.setattr(bulk, "BLOCK", 1 << 14)
    rng = random.Random(9)
    path = tmp_path / "big.jsonl"
    path.write_bytes(split_file(rng, 20_000, 0.2, 0.001))
    expected = from_canary_percent(20)
    old, new = Tally(expected, sinks=[TimelineSink()]), Tally(expected, sinks=[TimelineSink()])
    replay_exact(path, old, None)
    replay.observe_results(str(path), new, None)
    old.close()
    new.close()
    assert new.sinks[0].timeline.stride > 1
    assert timeline_state(new.sinks[0].timeline) == timeline_state(old.sinks[0].timeline)


# ------------------------------------------------------------------------------------------ the two scanners


def test_the_c_scanner_is_built(scanner: str) -> None:
    """The C scanner is what makes the reader fast (bench/RESULTS.md); the install builds it wherever a compiler is."""
    require_built("splitproof.verifier.inputs._scan", SCANNERS["c"] is not None,
                  "the reader uses its regex scanner (the same results, slower)")
    if scanner == "c":
        assert bulk.SCAN is SCANNERS["c"]


def edge_line(rng: random.Random) -> bytes:
    """A canonical line with one part pushed to (or just past) a bound of the shape, or one byte changed."""
    line = Record(1_764_000_000.25, "http", 4, "production", "ok", 3.5, "ShopperUser").to_json().encode()
    digits = "".join(rng.choice("0123456789") for _ in range(400))
    parts = {
        "t_int": b"1" + digits[: rng.choice([0, 14, 15, 16, 17])].encode(),
        "t_frac": digits[: rng.choice([1, 299, 300, 301])].encode() or b"0",
        "items": rng.choice([b"0", b"00", b"1", b"999999", b"1000000", b"null", b"nul", b"-1", b"01"]),
        "version": rng.choice([b'"' + b"v" * rng.choice([1, 999, 1000, 1001]) + b'"', b"null", b'""',
                               b'"a\x1fb"', b'"a\x20b"', b'"a\x7fb"', b'"\xc3\xa1"', b'"\xc3"', b'"a\\b"']),
        "status": rng.choice([b'"ok"', b'"error:http_503"', b'"o\tk"', b'"\xff"']),
        "lat_int": rng.choice([b"0", b"00", b"3", b"12345678901234567"[: rng.randrange(1, 18)]]),
        "source": rng.choice([b"", b',"source":"ShopperUser"', b',"source":""', b',"source":null',
                              b',"source":"' + b"s" * rng.choice([1000, 1001]) + b'"']),
    }
    line = (b'{"v":1,"t":' + parts["t_int"] + b"." + parts["t_frac"] + b',"channel":"' + rng.choice([b"grpc", b"http",
            b"htt"]) + b'","items":' + parts["items"] + b',"version":' + parts["version"] + b',"status":'
            + parts["status"] + b',"latency_ms":' + parts["lat_int"] + b".5" + parts["source"] + b"}")
    if rng.random() < 0.3:
        i = rng.randrange(len(line))
        line = line[:i] + bytes([rng.randrange(256)]) + line[i + 1:]
    return line + rng.choice([b"\n", b"\n", b"\r\n", b" \n"])


@pytest.mark.parametrize("seed", range(30))
def test_the_c_scanner_returns_what_the_regex_scanner_returns(seed: int) -> None:
    """Segment for segment: the same gaps, keys, counts, codes and (bit for bit) values -- at every bound of the
    shape (16/17 integer digits, 300/301 decimals, 6/7 item digits, 1000/1001 bytes of string, control bytes)."""
    if SCANNERS["c"] is None:
        pytest.skip("the C scanner is not built")
    rng = random.Random(seed)
    good = Record(1_764_000_000.5, "grpc", 5, "canary", "ok", 1.25).to_json().encode() + b"\n"
    data = good + b"".join(edge_line(rng) if rng.random() < 0.5 else (canonical(rng) + "\n").encode()
                           for _ in range(rng.choice([1, 10, 200]))) + b"garbage\n"
    for values in (False, True):
        tables = [([], []), ([], [])]
        for _ in range(2):  # twice: the second call starts from the learned tables
            got = SCANNERS["c"](data, 0, len(data), values, *tables[0])
            want = bulk.scan_regex(data, 0, len(data), values, *tables[1])
            assert got == want
            assert tables[0] == tables[1]
        assert len(got[0]) > 2 and got[0][0] >= 1  # the first line is vouched for
        assert len(got[-1]) == 2 and data[got[-1][0]:got[-1][1]].endswith(b"garbage\n")  # the last is not


def test_the_c_scanner_converts_numbers_as_float_does() -> None:
    """Its fast conversion (up to 15 significant digits and 22 decimals) and its fallback both give float()'s value,
    bit for bit, on numbers either side of those bounds."""
    if SCANNERS["c"] is None:
        pytest.skip("the C scanner is not built")
    rng = random.Random(11)
    texts = []
    for _ in range(20_000):
        whole = rng.choice(["0", str(rng.randrange(1, 10 ** rng.randrange(1, 17)))])
        texts.append(whole + "." + "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 26))))
    for _ in range(20_000):  # 16 to 19 digits, up to 19 decimals: the exact 128-bit path (a timestamp: 10 + 6)
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randrange(16, 21)))
        cut = rng.randrange(1, min(17, len(digits)))  # the shape allows 16 integer digits
        texts.append(str(int(digits[:cut])) + "." + digits[cut:])
    for _ in range(5_000):
        texts.append(f"{rng.uniform(1.7e9, 1.8e9):.6f}")
        texts.append(f"{rng.randrange(1, 10**16)}.{rng.choice(['5', '25', '0', '75', '4999999999', '5000000001'])}")
    texts += ["0.0", "0.000000000000000000001", "9007199254740993.0", "999999999999999.9", "0.1", "1.7976931348623157"]
    lines = [f'{{"v":1,"t":{t},"channel":"grpc","items":1,"version":"v","status":"ok","latency_ms":{t}}}\n'
             for t in texts]
    data = "".join(lines).encode()
    segments = SCANNERS["c"](data, 0, len(data), True, [], [])
    assert len(segments) == 1 and segments[0][0] == len(texts)
    ts, lats = memoryview(segments[0][2]).cast("d").tolist(), memoryview(segments[0][3]).cast("d").tolist()
    want = [float(t) for t in texts]
    assert ts == want and lats == want
    assert [x.hex() for x in ts] == [x.hex() for x in want]


@pytest.mark.parametrize("block", [64, 997, 1 << 20])
@pytest.mark.parametrize("pad", [1, 5000, (1 << 20) + 3])
def test_a_killed_writers_nul_padding_ends_the_data_in_bulk_too(block: int, pad: int,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """bulk.py leaves the tail after the last newline to the exact reader, which ends the data at the padding."""
    monkeypatch.setattr(bulk, "BLOCK", block)
    rng = random.Random(pad + block)
    body = "".join(canonical(rng) + "\n" for _ in range(50)).encode()
    for tail in (b"", canonical(rng).encode()[:20]):
        data = body + tail + b"\0" * pad
        want, want_stats = exact(data)
        got, got_stats, _ = bulk_read(data, values=True)
        assert len(want) == 50 and want_stats.malformed == 0 and want_stats.truncated == (1 if tail else 0)
        assert got == want and got_stats == want_stats


def test_a_missing_extension_is_none_not_an_error() -> None:
    assert extensions.optional("_no_such_extension", "scan") is None
    assert extensions.optional("records", "Record") is Record  # any module of the package, by the same lookup
