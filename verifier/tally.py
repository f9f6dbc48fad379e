"""The one tally of a run: every observation -- a replayed results file, live sampling, the Locust users, a
telemetry source's count batches -- is counted here, and the verdict is picked here.

A :class:`Tally` holds the expected split and the verdict's parameters (fractions), counts responses per version
and unattributed ones by cause, hands every record to its sinks (``--save-results``, the HTML timeline), and --
for the sequential method -- feeds the :class:`~verifier.stats.sequential.SequentialGate`. Two ways in, as the gate:

* :meth:`Tally.observe` / :meth:`Tally.record` -- one response of an *ordered* stream (the order it happened in);
* :meth:`Tally.add_counts` / :meth:`Tally.add_batch` -- a batch known only by its counts (a Prometheus window, an
  Envoy stats delta, an access-log aggregate: ``verifier.telemetry``'s ``TelemetryCounts`` is such a batch). The
  gate is updated by the whole batch and decides only at its end (``SequentialGate.observe_counts``): feeding a
  batch response by response in an order of one's choosing is not valid (README "The statistical method").

:meth:`Tally.verdict` is the method's verdict: the fixed-n :func:`~verifier.stats.fixed.judge` over the counts, or
the gate's (frozen once decided). A caller that ran the gate live may still ask for the fixed-n verdict at the end
(the Locust file does, when Locust's own run-time limit ended the run: a length fixed in advance).

Given a :class:`~verifier.health.sequential.HealthMonitor`, the tally also feeds it the error counts of every count
batch that carries statuses (a telemetry source's ``by_status``; :func:`verifier.health.batches.error_counts`), so
the split and the health of a canary are judged from the same batches. Response records feed the health judge
through ``health_records`` (:class:`~verifier.health.responses.ResponseHealth`, a record sink that judges errors
only when a failed call's record names its version by header). With either, the sequential run is
:attr:`Tally.decided` once the split FAILed or both the split and the health decided.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from splitproof.verifier import defaults
from splitproof.verifier.errors import InputError
from splitproof.verifier.expected import Expected, as_expected
from splitproof.verifier.inputs.attribution import Attribution
from splitproof.verifier.inputs.records import Record, unattributed_cause
from splitproof.verifier.stats.checks import check_counts, check_parameters
from splitproof.verifier.stats.fixed import judge
from splitproof.verifier.verdict import Method, Outcome, Verdict

if TYPE_CHECKING:
    from splitproof.verifier.health.model import HealthVerdict
    from splitproof.verifier.health.responses import ResponseHealth
    from splitproof.verifier.health.sequential import HealthMonitor
    from splitproof.verifier.stats.sequential import SequentialGate

UNATTRIBUTED = "unattributed"  # the cause of an unattributed response nobody named


class RecordSink(Protocol):
    """Something that wants every observed record: ``--save-results``, the HTML report's timeline."""

    def add(self, record: Record) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class CountBatch(Protocol):
    """Responses known only by their counts: per version, and unattributed ones by cause."""

    @property
    def counts(self) -> Mapping[str, int]: ...

    @property
    def unattributed(self) -> Mapping[str, int]: ...


@dataclass(frozen=True)
class Batch:
    """A :class:`CountBatch` to build by hand: ``Batch({"production": 412, "canary": 88}, {"http_503": 3})``."""

    counts: Mapping[str, int]
    unattributed: Mapping[str, int] = field(default_factory=dict)


Observation = str | None | Record | CountBatch | Mapping[str, int]


