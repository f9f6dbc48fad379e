"""Where split records go: straight to the file (local runner), or to the master with the worker's stats report.

Only one process ever writes ``--split-results``: the local runner, or the master in distributed mode
(``--master``/``--worker`` or ``--processes``). Workers buffer serialised records and attach them to the stats
report Locust already sends to the master every few seconds (``report_to_master`` -> ``worker_report``), so records
travel in the same message as the request counts Locust shows: the file's line count equals the number of split
requests Locust counted, including the final report a worker sends when it quits.

Each record is appended and flushed as it is produced (local) or per received batch (master), so a run that is
killed keeps every complete line.

Dispatch order: the users number each split request when they send it (:meth:`SplitRecorder.dispatch`), and the
observers -- the live gate and health judge -- get the records in that order (verifier.inputs.reorder), never in
the order the responses came back, which depends on which version answered faster. A worker sends its batches in
its own dispatch order; the master feeds each batch in that order (README, "Dispatch order").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from splitproof.verifier.inputs.records import Record, RecordError, RecordWriter, parse_record, unattributed_cause
from splitproof.verifier.inputs.reorder import ReorderBuffer
from splitproof.verifier.tally import UNATTRIBUTED as UNNAMED_CAUSE

REPORT_KEY = "splitproof_records"

# Called with each response, in dispatch order (a master: in each worker batch's order): its version, or None
# when it is unattributed -- then with its cause. One call per response: the Locust file makes one per request.
Observer = Callable[[str | None, str | None], None]
# Called with each batch's records themselves (the health judge needs status and latency): the local runner's as
# they are made, a worker's parsed from the lines it sent -- only when someone asks for them.
RecordObserver = Callable[[list[Record]], None]


def paired(versions: Iterable[str | None], causes: Iterable[str]) -> Iterator[tuple[str | None, str | None]]:
    """A batch's responses as (version, cause): ``causes`` names the batch's unattributed ones, in order."""
    named = iter(causes)
    for version in versions:
        yield version, (next(named, UNNAMED_CAUSE) if version is None else None)


def open_results(path: str | Path, append: bool) -> RecordWriter:
    """Open the results file: truncated like Locust's --csv/--html unless ``append``. OSError propagates."""
    target = Path(path)
    if not append:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "w", encoding="utf-8"):
            pass
    return RecordWriter(target)


@dataclass
class SplitRecorder:
    """Collects the records of one Locust process.

    mode "local": write each record now (if a file is configured) and tell the observers.
    mode "worker": buffer; ``drain_into(report)`` moves the buffer into the stats report for the master.
    mode "master": ``receive(report)`` writes a worker's batch and tells the observers.
    """

    mode: str
    writer: RecordWriter | None = None
    observers: list[Observer] = field(default_factory=list)
    record_observers: list[RecordObserver] = field(default_factory=list)
    _lines: list[str] = field(default_factory=list)
    _versions: list[str | None] = field(default_factory=list)
    _causes: list[str] = field(default_factory=list)
    received: int = 0  # records this process has accounted for (written or observed)
    order: ReorderBuffer[Record] = field(default_factory=ReorderBuffer)

    def __post_init__(self) -> None:
        # Number a split request as it is sent; pass the number to :meth:`add` (or :meth:`skip`). The buffer's own
        # method, bound here: the Locust file numbers every request, and a method in between was one call more.
        self.dispatch: Callable[[], int] = self.order.ticket

    def add(self, record: Record, seq: int | None = None) -> None:
        """The response of request ``seq``: written now (local), released to the observers in dispatch order.
        Without ``seq`` (a caller that does not number) it is released at once."""
        if seq is None:
            self._release(record, False)
            return
        if self.mode != "worker" and self.writer is not None:
            self.writer.write(record)  # the file keeps completion order and every line at once
        for ready in self.order.put(seq, record):
            self._release(ready, True)

    def skip(self, seq: int) -> None:
        """Request ``seq`` produced no record (its user was stopped mid-request): release past its slot."""
        for ready in self.order.skip(seq):
            self._release(ready, True)

    def flush_order(self) -> None:
        """The end of the run: release what still waits for requests that will never complete."""
        for ready in self.order.flush():
            self._release(ready, True)

    def _release(self, record: Record, written: bool) -> None:
        cause = unattributed_cause(record)
        version = None if cause is not None else record.version  # a failed response is unattributed
        if self.mode == "worker":
            self._lines.append(record.to_json())
            self._versions.append(version)
            if cause is not None:
                self._causes.append(cause)
            return
        if self.writer is not None and not written:
            self.writer.write(record)
        for record_observer in self.record_observers:
            record_observer([record])
        self.received += 1
        for observer in self.observers:
            observer(version, cause)

    def drain_into(self, report: dict[str, Any]) -> None:
        """Worker side: attach the buffered records to the outgoing stats report (and forget them)."""
        if not self._lines:
            return
        report[REPORT_KEY] = {"lines": self._lines, "versions": self._versions, "causes": self._causes}
        self._lines = []
        self._versions = []
        self._causes = []

    def receive(self, report: dict[str, Any]) -> int:
        """Master side: write the records a worker attached to its report; returns how many."""
        batch = report.get(REPORT_KEY)
        if not batch:
            return 0
        lines: list[str] = list(batch.get("lines", ()))
        versions: list[str | None] = list(batch.get("versions", ()))
        causes: list[str] = [str(c) for c in batch.get("causes", ())]
        if self.writer is not None:
            self.writer.write_lines(lines)
        if self.record_observers:
            parsed = []
            for line in lines:
                try:
                    parsed.append(parse_record(line))
                except RecordError:  # a worker sent what it made itself: never expected
                    continue
            for observer in self.record_observers:
                observer(parsed)
        self._observe(versions, causes)
        return len(lines)

    def _observe(self, versions: list[str | None], causes: list[str]) -> None:
        self.received += len(versions)
        for version, cause in paired(versions, causes):
            for observer in self.observers:
                observer(version, cause)

    @property
    def pending(self) -> int:
        return len(self._lines)

    def close(self) -> None:
        self.flush_order()
        if self.writer is not None:
            self.writer.close()
