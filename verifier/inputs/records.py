"""The results record format: one JSON object per line, written by loadtest/boutique.py, read by verify-split.

This module is the single definition of the format. A record describes one response::

    {"v": 1, "t": 1764110000.125, "channel": "grpc", "items": 5, "version": "production",
     "status": "ok", "latency_ms": 3.21}

Fields
    v           format version (int, currently 1). Readers reject versions they do not know.
    t           completion time, seconds since the epoch (float). ``t - latency_ms / 1000`` is when the request
                was sent: the Locust file writes ``t`` as its dispatch time plus its response time, so that is
                exact; a ``--sequential`` replay feeds the gate in that order (verifier.inputs.reorder: lines are
                written in completion order, which depends on which version answered faster).
    channel     "grpc" (a direct ListRecommendations call) or "http" (a product page through the ingress).
    items       number of recommended items seen (int), or null when none could be counted
                (error, or a page without the recommendations section).
    version     the version the response was attributed to (str), or null when unattributed.
    status      "ok" for a successful response; otherwise "error:<cause>", e.g. "error:UNAVAILABLE",
                "error:http_503", "error:no_recommendations".
    latency_ms  response time in milliseconds (float).
    source      optional free-form origin (e.g. the Locust user class or "verify-split").
    by          optional, since the health judge (format 1 unchanged: readers that predate it ignore it):
                "header" when ``version`` was read from the version response header (``--header``, Istio's
                ``headers.response.set``) rather than counted from the payload. Only then can a *failed* response
                name its version -- the header arrives with the error -- so the health judge compares error rates
                only over header-attributed records. It counts for the split too: the header says where the
                request was routed, failed or not. Without ``by`` a failed response is unattributed whatever
                its record says (a payload-attributed failure has no version to give).

Writers append one line per record and hand it to the OS at once, so a run killed mid-write keeps every complete
line. A reader counts (and reports) malformed lines and a truncated last line; it never crashes on them and never
drops them silently.

End of data: a run of NUL bytes that reaches the end of the file is padding, not data -- RecordWriter writes a
regular file through a memory map that it grows a window at a time (verifier.inputs.appendfile) and cuts back to
the written length when it closes, so the file of a writer that was killed (SIGKILL, a crash) ends in the unused
rest of its last window. Readers end the last line where that padding starts: the lines before it, complete or
truncated, count as they would without it. NULs anywhere else (followed by anything but more NULs up to the end)
are content: a line holding them is malformed. A writer appending to a padded file writes over the padding.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

from splitproof.verifier.inputs import recordline as line
from splitproof.verifier.inputs.appendfile import AppendFile

FORMAT_VERSION = 1
CHANNELS = ("grpc", "http")
STATUS_OK = "ok"
BY_HEADER = "header"

# latency_ms is kept to the microsecond in a results file; the health judge rounds live records' latencies the same
# way (verifier.health.responses), so a live verdict and verify-split on the run's file compare the same numbers
LATENCY_PLACES = 3


class Record(NamedTuple):
    """One response. Immutable; a named tuple rather than a frozen dataclass because the Locust file makes one per
    response and a frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``: 8 fields cost
    ~0.76 us there against ~0.18 us here (bench/RESULTS.md). Change a field with ``rec._replace(version=...)``."""

    t: float
    channel: str
    items: int | None
    version: str | None
    status: str
    latency_ms: float
    source: str | None = None
    by: str | None = None  # BY_HEADER: the version came from the response header (errors included)

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    @property
    def header_attributed(self) -> bool:
        return self.by == BY_HEADER

    def to_json(self) -> str:
        """The canonical line (no newline). Byte-identical to :meth:`to_json_reference`, built without json.dumps
        for the common case because the Locust file serialises one record per response (verifier.inputs.recordline)."""
        t = line.decimal(self.t, 6, line.T_BELOW)
        latency = line.decimal(self.latency_ms, LATENCY_PLACES, line.LATENCY_BELOW)
        if t is None or latency is None:
            return self.to_json_reference()
        parts = line.parts(self.channel, self.items, self.version, self.status, self.source, self.by)
        return f'{{"v":{FORMAT_VERSION},"t":{t},{parts[0]}"latency_ms":{latency}{parts[1]}'

    def to_line(self) -> bytes:
        """The canonical line with its newline, as the UTF-8 bytes a writer appends: ``to_json() + "\\n"``, built in
        C where ``_line`` is (verifier/inputs/_line.c: the same bytes, for the numbers of every real record)."""
        if line.LINE_C is not None:
            made = line.LINE_C(self, line.PARTS)
            if made is None:  # parts not kept yet (a new kind of record, or a full cache), or a number out of range
                parts = line.parts(self.channel, self.items, self.version, self.status, self.source, self.by)
                made = line.LINE_C(self, line.PARTS, parts)
            if made is not None:
                return made
        return (self.to_json() + "\n").encode("utf-8")

    def to_json_reference(self) -> str:
        obj: dict[str, Any] = {
            "v": FORMAT_VERSION,
            "t": round(self.t, 6),
            "channel": self.channel,
            "items": self.items,
            "version": self.version,
            "status": self.status,
            "latency_ms": round(self.latency_ms, LATENCY_PLACES),
        }
        if self.source is not None:
            obj["source"] = self.source
        if self.by is not None:
            obj["by"] = self.by
        return json.dumps(obj, separators=(",", ":"))


def error_status(cause: str) -> str:
    """The status string for a failed response, e.g. ``error_status("UNAVAILABLE") == "error:UNAVAILABLE"``."""
    return f"error:{cause}"


def unattributed_cause(record: Record) -> str | None:
    """Why a record counts as unattributed, named as every report names it; None when it is attributed. A failed
    response is unattributed whatever version its record names (its status is the cause) -- unless the version
    response header named it (``by="header"``): the header says where the request was routed, failed or not."""
    if record.status != STATUS_OK:  # (not the ok property: the Locust file asks once per response)
        return None if record.header_attributed and record.version is not None else record.status
    if record.version is None:
        return f"{record.channel} reply with {record.items} items"
    return None


class RecordError(ValueError):
    """A line that is not a valid record; the message says why."""


MAX_ITEMS = 1_000_000  # items per response: far above any page; a bigger count is a malformed record
_ITEMS_DIGITS = len(str(MAX_ITEMS)) - 1
_NUM = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_STR = r'"([^"\\\x00-\x1f]+)"'
# The exact shape RecordWriter/Record.to_json produce. Lines of that shape (all of them, in files we wrote) are
# parsed without json.loads; anything else -- escapes, other key orders, extra fields -- takes the general path.
_CANONICAL = re.compile(
    rf'\{{"v":1,"t":({_NUM}),"channel":"(grpc|http)","items":(?:null|(0|[1-9][0-9]*)),'
    rf'"version":(?:null|{_STR}),"status":{_STR},"latency_ms":({_NUM})(?:,"source":{_STR})?'
    r'(?:,"by":"(header)")?\}'
)


def parse_record(line: str) -> Record:
    """Parse one JSON line into a Record, raising RecordError with a reason when it is not valid."""
    m = _CANONICAL.fullmatch(line)
    if m is not None:
        t, channel, items, version, status, latency, source, by = m.groups()
        tf, lf = float(t), float(latency)
        if math.isfinite(tf) and math.isfinite(lf) and lf >= 0 and (items is None or len(items) <= _ITEMS_DIGITS):
            return Record(tf, channel, int(items) if items is not None else None, version, status, lf, source, by)
    return _parse_general(line)  # the general path says what is wrong, if anything


def _parse_general(line: str) -> Record:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RecordError(f"not JSON ({exc.msg})") from None
    except ValueError:  # an integer of more than 4,300 digits (Python's int_max_str_digits)
        raise RecordError("a number with too many digits") from None
    if not isinstance(obj, dict):
        raise RecordError("not a JSON object")
    v = obj.get("v", FORMAT_VERSION)
    if v != FORMAT_VERSION:
        raise RecordError(f"unknown format version {v!r}")
    try:
        t = float(obj["t"])
        channel = obj["channel"]
        items = obj.get("items")
        version = obj.get("version")
        status = obj["status"]
        latency = float(obj.get("latency_ms", 0.0))
    except KeyError as exc:
        raise RecordError(f"missing field {exc.args[0]!r}") from None
    except (TypeError, ValueError):
        raise RecordError("field of the wrong type") from None
    except OverflowError:  # an integer beyond the float range, e.g. 10**400
        raise RecordError("number out of range") from None
    if channel not in CHANNELS:
        raise RecordError(f"unknown channel {channel!r}")
    if items is not None and (not isinstance(items, int) or isinstance(items, bool) or not 0 <= items <= MAX_ITEMS):
        raise RecordError(f"bad items {str(items)[:20]}")
    if version is not None and (not isinstance(version, str) or not version):
        raise RecordError(f"bad version {version!r}")
    if not isinstance(status, str) or not status:
        raise RecordError(f"bad status {status!r}")
    if not (math.isfinite(t) and math.isfinite(latency)):
        raise RecordError("non-finite number")
    if latency < 0:
        raise RecordError(f"negative latency_ms {latency:g}")
    source = obj.get("source")
    by = obj.get("by")
    return Record(t, channel, items, version, status, latency, source if isinstance(source, str) else None,
                  by if isinstance(by, str) and by else None)


@dataclass
class ReadStats:
    """What a read saw besides the valid records."""

    lines: int = 0
    valid: int = 0
    malformed: int = 0
    truncated: int = 0  # the last line had no newline and did not parse: a run killed mid-write
    examples: list[str] = field(default_factory=list)  # first few "line N: reason" messages

    MAX_EXAMPLES = 5

    def note_bad(self, lineno: int, reason: str) -> None:
        if len(self.examples) < self.MAX_EXAMPLES:
            self.examples.append(f"line {lineno}: {reason}")


MAX_LINE = 1 << 16  # characters: a record is ~150; a longer "line" (a binary file, /dev/zero) is malformed


def _lines(stream: IO[str]) -> Iterator[str]:
    """The lines of ``stream``, each cut at MAX_LINE + 1 characters (the rest of an overlong line is skipped), so
    memory stays bounded whatever the input. The NUL padding at the end of a killed writer's file (the run of NULs
    that reaches the end of the stream) is not data: the last line ends where the padding starts."""
    readline = stream.readline
    while True:
        raw = readline(MAX_LINE + 1)
        if not raw:
            return
        if raw.endswith(("\n", "\r")):  # (newline="" streams end lines with either)
            yield raw
            continue
        if len(raw) <= MAX_LINE:  # readline stopped short of a line end: the end of the stream
            raw = raw.rstrip("\0")
            if raw:
                yield raw
            return
        length = len(raw.rstrip("\0"))  # of the line without NULs that may yet prove to be the padding
        seen, rest = len(raw), raw
        while rest and not rest.endswith("\n"):
            rest = readline(MAX_LINE + 1)
            kept = len(rest.rstrip("\0"))
            length = seen + kept if kept else length
            seen += len(rest)
        if not rest and length <= MAX_LINE:  # the line's overlong part was all padding
            if length:
                yield raw[:length]
            return
        yield raw[:MAX_LINE + 1] + ("\n" if rest else "")


def iter_records(stream: IO[str], stats: ReadStats, lineno: int = 0) -> Generator[Record, None, int]:
    """Stream valid records from ``stream``; count bad lines into ``stats`` (never raises on content). Lines are
    numbered from ``lineno + 1`` (a stream that continues a file); the generator returns the last line number."""
    for raw in _lines(stream):
        lineno += 1
        stats.lines += 1
        line = raw.strip()
        if not line:
            stats.lines -= 1
            continue
        if len(line) > MAX_LINE:
            stats.malformed += 1
            stats.note_bad(lineno, f"longer than {MAX_LINE:,} characters")
            continue
        try:
            rec = parse_record(line)
        except RecordError as exc:
            if not raw.endswith("\n"):
                stats.truncated += 1
                stats.note_bad(lineno, f"truncated last line ({exc})")
            else:
                stats.malformed += 1
                stats.note_bad(lineno, str(exc))
            continue
        stats.valid += 1
        yield rec
    return lineno


def read_records(path: str | Path, stats: ReadStats, what: str = "--results") -> Iterator[Record]:
    """Open ``path`` (``-`` for stdin) and stream its records. verifier.inputfile's InputFileError (a missing file,
    a directory, a FIFO without a writer; its message starts with ``what``) and OSError propagate."""
    import io

    from splitproof.verifier.inputfile import open_input

    raw = open_input(str(path), what)
    fh = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
    try:
        yield from iter_records(fh, stats)
    finally:
        if str(path) == "-":
            fh.detach()  # leave standard input itself open
        else:
            fh.close()


class RecordWriter:
    """Append records to a JSON-lines file, each line with the OS before :meth:`write` returns (a killed run keeps
    every complete line).

    A regular file is written through a shared memory map (verifier.inputs.appendfile): a line is a copy into the
    page cache, no system call per line -- which is why a killed writer's file ends in NUL padding (see the
    format notes above). A FIFO, a pipe or ``/dev/stdout`` gets one unbuffered ``write(2)`` per line instead."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: AppendFile | None = AppendFile(self.path)
        self.count = 0

    def write(self, record: Record) -> None:
        # (_write's work without the call: the Locust file writes every response)
        if self._file is None:
            raise ValueError("writer is closed")
        self._file.append(record.to_line())
        self.count += 1

    def write_lines(self, lines: Iterable[str]) -> None:
        """Append already-serialised records (e.g. received from a Locust worker)."""
        chunk = "".join(f"{line}\n" for line in lines)
        if chunk:
            self._write(chunk.encode("utf-8"), chunk.count("\n"))

    def _write(self, data: bytes, lines: int) -> None:
        if self._file is None:
            raise ValueError("writer is closed")
        self._file.append(data)
        self.count += lines

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