class Tally:
    """Counts of one run against ``expected``, and the verdict of ``method`` over them."""

    def __init__(self, expected: Mapping[str, float], *, method: Method = Method.FIXED_N,
                 alpha: float = defaults.ALPHA, tolerance: float = defaults.TOLERANCE,
                 max_unattributed: float = defaults.MAX_UNATTRIBUTED, power: float = defaults.POWER,
                 sinks: Iterable[RecordSink] = (), max_samples: int | None = None,
                 health: HealthMonitor | None = None, health_records: ResponseHealth | None = None) -> None:
        self.expected: Expected = as_expected(expected)
        check_parameters(alpha, tolerance, max_unattributed, power)
        self.method = Method(method)
        self.alpha, self.tolerance, self.max_unattributed, self.power = alpha, tolerance, max_unattributed, power
        self.gate: SequentialGate | None = None
        if self.method == Method.SEQUENTIAL:
            from splitproof.verifier.stats.sequential import SequentialGate  # a fixed-n tally loads no gate

            self.gate = SequentialGate(self.expected, alpha=alpha, tolerance=tolerance,
                                       max_unattributed=max_unattributed)
        self.sinks = list(sinks)
        self.max_samples = max_samples
        self.health = health
        self.health_records = health_records
        if health_records is not None:
            self.sinks.append(health_records)
        self.counts: Counter[str] = Counter()
        self.causes: Counter[str] = Counter()
        self.unattributed = 0
        self.ok = 0  # successful responses (attributed or not): a target that answers nothing is unreachable

    # ------------------------------------------------------------------------------------------------ state

    @property
    def n(self) -> int:
        """Attributed responses."""
        return sum(self.counts.values())

    @property
    def total(self) -> int:
        return self.n + self.unattributed

    @property
    def decided(self) -> bool:
        """The sequential gate reached PASS or FAIL (never for the fixed-n method). With a health judge: the split
        FAILed (routing is wrong: nothing more to learn from this run), or both the split and the health decided
        -- a health FAIL waits for the split's verdict, so the report says whether the routing was right too."""
        if self.gate is None or not self.gate.decided:
            return False
        health = self.health if self.health is not None else \
            (self.health_records.monitor if self.health_records is not None else None)
        if health is None or self.gate.verdict().outcome == Outcome.FAIL:
            return True
        return health.decided

    @property
    def done(self) -> bool:
        """Nothing more to observe: the gate decided, or ``max_samples`` responses were counted."""
        return self.decided or (self.max_samples is not None and self.total >= self.max_samples)

    # ----------------------------------------------------------------------------------------------- feeding

    def observe(self, version: str | None, cause: str | None = None) -> None:
        """One response of an ordered stream: its version, or None (unattributed, for ``cause``)."""
        if version is None:
            self.unattributed += 1
            self.causes[cause or UNATTRIBUTED] += 1
        else:
            self.counts[version] += 1
        if self.gate is not None:
            self.gate.observe(version)

    def record(self, rec: Record, reattribute: Attribution | None = None) -> None:
        """One response record; ``reattribute`` maps its item count anew (``--class`` over a results file). A failed
        response is unattributed whatever its record says (:func:`verifier.inputs.records.unattributed_cause`) --
        unless its version response header named the version it was routed to (``by="header"``)."""
        if not rec.ok:
            for sink in self.sinks:
                sink.add(rec)
            cause = unattributed_cause(rec)
            self.observe(rec.version if cause is None else None, cause)
            return
        self.ok += 1
        version = reattribute.by_count(rec.channel, rec.items) if reattribute is not None else rec.version
        if version != rec.version:
            rec = rec._replace(version=version)
        for sink in self.sinks:
            sink.add(rec)
        self.observe(version, None if version else unattributed_cause(rec))

    def add_records(self, rec: Record, count: int, reattribute: Attribution | None = None) -> None:
        """``count`` records like ``rec`` whose order does not matter, as ``count`` calls of :meth:`record` would
        count them -- for the fixed-n method only (the gate needs the order: use :meth:`record`). Sinks are not fed:
        a caller counting in bulk feeds them itself (a replay's HTML timeline takes the records' arrays)."""
        if self.gate is not None:
            raise ValueError("add_records is for the fixed-n method: the sequential gate needs records in order")
        if count <= 0:
            return
        if not rec.ok:
            cause = unattributed_cause(rec)  # None: a failed call whose version header named its version
            if cause is None and rec.version is not None:
                self.counts[rec.version] += count
            else:
                self.unattributed += count
                self.causes[cause or rec.status] += count
            return
        self.ok += count
        version = reattribute.by_count(rec.channel, rec.items) if reattribute is not None else rec.version
        if version is None:
            self.unattributed += count
            self.causes[unattributed_cause(rec._replace(version=None)) or UNATTRIBUTED] += count
        else:
            self.counts[version] += count

    def add_counts(self, counts: Mapping[str, int], unattributed: int | Mapping[str, int] = 0) -> None:
        """A batch known only by its counts: per-version responses, and unattributed ones (a number, or by cause)."""
        if isinstance(unattributed, Mapping):
            causes = check_counts(unattributed, 0)
        else:
            causes = {UNATTRIBUTED: check_counts({UNATTRIBUTED: unattributed}, 0)[UNATTRIBUTED]}
        clean = check_counts(counts, 0)
        u = sum(causes.values())
        self.counts.update({v: c for v, c in clean.items() if c})
        self.causes.update({cause: c for cause, c in causes.items() if c})
        self.unattributed += u
        if self.gate is not None:
            self.gate.observe_counts(clean, u)

    def add_batch(self, batch: CountBatch) -> None:
        """A counts-only batch (:class:`Batch`, or a telemetry source's ``TelemetryCounts``); with a health monitor,
        its statuses feed that too (one look per batch)."""
        self.add_counts(batch.counts, batch.unattributed)
        feed = getattr(self.health_records, "add_batch", None)  # a BatchHealth: statuses and latency histograms
        if feed is not None:
            feed(batch)
        if self.health is not None:
            by_status = getattr(batch, "by_status", None)
            if by_status is None:
                raise InputError("the health monitor needs count batches with statuses (a telemetry source's)")
            from splitproof.verifier.health.batches import error_counts  # a health monitor: health is loaded

            self.health.observe_batch(error_counts(by_status))

    def add(self, observation: Observation) -> None:
        """Any one observation: a version (or None), a :class:`Record`, a count batch or a {version: count}."""
        if observation is None or isinstance(observation, str):
            self.observe(observation)
        elif isinstance(observation, Record):
            self.record(observation)
        elif isinstance(observation, CountBatch):
            self.add_batch(observation)
        elif isinstance(observation, Mapping):
            self.add_counts(observation)
        else:
            raise InputError(f"not an observation: {type(observation).__name__} (give a version or None, a Record, "
                             "a count batch or a {version: count} mapping)")

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()

    # ----------------------------------------------------------------------------------------------- verdict

    def verdict(self, method: Method | None = None) -> Verdict:
        """The verdict of ``method`` (default: the tally's own) over what was counted, with the causes."""
        method = self.method if method is None else Method(method)
        if method == Method.SEQUENTIAL:
            if self.gate is None:
                raise ValueError("a sequential verdict needs a tally created with method=SEQUENTIAL")
            verdict = self.gate.verdict()
        else:
            verdict = judge(self.counts, self.unattributed, self.expected, alpha=self.alpha, tolerance=self.tolerance,
                            max_unattributed=self.max_unattributed, power=self.power)
        return dataclasses.replace(verdict, unattributed_causes=dict(self.causes))

    def health_verdict(self) -> HealthVerdict:
        """The health verdict (a tally created with ``health=`` or ``health_records=``)."""
        if self.health_records is not None:
            return self.health_records.verdict()
        if self.health is None:
            raise ValueError("no health monitor: create the tally with health=HealthMonitor(...)")
        return self.health.verdict()
