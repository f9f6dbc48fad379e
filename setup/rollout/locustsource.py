"""``--source locust``: each step judged on the responses of a real Locust run (loadtest/boutique.py, headless) --
shoppers browsing product pages through the ingress (4 vs 2 recommendations on a page) and a gRPC user on the mesh
entry (5 vs 2) -- started once for the whole rollout and stopped with it.

Locust writes one record per response (``--split-results``); a step reads the records appended since it began,
in the order they were written, and counts a response only when its request **started after** the proxies served
the step's weights (record time minus its latency): Envoy picks the route when a request starts, so one begun on the
old weights is never judged. Records go to the one Tally (the sequential split gate) in dispatch order -- the file is
in completion order, which depends on which version answered faster -- re-sorted by start time within a window of
``ORDER_WINDOW_PER_USER`` records per user (verifier.inputs.reorder). ``--health`` is refused:
a failed response in the Locust records names no version (item counts only), so errors cannot be attributed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from splitproof import loadtest
from splitproof.setup import proc
from splitproof.setup.rollout.driver import NoCanaryCheck, StepVerdict
from splitproof.setup.rollout.plan import CANARY, RolloutPlan, Step
from splitproof.setup.rollout.sources import CHECK_SAMPLES, Series
from splitproof.verifier.errors import InputError, Unreachable
from splitproof.verifier.expected import Expected
from splitproof.verifier.inputs.appendfile import data_end
from splitproof.verifier.inputs.records import Record, RecordError, parse_record
from splitproof.verifier.inputs.reorder import dispatch_ordered
from splitproof.verifier.tally import Tally
from splitproof.verifier.verdict import Method

LOCUST_NO_HEALTH = ("--health with --source locust: a failed response in the Locust records names no version "
                    "(attribution by item count), so errors cannot be attributed; use --source sample with the "
                    "mesh's --version-header")
POLL_S = 0.2
NO_RECORDS_AFTER_S = 30.0  # Locust running but writing nothing for this long: the target does not answer
ORDER_WINDOW_PER_USER = 16  # records held per Locust user to restore dispatch order (each has one request in flight)
MAX_RUN_S = 6 * 3600       # Locust's own -t: it never outlives a forgotten rollout


def locust_argv(host: str, grpc_target: str | None, results: Path, users: int, log_prefix: Path) -> list[str]:
    argv = proc.python_argv(
        "-m", "locust", "-f", str(Path(loadtest.__file__).resolve().parent / "boutique.py"), "--headless",
        "-u", str(users), "-r", str(users), "-t", f"{MAX_RUN_S}s", "--stop-timeout", "5", "--host", host,
        "--split-results", str(results), "--only-summary", "--loglevel", "WARNING", "--csv", str(log_prefix))
    return argv + (["--grpc-target", grpc_target] if grpc_target else [])


class RecordTail:
    """The complete lines appended to a growing records file since the last read. The file is as long as the
    writer's memory-mapped window (verifier.inputs.appendfile): what is not written yet reads as NUL bytes, so a
    read ends at the first NUL and the next one starts there."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.partial = path, 0, b""

    def skip_to_end(self) -> None:
        self.offset = data_end(self.path)  # not the size: a file being written ends in NUL padding
        self.partial = b""

    def read(self) -> Iterator[Record]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read(1 << 22)
        except FileNotFoundError:
            return
        written = data.find(b"\0")  # the writer's memory map: NULs are what it has not written yet
        if written >= 0:
            data = data[:written]
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            try:
                yield parse_record(line.decode("utf-8", errors="replace"))
            except RecordError:
                continue


class LocustSource:
    def __init__(self, host: str, grpc_target: str | None, workdir: Path, *, health: bool, users: int = 10,
                 clock: Callable[[], float] = time.time) -> None:
        if health:
            raise InputError(LOCUST_NO_HEALTH)
        self.host, self.grpc_target, self.users, self.clock = host, grpc_target, users, clock
        self.workdir = workdir
        self.results = workdir / "locust-records.jsonl"
        self.tail = RecordTail(self.results)
        self.child: proc.Child | None = None
        self._pause = threading.Event()  # never set: the poll interval's timer

    def _running(self) -> None:
        if self.child is None:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.results.unlink(missing_ok=True)
            self.child = proc.spawn(locust_argv(self.host, self.grpc_target, self.results, self.users,
                                                self.workdir / "locust"),
                                    log=self.workdir / "locust.log", die_with_parent=True)
        if self.child.poll() is not None:
            raise Unreachable(f"Locust exited (code {self.child.returncode}; log: {self.workdir / 'locust.log'})")

    def _records_since(self, since: float, deadline: float) -> Iterator[Record]:
        """Records of requests started after ``since``, until ``deadline`` (monotonic)."""
        self._running()
        self.tail.skip_to_end()
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            got = False
            for rec in self.tail.read():
                got = True
                if rec.t - rec.latency_ms / 1000 >= since:
                    yield rec
            if got:
                last_new = time.monotonic()
            elif time.monotonic() - last_new > NO_RECORDS_AFTER_S:
                self._running()
                raise Unreachable(f"Locust wrote no response for {NO_RECORDS_AFTER_S:g}s (log: "
                                  f"{self.workdir / 'locust.log'})")
            self._pause.wait(POLL_S)  # a file poll, not a process wait

    def judge(self, plan: RolloutPlan, step: Step, timeout: float) -> StepVerdict:
        expected = Expected.from_weights(step.weights, source=step.label)
        tally = Tally(expected, method=Method.SEQUENTIAL, alpha=plan.step_alpha(step), tolerance=plan.tolerance)
        series = Series(time.monotonic())
        since = self.clock()
        window = ORDER_WINDOW_PER_USER * max(1, self.users)
        for rec in dispatch_ordered(self._records_since(since, time.monotonic() + timeout), window):
            tally.record(rec)
            series.add(time.monotonic(), tally.counts[CANARY], tally.n)
            if tally.decided:
                break
        split = tally.verdict()
        row = next((r for r in split.rows if r.version == CANARY), None)
        band = (max(0.0, step.percent / 100 - row.margin), min(1.0, step.percent / 100 + row.margin)) if row else None
        return StepVerdict(str(split.outcome), f"split {split.outcome}: {split.reason} (Locust responses started "
                                               "after the switch)", samples=tally.total,
                           counts={**dict(tally.counts), "unattributed": tally.unattributed}, split=str(split.outcome),
                           band=band, interval=(row.lo, row.hi) if row else None, series=tuple(series.points))

    def confirm_no_canary(self) -> NoCanaryCheck:
        seen = canary = 0
        for rec in self._records_since(self.clock(), time.monotonic() + 30.0):
            if rec.ok:
                seen += 1
                canary += rec.version == CANARY
            if seen >= CHECK_SAMPLES:
                break
        return NoCanaryCheck(seen, canary, "(Locust responses started after the rollback was served)")

    def close(self) -> None:
        if self.child is not None:
            proc.stop(self.child)
            self.child = None
