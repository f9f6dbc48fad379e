"""Reading a records file in bulk: whole blocks of lines checked by one regex pass, the rest by the exact parser.

A per-line Python loop costs microseconds per record; this reader costs a few hundred nanoseconds, because the
lines RecordWriter writes all share one shape. Each block (about 1 MiB of complete lines) goes through
:data:`_LINE` with ``findall`` -- C speed, no Python code per line -- and the block is *vouched for* only when the
number of matches equals the number of its lines. The pattern is anchored at line starts (``^`` in MULTILINE mode)
and ends with the newline, so each match is exactly one whole line; as many matches as newlines means every line
matched: nothing in the block escaped. A block where some line did not match is walked with ``finditer``: the runs
of matching lines stay bulk, every gap between them (a malformed, truncated, non-canonical or blank line) goes to
the exact reader (:func:`~verifier.inputs.records.iter_records`) with its true line number, so counts, reasons and
examples are those of the exact reader, line for line.

Why a matched line needs no parser: :data:`_LINE` is a strict subset of the canonical shape the exact parser
(:func:`~verifier.inputs.records.parse_record`) accepts without ``json.loads`` -- ``"v":1``, numbers written
``int.frac`` without sign, exponent or leading zeros and with at most 16 integer digits (always finite, never
negative), item counts of at most 6 digits, strings of at most 1,000 bytes without quote, backslash or control
character (so no carriage return either: the exact reader's universal newlines split nothing inside a match, and
the line is far below MAX_LINE). On such a line the exact parser returns ``t``, ``latency_ms`` and ``source`` from
their text and ``channel``, ``items``, ``version`` and ``status`` from the span between ``"t"`` and
``"latency_ms"`` (the *key*) alone. So a key is parsed once, by the exact parser itself, and every line carrying it
counts as that record (:func:`template`). Decoding is the same too: UTF-8 with replacement, and a key starts and
ends at ASCII characters, so decoding it alone gives what decoding its line gives.

The blocks come out in file order: a :class:`Run` lists its lines' keys in order (and their times, latencies and
sources when asked for), so an ordered consumer -- the sequential gate over a replayed file -- sees every record in
the order of the file, and a consumer that only counts (the fixed-n verdict) counts each run's keys at C speed.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import BinaryIO

from splitproof.verifier.inputs.records import ReadStats, Record, iter_records, parse_record

BLOCK = 1 << 20  # bytes read at a time: big enough for C-speed passes, small enough to stay in cache and memory

_S = rb'"[^"\\\x00-\x1f]{1,1000}+"'
_N = rb"(?:0|[1-9][0-9]{0,15}+)\.[0-9]{1,300}+"
_KEY = (rb'"channel":"(?:grpc|http)","items":(?:null|0|[1-9][0-9]{0,5}+),"version":(?:null|' + _S
        + rb'),"status":' + _S)
# One canonical record line, newline included. Group 1 is the key.
_LINE = re.compile(rb'^\{"v":1,"t":' + _N + rb",(" + _KEY + rb"),\"latency_ms\":" + _N
                   + rb'(?:,"source":' + _S + rb")?\}\n", re.M)
# Whole blocks of such lines, for a consumer that only counts (no group: the fastest pass).
_BLOCK_OF_LINES = re.compile(rb'(?:\{"v":1,"t":' + _N + rb",(?:" + _KEY + rb"),\"latency_ms\":" + _N
                             + rb'(?:,"source":' + _S + rb")?\}\n)*+")
MAX_KEYS = 64  # distinct keys counted with bytes.count per block; more (a hostile file) are counted from findall
# The same with the values a timeline needs: (t, key, latency_ms) -- a third cheaper than with the source too.
_LINE_TIMES = re.compile(rb'^\{"v":1,"t":(' + _N + rb"),(" + _KEY + rb"),\"latency_ms\":(" + _N
                         + rb')(?:,"source":' + _S + rb")?\}\n", re.M)
# The same with every value: (t, key, latency_ms, source or b"").
_LINE_VALUES = re.compile(rb'^\{"v":1,"t":(' + _N + rb"),(" + _KEY + rb"),\"latency_ms\":(" + _N
                          + rb')(?:,"source":"([^"\\\x00-\x1f]{1,1000}+)")?\}\n', re.M)


@dataclass(frozen=True, slots=True)
class Run:
    """Consecutive vouched lines, in file order: each line's key (see :func:`template`) and, when the reader was
    asked for values, its ``t``, ``latency_ms`` and ``source`` (b"" when absent; None when only the times were
    asked for)."""

    keys: list[bytes]
    ts: tuple[bytes, ...] | None = None
    latencies: tuple[bytes, ...] | None = None
    sources: tuple[bytes, ...] | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def record(self, i: int) -> Record:
        """The full record of line ``i`` (a run read with values)."""
        assert self.ts is not None and self.latencies is not None and self.sources is not None
        base = template(self.keys[i])
        source = self.sources[i]
        return Record(float(self.ts[i]), base.channel, base.items, base.version, base.status,
                      float(self.latencies[i]), source.decode("utf-8", "replace") if source else None)


@dataclass(frozen=True, slots=True)
class Counted:
    """``n`` consecutive vouched lines known by the count of each key (in the order of each key's first line): for
    a consumer whose result does not depend on their order."""

    counts: dict[bytes, int]
    n: int

    def __len__(self) -> int:
        return self.n


class _Keys:
    """The keys met so far, each with the one literal every line carrying it contains exactly once: in a line the
    whole pattern matched, ``,"channel":`` and ``,"latency_ms":`` occur only around the key (strings hold no
    quote), so ``block.count(marker)`` is the number of its lines with that key."""

    def __init__(self) -> None:
        self.markers: dict[bytes, bytes] = {}

    def count(self, buf: bytes, start: int, end: int, n: int) -> dict[bytes, int]:
        counts = {key: c for key, marker in self.markers.items() if (c := buf.count(marker, start, end))}
        if sum(counts.values()) != n:  # a key not met before: learn this block's keys from the lines themselves
            found = Counter(_LINE.findall(buf, start, end))
            for key in found:
                if key not in self.markers and len(self.markers) < MAX_KEYS:
                    self.markers[key] = b"," + key + b',"latency_ms":'
            return dict(found)
        first = {key: buf.find(self.markers[key], start, end) for key in counts}
        return {key: counts[key] for key in sorted(counts, key=first.__getitem__)}


@lru_cache(maxsize=4096)
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
    ``counts_only`` a block whose every line is vouched comes as one :class:`Counted`; with ``counts_only`` and
    ``values``, Runs carry times and latencies but no sources (a timeline's needs)."""
    keys = _Keys() if counts_only and not values else None
    pattern = (_LINE_TIMES if counts_only else _LINE_VALUES) if values else _LINE
    lineno = 0
    rest = b""  # the start of a line whose end is not read yet
    read = getattr(raw, "read1", raw.read)  # what is there, up to BLOCK: a pipe is read as its writer writes
    while True:
        data = read(BLOCK)
        if not data:
            break
        first = 0
        if rest and values:  # one block with the line across the two reads: no one-line Run for a timeline
            data, rest = rest + data, b""
        if rest:  # the line across the two reads, on its own
            first = data.find(b"\n") + 1
            if first == 0:
                rest += data
                if len(rest) >= BLOCK:  # no line end in a whole block: far longer than any record
                    yield from _stream_rest(rest, raw, stats, lineno)
                    return
                continue
            line = rest + data[:first]
            lineno = yield from _block(line, 0, len(line), stats, lineno, pattern, keys)
        cut = data.rfind(b"\n") + 1
        rest = data[max(cut, first):]
        if cut > first:
            lineno = yield from _block(data, first, cut, stats, lineno, pattern, keys)
        elif len(rest) >= BLOCK:
            yield from _stream_rest(rest, raw, stats, lineno)
            return
    if rest:
        yield from _exact(rest, stats, lineno)


def _block(buf: bytes, start: int, end: int, stats: ReadStats, lineno: int, pattern: re.Pattern[bytes],
           keys: _Keys | None) -> Generator[Run | Counted | Record, None, int]:
    """The complete lines ``buf[start:end]`` (no copy on the fast path: the passes take start and end)."""
    n = buf.count(b"\n", start, end)
    if keys is not None and _BLOCK_OF_LINES.fullmatch(buf, start, end) is not None:  # every line vouched
        yield Counted(keys.count(buf, start, end, n), n)
        return lineno + n
    chunk = buf[start:end] if (start, end) != (0, len(buf)) else buf
    values = pattern is not _LINE
    found = pattern.findall(chunk)
    if len(found) == n:  # one match per line, each a whole line: the block is vouched for
        yield _run(found, values)
        return lineno + n
    pos = 0
    pending: list = []
    for m in pattern.finditer(chunk):
        if m.start() != pos:
            if pending:
                yield _run(pending, values)
                lineno += len(pending)
                pending = []
            lineno = yield from _exact(chunk[pos:m.start()], stats, lineno)
        pending.append(m.groups() if values else m.group(1))
        pos = m.end()
    if pending:
        yield _run(pending, values)
        lineno += len(pending)
    if pos < len(chunk):
        lineno = yield from _exact(chunk[pos:], stats, lineno)
    return lineno


def _run(found: list, values: bool) -> Run:
    if not values:
        return Run(found)
    if len(found[0]) == 3:
        ts, keys, latencies = zip(*found, strict=True)
        return Run(list(keys), ts, latencies)
    ts, keys, latencies, sources = zip(*found, strict=True)
    return Run(list(keys), ts, latencies, sources)


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
