"""Reading a records file in bulk: whole blocks of lines vouched for by one scan, the rest by the exact parser.

A per-line Python loop costs microseconds per record; this reader costs tens of nanoseconds, because the lines
RecordWriter writes all share one shape. Each block (about 1 MiB of complete lines) goes through a *scanner* that
vouches for every line of that exact shape -- :data:`_LINE`, a strict subset of what the exact parser accepts -- and
hands back every other line as a *gap*: a byte range the exact reader (:func:`~verifier.inputs.records.iter_records`)
reads with its true line numbers, so counts, reasons and examples of malformed, truncated, non-canonical or blank
lines are those of the exact reader, line for line. Nothing is dropped: a line is either vouched for or read
exactly.

Two scanners recognise the same language: the C one (``_scan.c``, built at install; one pass, no backtracking,
about 40 ns per line) and :func:`scan_regex` (Python's ``re``, the fallback where no compiler was at hand, 15-20
times slower). tests/test_bulk_records.py runs both against the exact reader on seeded hostile mixes.

Why a vouched line needs no parser: :data:`_LINE` is the canonical shape the exact parser
(:func:`~verifier.inputs.records.parse_record`) accepts without ``json.loads`` -- ``"v":1``, numbers written
``int.frac`` without sign, exponent or leading zeros and with at most 16 integer digits (always finite, never
negative), item counts of at most 6 digits, strings of at most 1,000 bytes without quote, backslash or control
character (so no carriage return either: the exact reader's universal newlines split nothing inside a match, and
the line is far below MAX_LINE). On such a line the exact parser returns ``t``, ``latency_ms`` and ``source`` from
their text and ``channel``, ``items``, ``version`` and ``status`` from the span between ``"t"`` and
``"latency_ms"`` (the *key*) alone. So a key is parsed once, by the exact parser itself, and every line carrying it
counts as that record (:func:`template`); ``t`` and ``latency_ms`` get the double ``float()`` gives their text (the
regex scanner calls ``float()``; the C one rounds exactly as it does, see ``to_double`` in ``_scan.c``). Decoding
is the same too: UTF-8 with replacement, and a key starts and ends at ASCII characters, so decoding it alone gives
what decoding its line gives.

The blocks come out in file order: a :class:`Run` lists its lines' key ids in order (and their times, latencies and
sources when asked for), so an ordered consumer -- the sequential gate over a replayed file -- sees every record in
the order of the file; a consumer that only counts (the fixed-n verdict) gets :class:`Counted` segments, counted
inside the scanner.
"""

from __future__ import annotations

import io
import re
from array import array
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import BinaryIO

from splitproof.verifier.inputs import extensions
from splitproof.verifier.inputs.records import ReadStats, Record, iter_records, parse_record

BLOCK = 1 << 20  # bytes read at a time: big enough for C-speed passes, small enough to stay in cache and memory
MAX_TABLE = 4096  # distinct keys (and sources) a reader learns; a line with one more is read by the exact parser

_S = rb'"[^"\\\x00-\x1f]{1,1000}+"'
_N = rb"(?:0|[1-9][0-9]{0,15}+)\.[0-9]{1,300}+"
_KEY = (rb'"channel":"(?:grpc|http)","items":(?:null|0|[1-9][0-9]{0,5}+),"version":(?:null|' + _S
        + rb'),"status":' + _S)
# One canonical record line, newline included: (t, key, latency_ms, source or b""). The C scanner matches the same.
_LINE = re.compile(rb'^\{"v":1,"t":(' + _N + rb"),(" + _KEY + rb"),\"latency_ms\":(" + _N
                   + rb')(?:,"source":"([^"\\\x00-\x1f]{1,1000}+)")?\}\n', re.M)

# A segment of a block, as a scanner returns it: (start, end) a gap of lines not vouched for; (n, key ids in order
# of first line, their counts) without values; (n, codes, ts, latencies, sources) with values (native arrays).
Segment = tuple
Scanner = Callable[[bytes, int, int, bool, list, list], list]


