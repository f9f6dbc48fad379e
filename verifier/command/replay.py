"""``--results FILE``: stream a records file into the tally. Bad lines count as unattributed where they occur
(never dropped); the read stops early at the sequential verdict or at ``--max-samples``. The sequential gate reads
the records in dispatch order (verifier.inputs.reorder.by_start: the file's lines are in completion order)."""

from __future__ import annotations

from splitproof.verifier.errors import InputError
from splitproof.verifier.inputfile import InputFileError
from splitproof.verifier.inputs.attribution import Attribution
from splitproof.verifier.inputs.records import ReadStats, read_records
from splitproof.verifier.inputs.reorder import DEFAULT_WINDOW, dispatch_ordered
from splitproof.verifier.tally import Tally
from splitproof.verifier.verdict import Method

CAUSE_MALFORMED = "malformed line"
CAUSE_TRUNCATED = "truncated line"


def observe_results(path: str, tally: Tally, attribution: Attribution | None) -> tuple[ReadStats, bool]:
    """Feed the records of ``path`` to ``tally``. Returns the read statistics and whether the read stopped early
    (decided / --max-samples)."""
    stats = ReadStats()
    seen_malformed = seen_truncated = 0
    stopped = False

    def catch_up() -> None:
        nonlocal seen_malformed, seen_truncated
        while seen_malformed < stats.malformed:
            seen_malformed += 1
            tally.observe(None, CAUSE_MALFORMED)
        while seen_truncated < stats.truncated:
            seen_truncated += 1
            tally.observe(None, CAUSE_TRUNCATED)

    try:
        records = read_records(path, stats)
        if tally.method == Method.SEQUENTIAL:
            records = dispatch_ordered(records)
        for rec in records:
            catch_up()
            if tally.done:
                stopped = True
                break
            tally.record(rec, attribution)
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
