"""Response records as the health judge's input: what ``verify-split --health`` (a results file, live sampling)
and the Locust plugin feed, one record at a time (a :class:`verifier.tally.ResponseSink`).

Per record (after the tally's attribution):

* a success with a version counts as a good response of that version for errors, and -- its latency -- for slow
  responses;
* a failure counts as an error of the version its response header named (``Record.by == "header"``: the header
  arrives with the error). A failure without one names no version and is left out of the comparison (it still
  counts against the split's unattributed limit).

Errors are judged only when failures can be attributed: with header attribution. Under payload attribution a
failed call has no payload, so every failure would be left out and the canary's error rate would look perfect: the
errors metric is then *not judged* (:data:`verifier.health.model.ERRORS_NOT_ATTRIBUTABLE`) and latency of the
successful, attributed responses is judged alone. ``errors_attributable=None`` lets the records say: the first
successful attributed record decides (header-attributed or not); failures before it wait (bounded). Under header
attribution a success that was attributed by payload all the same (a mixed file) counts for latency only, so both
sides of the error comparison come from header-attributed responses.

The sequential form feeds :class:`verifier.health.sequential.HealthMonitor` (a look after every response); the
fixed-n form counts with the same monitor (``decide=False``) and judges the counts at the end
(:func:`verifier.health.fixed.judge_health`), with the latency threshold the same production warm-up set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from splitproof.verifier.errors import InputError
from splitproof.verifier.health.decide import overall
from splitproof.verifier.health.difference import rate_prior, sequence_bound
from splitproof.verifier.health.model import (
    ERRORS,
    ERRORS_NOT_ATTRIBUTABLE,
    LATENCY,
    HealthVerdict,
    MetricVerdict,
    baseline_of,
)
from splitproof.verifier.health.options import HealthOptions
from splitproof.verifier.health.sequential import HealthMonitor
from splitproof.verifier.verdict import Method, Outcome

# A results file keeps latency_ms to the microsecond (verifier.inputs.records.LATENCY_PLACES, which a test keeps
# equal to this; health sits below inputs and does not import it).
LATENCY_PLACES = 3


class Response(Protocol):
    """What the judge reads of a response record (:class:`verifier.inputs.records.Record`)."""

    @property
    def t(self) -> float: ...
    @property
    def ok(self) -> bool: ...
    @property
    def version(self) -> str | None: ...
    @property
    def latency_ms(self) -> float: ...
    @property
    def header_attributed(self) -> bool: ...


PENDING_LIMIT = 10_000   # failures held until a success says how the run attributes (then: not attributable)
MAX_POINTS = 240         # error-rate-over-time points kept for the HTML report (thinned by doubling the step)


@dataclass(frozen=True)
class ErrorPoint:
    """The error comparison after ``n`` responses: per-version rates, and per canary the difference's
    anytime-valid confidence sequence (lower end at 1 - alpha_fail, upper at 1 - alpha)."""

    n: int
    t: float
    rates: dict[str, float | None]
    bounds: dict[str, tuple[float, float] | None]


class ResponseHealth:
    """The health of one run from its response records; ``add(record)`` per record (a ResponseSink)."""

    def __init__(self, options: HealthOptions, versions: Sequence[str], baseline: str, *,
                 method: Method = Method.SEQUENTIAL, errors_attributable: bool | None = None) -> None:
        options.check()
        self.options, self.versions, self.baseline = options, list(versions), baseline
        self.method = Method(method)
        self.canaries = [v for v in self.versions if v != baseline]
        self.errors_attributable = errors_attributable
        self.monitor: HealthMonitor | None = None
        self._pending: list[Response] = []
        self.unnamed_errors = 0       # failures that named no version (not compared)
        self.payload_successes = 0    # header mode: successes attributed by payload (latency only)
        self.points: list[ErrorPoint] = []
        self._step, self._seen = 1, 0
        self._prior = rate_prior(options.max_error_increase)
        if errors_attributable is not None:
            self._start(errors_attributable)
        else:
            # validate versions/baseline now (one-line errors before anything is read)
            options.monitor(self.versions, baseline, decide=False)

    @classmethod
    def for_expected(cls, options: HealthOptions, expected: Mapping[str, float], *, method: Method,
                     errors_attributable: bool | None) -> ResponseHealth:
        """For an expected split: its versions with traffic, production (:func:`baseline_of`) against the rest."""
        versions = [v for v, share in expected.items() if share > 0]
        if len(versions) < 2:
            raise InputError("the health judge needs a canary besides production: the expected split gives traffic "
                             f"to {', '.join(versions) or 'no version'} only")
        baseline = baseline_of({v: expected[v] for v in versions})
        return cls(options, versions, baseline, method=method, errors_attributable=errors_attributable)

    def _start(self, attributable: bool) -> None:
        self.errors_attributable = attributable
        self.monitor = self.options.monitor(self.versions, self.baseline, errors_attributable=attributable,
                                            decide=self.method == Method.SEQUENTIAL)
        pending, self._pending = self._pending, []
        for rec in pending:
            self._feed(rec)

    # ----------------------------------------------------------------------------------------------- feeding

    def add(self, rec: Response) -> None:
        if self.monitor is None:
            if rec.ok and rec.version is not None:
                self._start(rec.header_attributed)
            else:
                if not rec.ok:
                    self._pending.append(rec)
                    if len(self._pending) >= PENDING_LIMIT:
                        self._start(any(r.header_attributed for r in self._pending))
                return
        self._feed(rec)

    def _feed(self, rec: Response) -> None:
        monitor = self.monitor
        assert monitor is not None
        if rec.ok:
            if rec.version is None:
                return
            count_error = bool(self.errors_attributable) and rec.header_attributed
            if self.errors_attributable and not rec.header_attributed:
                self.payload_successes += 1
            # the latency as the results file keeps it: the live judge and a replay of the file compare the same
            # numbers with the same threshold (production's warm-up quantile), so they reach the same verdict
            monitor.observe(rec.version, error=False, latency_ms=round(rec.latency_ms, LATENCY_PLACES),
                            count_error=count_error)
        elif self.errors_attributable and rec.header_attributed and rec.version is not None:
            monitor.observe(rec.version, error=True)
        else:
            self.unnamed_errors += 1
            return
        self._seen += 1
        if self._seen % self._step == 0:
            self._snapshot(rec.t)

    def _snapshot(self, t: float) -> None:
        assert self.monitor is not None
        counts = self.monitor.tallies().get(ERRORS)
        if counts is None:
            return
        rates = {v: c.rate for v, c in counts.items()}
        base = counts.get(self.baseline)
        bounds: dict[str, tuple[float, float] | None] = {}
        for canary in self.canaries:
            c = counts.get(canary)
            if c is None or base is None or not c.total or not base.total:
                bounds[canary] = None
                continue
            lo = sequence_bound(c.bad, c.total, base.bad, base.total, self._prior, self.monitor.alpha_fail, "lower")
            hi = sequence_bound(c.bad, c.total, base.bad, base.total, self._prior, self.monitor.alpha, "upper")
            bounds[canary] = (lo, hi)
        self.points.append(ErrorPoint(self._seen, t, rates, bounds))
        if len(self.points) > MAX_POINTS:
            self.points = self.points[1::2]
            self._step *= 2

    def close(self) -> None:
        if self.monitor is None:
            self._start(any(r.header_attributed for r in self._pending))

    # ----------------------------------------------------------------------------------------------- verdict

    @property
    def decided(self) -> bool:
        return self.monitor is not None and self.monitor.decided

    def failed(self) -> bool:
        return self.decided and self.verdict().outcome == Outcome.FAIL

    def verdict(self) -> HealthVerdict:
        if self.monitor is None:
            self.close()
        monitor = self.monitor
        assert monitor is not None
        if self.method == Method.SEQUENTIAL:
            verdict = monitor.verdict()
        else:
            verdict = self._fixed(monitor)
        return dataclasses.replace(verdict, notes=tuple(verdict.notes) + tuple(self.notes()))

    def _fixed(self, monitor: HealthMonitor) -> HealthVerdict:
        tallies: dict[str, object] = dict(monitor.tallies())
        if not self.errors_attributable:
            tallies[ERRORS] = ERRORS_NOT_ATTRIBUTABLE
        criteria = monitor.criteria
        verdict = self.options.judge(tallies, self.baseline, self.canaries, criteria)  # type: ignore[arg-type]
        if self.options.latency and monitor.latency_threshold is None:
            warm = monitor.warmup
            seen, need = (warm.collected, warm.count) if warm is not None else (0, self.options.warmup)
            latency = next(c for c in criteria if c.metric == LATENCY)
            pending = MetricVerdict(LATENCY, Outcome.INCONCLUSIVE,
                                    f"latency: production's warm-up did not finish ({seen} of {need} successful "
                                    "responses set the slow threshold)", (), latency)
            metrics = (*verdict.metrics, pending)
            outcome, reason = overall(metrics, verdict.samples_needed)
            verdict = dataclasses.replace(verdict, outcome=outcome, reason=reason, metrics=metrics)
        return verdict

    def notes(self) -> list[str]:
        out = []
        if self.errors_attributable and self.unnamed_errors:
            out.append(f"{self.unnamed_errors:,} failed responses named no version (no version header): left out of "
                       "the error comparison; they count against the split's unattributed limit")
        if self.payload_successes:
            out.append(f"{self.payload_successes:,} successful responses were attributed by payload, not by header: "
                       "counted for latency only (their failures could not have named a version)")
        return out

    def attribution(self) -> str:
        if self.errors_attributable:
            return "header"
        return "payload (errors not attributable)" if self.errors_attributable is False else "unknown"