def scan_regex(buf: bytes, start: int, end: int, values: bool, keys: list[bytes],
               sources: list[bytes]) -> list[Segment]:
    """The scanner in Python: what ``_scan.scan`` does, with :data:`_LINE` (see the C source for the format)."""
    buf = bytes(buf)  # a bytearray's matches would be bytearrays: keys must be bytes
    index = {key: i for i, key in enumerate(keys)}
    source_index = {s: i for i, s in enumerate(sources)}
    out: list[Segment] = []
    pos = start
    run: list[tuple[int, float, float, int]] = []

    def intern(table: list[bytes], where: dict[bytes, int], item: bytes) -> int:
        i = where.get(item)
        if i is None:
            if len(table) >= MAX_TABLE:
                return -1
            i = where[item] = len(table)
            table.append(item)
        return i

    def close() -> None:
        if not run:
            return
        if values:
            out.append((len(run), array("H", [r[0] for r in run]).tobytes(), array("d", [r[1] for r in run]).tobytes(),
                        array("d", [r[2] for r in run]).tobytes(), array("H", [r[3] for r in run]).tobytes()))
        else:
            counts: dict[int, int] = {}
            for r in run:
                counts[r[0]] = counts.get(r[0], 0) + 1
            out.append((len(run), list(counts), list(counts.values())))
        run.clear()

    for m in _LINE.finditer(buf, start, end):
        t, key, latency, source = m.groups()
        code = intern(keys, index, key)
        src = 0 if not source or not values else intern(sources, source_index, source) + 1
        if code < 0 or (source and values and src == 0):
            continue  # a full table: this line is left in the gap, for the exact parser
        if m.start() != pos:
            close()
            out.append((pos, m.start()))
        run.append((code, float(t), float(latency), src) if values else (code, 0.0, 0.0, 0))
        pos = m.end()
    close()
    if pos < end:
        out.append((pos, end))
    return out


SCAN: Scanner = extensions.optional("_scan", "scan") or scan_regex  # tests set this to compare the two


@dataclass(frozen=True, slots=True)
class Run:
    """Consecutive vouched lines, in file order: line ``i`` has the key ``keys[codes[i]]`` (see :func:`template`) and,
    when the reader was asked for values, ``ts[i]``, ``latencies[i]`` and the source ``sources[source_codes[i] - 1]``
    (none when 0). ``keys`` and ``sources`` are the reader's tables, shared by its runs; the per-line columns are
    native arrays (memoryviews: numpy reads them without a copy)."""

    keys: list[bytes]
    codes: memoryview
    ts: memoryview | None = None
    latencies: memoryview | None = None
    source_codes: memoryview | None = None
    sources: list[bytes] | None = None

    def __len__(self) -> int:
        return len(self.codes)

    def line_keys(self) -> list[bytes]:
        """The key of every line, in order."""
        keys = self.keys
        return [keys[c] for c in self.codes.tolist()]

    def key_counts(self) -> dict[bytes, int]:
        """How many lines carry each key, in the order of each key's first line."""
        keys = self.keys
        return {keys[code]: n for code, n in Counter(self.codes.tolist()).items()}

    def record(self, i: int) -> Record:
        """The full record of line ``i`` (a run read with values)."""
        assert self.ts is not None and self.latencies is not None and self.source_codes is not None
        return self._record(self.codes[i], self.ts[i], self.latencies[i], self.source_codes[i])

    def records(self) -> Iterator[Record]:
        """Every record of the run, in order (a run read with values)."""
        assert self.ts is not None and self.latencies is not None and self.source_codes is not None
        yield from map(self._record, self.codes.tolist(), self.ts.tolist(), self.latencies.tolist(),
                       self.source_codes.tolist())

    def _record(self, code: int, t: float, latency: float, source: int) -> Record:
        base = template(self.keys[code])
        text = self.sources[source - 1].decode("utf-8", "replace") if source and self.sources is not None else None
        return Record(t, base.channel, base.items, base.version, base.status, latency, text)


@dataclass(frozen=True, slots=True)
class Counted:
    """``n`` consecutive vouched lines known by the count of each key (in the order of each key's first line): for
    a consumer whose result does not depend on their order."""

    counts: dict[bytes, int]
    n: int

    def __len__(self) -> int:
        return self.n


