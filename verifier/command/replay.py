"""``--results FILE``: stream a records file into the tally. Bad lines count as unattributed where they occur
(never dropped); the read stops early at the sequential verdict or at ``--max-samples``. The sequential gate reads
the records in dispatch order (verifier.inputs.reorder.by_start: the file's lines are in completion order)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import BinaryIO

from splitproof.verifier.command.prepare import TimelineSink
from splitproof.verifier.errors import InputError
from splitproof.verifier.inputfile import InputFileError, open_input
from splitproof.verifier.inputs.attribution import Attribution
from splitproof.verifier.inputs.bulk import Counted, Run, iter_blocks, template
from splitproof.verifier.inputs.records import ReadStats, Record
from splitproof.verifier.reports.timeline import Timeline
from splitproof.verifier.tally import Tally
from splitproof.verifier.verdict import Method

CAUSE_MALFORMED = "malformed line"
CAUSE_TRUNCATED = "truncated line"


def observe_results(path: str, tally: Tally, attribution: Attribution | None,
                    raw: BinaryIO | None = None) -> tuple[ReadStats, bool]:
    """Feed the records of ``path`` (read from ``raw`` when the caller opened it already) to ``tally``, in file
    order. Returns the read statistics and whether the read stopped early (decided / --max-samples).

    The file is read in bulk (verifier/inputs/bulk.py). When nothing depends on the order -- the fixed-n verdict,
    no --max-samples, no sink but the HTML timeline (which takes a run's arrays in order) -- a run of vouched lines
    is counted per key at once; otherwise (the sequential gate, --max-samples) every record goes to the tally one
    by one, in the order of the file, exactly as the exact reader would hand them over."""
    stats = ReadStats()
    seen_malformed = seen_truncated = 0
    stopped = False
    timelines = [sink.timeline for sink in tally.sinks if isinstance(sink, TimelineSink)]
    bulk = tally.gate is None and tally.max_samples is None and len(timelines) == len(tally.sinks)
    values = bool(tally.sinks)

    def catch_up() -> None:
        nonlocal seen_malformed, seen_truncated
        while seen_malformed < stats.malformed:
            seen_malformed += 1
            tally.observe(None, CAUSE_MALFORMED)
        while seen_truncated < stats.truncated:
            seen_truncated += 1
            tally.observe(None, CAUSE_TRUNCATED)

    def one(rec: Record) -> bool:
        """The exact reader's loop body: False once the tally wants no more."""
        catch_up()
        if tally.done:
            return False
        tally.record(rec, attribution)
        return True

    try:
        with open_records(path, raw) as stream:
            if tally.method == Method.SEQUENTIAL or not bulk:
                records = _each_record(stream, stats)
                if tally.method == Method.SEQUENTIAL:
                    # the file is in completion order; the gate must see dispatch order (verifier/inputs/reorder.py)
                    from splitproof.verifier.inputs.reorder import dispatch_ordered  # the gate's feed only

                    records = dispatch_ordered(records)
                for rec in records:
                    if not one(rec):
                        stopped = True
                        break
            else:
                for item in iter_blocks(stream, stats, values, counts_only=True):
                    if isinstance(item, Record):
                        if not one(item):
                            stopped = True
                            break
                        continue
                    stats.lines += len(item)
                    stats.valid += len(item)
                    catch_up()
                    if isinstance(item, Counted):
                        for key, count in item.counts.items():
                            tally.add_records(template(key), count, attribution)
                    else:
                        count_run(item, tally, attribution, timelines)
        if not stopped:
            catch_up()
    except InputFileError as exc:  # missing, a directory, a FIFO without a writer
        raise InputError(str(exc)) from None
    except OSError as exc:
        raise InputError(f"--results: cannot read {path}: {exc.strerror or exc}") from None
    if stats.valid == 0 and not stopped:
        bad = stats.malformed + stats.truncated
        detail = f" ({bad} bad lines; {stats.examples[0]})" if bad else ""
        raise InputError(f"--results: no valid records in {path}{detail}")
    return stats, stopped


def _each_record(stream: BinaryIO, stats: ReadStats) -> Iterator[Record]:
    """Every record of the file in file order, with its values (the dispatch order needs t and latency_ms)."""
    for item in iter_blocks(stream, stats, True, counts_only=False):
        if isinstance(item, Record):
            yield item
        elif isinstance(item, Run):
            for rec in item.records():
                stats.lines += 1
                stats.valid += 1
                yield rec


def count_run(run: Run, tally: Tally, attribution: Attribution | None, timelines: list[Timeline]) -> None:
    """A run of vouched lines into a tally whose verdict does not depend on their order: each distinct key once,
    in the order of its first line (so causes and versions are listed as the record-by-record path lists them);
    the timelines get the run's values in file order."""
    for key, count in run.key_counts().items():
        tally.add_records(template(key), count, attribution)
    for timeline in timelines:
        timeline.add_run(run, attribution)


@contextlib.contextmanager
def open_records(path: str, raw: BinaryIO | None) -> Iterator[BinaryIO]:
    if raw is not None:
        yield raw  # its opener closes it
        return
    raw = open_input(str(path), "--results")
    try:
        yield raw
    finally:
        if str(path) != "-":
            raw.close()  # leave standard input itself open


def read_notes(stats: ReadStats, stopped: bool, tally: Tally) -> list[str]:
    notes = []
    if stats.malformed or stats.truncated:
        parts = []
        if stats.malformed:
            parts.append(f"{stats.malformed} malformed line{'s' if stats.malformed != 1 else ''}")
        if stats.truncated:
            parts.append("a truncated last line (a run killed mid-write?)")
        notes.append(f"{' and '.join(parts)} counted as unattributed ({'; '.join(stats.examples[:3])})")
    if tally.method == Method.SEQUENTIAL:
        from splitproof.verifier.inputs.reorder import DEFAULT_WINDOW

        notes.append("records fed to the sequential gate in dispatch order: by t - latency_ms (the request's start), "
                     f"re-sorted within a window of {DEFAULT_WINDOW:,} records")
    if stopped:
        notes.append(f"replay stopped after {tally.total:,} responses"
                     + (" at the sequential verdict" if tally.decided else " (--max-samples)")
                     + "; the rest of the file was not read")
    return notes


def input_summary(path: str, stats: ReadStats, stopped: bool) -> dict[str, object]:
    """What the JSON output says about the file read (``"input"``)."""
    return {"path": path, "lines": stats.lines, "valid": stats.valid, "malformed": stats.malformed,
            "truncated": stats.truncated, "examples": stats.examples, "stopped_early": stopped}
