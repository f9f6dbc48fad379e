"""The rollout's event log (``--json-log``) and the resume state read back from it.

One JSON object per line, each with ``t`` (Unix time), ``event`` and the event's fields (README "Progressive
rollout" lists them). Every line is flushed and ``fsync``'d before the driver moves on, so a SIGKILL loses no
completed event: at worst the line being written is torn; a torn *last* line is ignored when resuming and cut
off before the resumed run appends.

Resume (``rollout --resume --json-log FILE``): the plan comes from the log's ``rollout_started``; every step with a
``verdict`` PASS is done and never repeated; the walk continues at the first step without one -- the step that was
running when the driver died is run again from its start (fresh evidence, after the proxies serve its weights).
A rollout that already ended (promoted or rolled back) is not resumed.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from splitproof.setup.rollout.plan import RolloutPlan
from splitproof.verifier.errors import InputError

MAX_LOG_BYTES = 16 << 20  # a rollout writes a few dozen lines; a bigger file is not one of ours

ROLLOUT_STARTED = "rollout_started"
ROLLOUT_RESUMED = "rollout_resumed"
STEP_STARTED = "step_started"
WEIGHTS_WRITTEN = "weights_written"
WEIGHTS_SERVED = "weights_served"
VERDICT = "verdict"
HELD = "held"
ROLLBACK_STARTED = "rollback_started"
ROLLED_BACK = "rolled_back"
PROMOTED = "promoted"
INTERRUPTED = "interrupted"
ABORTED = "aborted"
FINAL = (PROMOTED, ROLLED_BACK)


class EventLog:
    """Append events to ``path`` (None: keep them in memory only, for the report and tests)."""

    def __init__(self, path: str | Path | None, clock: Any = time.time) -> None:
        self.path = Path(path) if path is not None else None
        self.events: list[dict[str, Any]] = []
        self._clock = clock
        self._fh: IO[str] | None = None
        if self.path is not None:
            try:
                _drop_torn_tail(self.path)
                self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 -- closed in close()
            except OSError as exc:
                raise InputError(f"--json-log: cannot write {self.path}: {exc.strerror or exc}") from None

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        entry = {"t": round(self._clock(), 6), "event": event, **fields}
        self.events.append(entry)
        if self._fh is not None:
            self._fh.write(json.dumps(entry, sort_keys=False, default=str) + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
        return entry

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _drop_torn_tail(path: Path) -> None:
    """A log a SIGKILL left ending mid-line: cut that torn event off (it never completed) before appending."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        return
    with open(path, "rb+") as fh:
        fh.seek(max(0, size - MAX_LOG_BYTES))
        data = fh.read()
        if data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n")
        fh.truncate(size - len(data) + cut + 1 if cut >= 0 else 0)


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """The events of a log; a torn last line (the driver killed mid-write) is dropped, any other bad line is an
    InputError naming it."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_LOG_BYTES + 1)
    except OSError as exc:
        raise InputError(f"--json-log: cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_LOG_BYTES:
        raise InputError(f"--json-log {path} is larger than {MAX_LOG_BYTES >> 20} MiB: not a rollout log")
    lines = data.decode("utf-8", errors="replace").split("\n")
    events: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            if number == len(lines):  # the last line, with no newline: torn by a kill
                break
            raise InputError(f"--json-log {path}: line {number} is not JSON: not a rollout log") from None
        if not isinstance(entry, dict) or "event" not in entry:
            raise InputError(f"--json-log {path}: line {number} is not a rollout event")
        events.append(entry)
    return events


@dataclass(frozen=True)
class ResumeState:
    plan: RolloutPlan
    passed: tuple[int, ...]          # the percents of the steps already PASSed, in order
    next_index: int                  # where the walk continues
    last_event: str
    weights: dict[str, int] | None   # the weights the log last recorded as written
    where: dict[str, str]            # the mesh or cluster it drove (``rollout_started``'s ``where``)


def resume_state(events: list[dict[str, Any]], path: str | Path = "--json-log") -> ResumeState:
    """What ``--resume`` continues from; InputError for a log that holds no rollout or one that already ended."""
    started = [e for e in events if e.get("event") == ROLLOUT_STARTED]
    if not started:
        raise InputError(f"--resume: {path} holds no rollout (no {ROLLOUT_STARTED} event)")
    first = events.index(started[-1])
    mine = events[first:]  # the last rollout in the file
    plan = RolloutPlan.from_json(started[-1].get("plan") or {})
    last = mine[-1].get("event", "")
    if last in FINAL:
        raise InputError(f"--resume: the rollout in {path} already ended ({last}); start a new one "
                         f"with a new --json-log")
    passed: list[int] = []
    weights: dict[str, int] | None = None
    for e in mine:
        if e.get("event") == VERDICT and e.get("outcome") == "PASS":
            passed.append(int(e["percent"]))
        if e.get("event") == WEIGHTS_WRITTEN:
            weights = {str(k): int(v) for k, v in (e.get("weights") or {}).items()}
    index = 0
    while index < len(plan.steps) and plan.steps[index] in passed:
        index += 1
    where = {str(k): str(v) for k, v in (started[-1].get("where") or {}).items()}
    return ResumeState(plan, tuple(passed), index, last, weights, where)