@lru_cache(maxsize=MAX_TABLE)
def template(key: bytes) -> Record:
    """The record every line with this key parses to, apart from ``t``, ``latency_ms`` and ``source`` (0, 0, None):
    parsed by the exact parser from a line with that key."""
    text = key.decode("utf-8", "replace")
    return parse_record(f'{{"v":1,"t":0.0,{text},"latency_ms":0.0}}')


def iter_blocks(raw: BinaryIO, stats: ReadStats, values: bool = False,
                counts_only: bool = False) -> Iterator[Run | Counted | Record]:
    """The records of a binary stream in file order: :class:`Run` s of vouched lines and single :class:`Record` s
    from the exact reader. Bad lines are counted into ``stats`` by the exact reader as it meets them; a Run's lines
    are *not* added to ``stats`` (the consumer counts what it takes: a replay may stop inside a run). With
    ``counts_only`` and no ``values``, vouched lines come as :class:`Counted` segments."""
    keys: list[bytes] = []
    sources: list[bytes] = []
    counted = counts_only and not values
    lineno = 0
    buf = bytearray(BLOCK)  # one buffer for the whole read: no fresh pages to fault in for every block
    view = memoryview(buf)
    have = 0  # buf[:have]: the start of a line whose end is not read yet
    readinto = getattr(raw, "readinto1", None) or raw.readinto  # what is there: a pipe is read as written
    while True:
        if have == BLOCK:  # no line end in a whole block: far longer than any record
            yield from _stream_rest(bytes(buf), raw, stats, lineno)
            return
        got = readinto(view[have:])
        if not got:
            break
        end = have + got
        cut = buf.rfind(b"\n", have, end) + 1  # the line ends in buf[:have] were all handled before
        if cut:
            lineno = yield from _block(buf, 0, cut, stats, lineno, counted, keys, sources)
            tail = bytes(view[cut:end])  # the unfinished line (short) to the front
            buf[:len(tail)] = tail
            end = len(tail)
        have = end
    if have:
        yield from _exact(bytes(buf[:have]), stats, lineno)


def _block(buf: bytes | bytearray, start: int, end: int, stats: ReadStats, lineno: int, counted: bool,
           keys: list[bytes], sources: list[bytes]) -> Generator[Run | Counted | Record, None, int]:
    """The complete lines ``buf[start:end]``, scanned: runs as Run or Counted, gaps through the exact reader."""
    for seg in SCAN(buf, start, end, not counted, keys, sources):
        if len(seg) == 2:  # a gap
            lineno = yield from _exact(buf[seg[0]:seg[1]], stats, lineno)
        elif counted:
            n, order, counts = seg
            yield Counted({keys[k]: c for k, c in zip(order, counts, strict=True)}, n)
            lineno += n
        else:
            n, codes, ts, latencies, source_codes = seg
            yield Run(keys, memoryview(codes).cast("H"), memoryview(ts).cast("d"), memoryview(latencies).cast("d"),
                      memoryview(source_codes).cast("H"), sources)
            lineno += n
    return lineno


def _text(raw: BinaryIO) -> io.TextIOWrapper:
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")


def _exact(region: bytes, stats: ReadStats, lineno: int) -> Generator[Record, None, int]:
    """Lines the regex did not vouch for, read by the exact reader (the same decoding, splitting and numbering)."""
    return (yield from iter_records(_text(io.BytesIO(region)), stats, lineno))


class _Chain(io.RawIOBase):
    """Bytes already read, then the rest of a stream."""

    def __init__(self, head: bytes, tail: BinaryIO) -> None:
        self._head, self._tail = head, tail

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        if self._head:
            k = min(len(buffer), len(self._head))
            buffer[:k] = self._head[:k]
            self._head = self._head[k:]
            return k
        data = self._tail.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def _stream_rest(head: bytes, raw: BinaryIO, stats: ReadStats, lineno: int) -> Iterator[Record]:
    """The rest of the stream, from the start of a line, through the exact streaming reader, which bounds every
    line at MAX_LINE characters (``/dev/zero``, a binary file): memory stays bounded whatever the input."""
    yield from iter_records(_text(io.BufferedReader(_Chain(head, raw))), stats, lineno)
