"""A telemetry count batch as the health judge's input: per version, the requests whose outcome is known and how many
of them failed -- what :meth:`verifier.health.sequential.HealthMonitor.observe_batch` takes, so the one tally can
feed the health monitor from the same batches it counts for the split (verifier/tally.py).

A request is bad when its status says so (:attr:`verifier.telemetry.result.StatusKey.ok` is False: not 2xx, a gRPC
status other than OK, or an Envoy response flag). A request whose status the source does not know (``ok`` is None)
is left out of the error counts entirely -- counted neither good nor bad, so it cannot make a canary look healthier
than it is. Unattributed requests (no version) cannot be compared and are left out too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from splitproof.verifier.health.model import ERRORS, LATENCY, MetricCount


def error_counts(by_status: Mapping[tuple[str | None, Any], int]) -> dict[str, dict[str, MetricCount]]:
    """``{ERRORS: {version: MetricCount(known, bad)}}`` from a batch's ``by_status`` ((version, status) -> requests)."""
    known: dict[str, int] = {}
    bad: dict[str, int] = {}
    for (version, status), n in by_status.items():
        ok = status.ok
        if version is None or ok is None or n <= 0:
            continue
        known[version] = known.get(version, 0) + int(n)
        if not ok:
            bad[version] = bad.get(version, 0) + int(n)
    return {ERRORS: {v: MetricCount(total, bad.get(v, 0)) for v, total in known.items()}}


class BatchHealth:
    """The health of a telemetry run from its count batches (a window: one batch, fixed-n; ``--watch``: one batch
    per poll, the anytime-valid monitor deciding at batch boundaries). Duck-typed on the batch (``by_status``,
    ``latency``: version -> cumulative histogram with ``bounds`` / ``cumulative``), so this layer needs nothing of
    verifier.telemetry.

    Errors: every request's status is known per version (the source knows the version of failed requests too).
    Latency: from the per-version duration histograms, with the slow threshold a bucket boundary -- the given
    ``--latency-threshold-ms`` rounded *down* to one (:func:`verifier.health.latency.bucket_threshold`). The
    warm-up rule needs individual responses; without a given threshold, or from a source without histograms,
    latency is not judged and a note says why. The monitor is built at the first batch (its boundaries).
    """

    def __init__(self, options: Any, versions: list[str], baseline: str, *, method: Any) -> None:
        from splitproof.verifier.verdict import Method

        self.options, self.versions, self.baseline = options, versions, baseline
        self.method = Method(method)
        self.canaries = [v for v in versions if v != baseline]
        self.monitor: Any = None
        self.threshold: Any = None
        self.notes: list[str] = []
        self._http_only_noted = False
        options.check()

    def _start(self, batch: Any) -> None:
        import dataclasses

        from splitproof.verifier.health.latency import bucket_threshold
        from splitproof.verifier.verdict import Method

        options = self.options
        histograms = getattr(batch, "latency", None) or {}
        if options.latency:
            if options.latency_threshold_ms is None:
                self.notes.append("latency not judged: from duration histograms the slow threshold must be given "
                                  "(--latency-threshold-ms, rounded down to a bucket boundary); the warm-up rule "
                                  "needs individual responses")
                options = dataclasses.replace(options, latency=False)
            elif not histograms:
                self.notes.append("latency not judged: this source has no duration histograms (Istio's "
                                  "istio_request_duration_milliseconds, Envoy admin's upstream_rq_time buckets)")
                options = dataclasses.replace(options, latency=False)
            else:
                bounds = next(iter(histograms.values())).bounds
                self.threshold = bucket_threshold(options.latency_threshold_ms, bounds)
                options = dataclasses.replace(options, latency_threshold_ms=self.threshold.ms)
                if self.threshold.source != "given":
                    self.notes.append(f"slow threshold {self.threshold.ms:g} ms: the bucket boundary at or below the "
                                      f"{self.options.latency_threshold_ms:g} ms asked")
        self.options = options
        self.monitor = options.monitor(self.versions, self.baseline, errors_attributable=True,
                                       decide=self.method == Method.SEQUENTIAL)

    def add_batch(self, batch: Any) -> None:
        if self.monitor is None:
            self._start(batch)
        self._note_status_kinds(batch.by_status)
        delta: dict[str, dict[str, MetricCount]] = error_counts(batch.by_status)
        if self.threshold is not None:
            slow: dict[str, MetricCount] = {}
            for version, h in (getattr(batch, "latency", None) or {}).items():
                if version is None:
                    continue
                total = int(h.cumulative[-1])
                fast = next((int(c) for b, c in zip(h.bounds, h.cumulative, strict=True)
                             if abs(b - self.threshold.ms) < 1e-9), None)
                if fast is None:
                    continue
                slow[version] = MetricCount(total, total - fast)
            delta[LATENCY] = slow
        self.monitor.observe_batch(delta)

    def _note_status_kinds(self, by_status: Mapping[tuple[str | None, Any], int]) -> None:
        """Say once when the errors can only be HTTP ones: no status row carries a gRPC status (an HTTP service, or
        a source without one: Envoy's ``upstream_rq_<code>`` counters, Istio's default access-log format -- where a
        gRPC call that failed on an HTTP 200 response counts as good)."""
        if self._http_only_noted or not by_status:
            return
        if all(getattr(status, "grpc_status", "-") in ("-", "") for _version, status in by_status):
            self._http_only_noted = True
            self.notes.append("errors from HTTP statuses only: no request here carries a gRPC status -- an HTTP "
                              "service, or a source that cannot see one (Envoy's upstream_rq_<code> counters, Istio's "
                              "default access-log format), where a gRPC call that failed on an HTTP 200 counts as "
                              "good; for a gRPC service judge errors with --prometheus (grpc_response_status)")

    def add(self, record: Any) -> None:
        """A response record (a record sink): telemetry runs have none."""

    def close(self) -> None:
        """Nothing to flush."""

    @property
    def decided(self) -> bool:
        return self.monitor is not None and self.monitor.decided

    def verdict(self) -> Any:
        import dataclasses

        from splitproof.verifier.verdict import Method

        if self.monitor is None:  # no batch at all
            self.monitor = self.options.monitor(self.versions, self.baseline, decide=False)
        if self.method == Method.SEQUENTIAL:
            verdict = self.monitor.verdict()
        else:
            verdict = self.options.judge(self.monitor.tallies(), self.baseline, self.canaries, self.monitor.criteria)
        return dataclasses.replace(verdict, notes=tuple(verdict.notes) + tuple(self.notes))

    def attribution(self) -> str:
        return "telemetry (the source knows every request's version)"
