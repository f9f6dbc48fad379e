"""The one result every counts-only telemetry source returns: ``TelemetryCounts``.

Counts are *requests routed to each version* -- errors included (the split is about routing; whether the canary
answered well is the health judge's question, answered from ``by_status`` and ``latency``). Requests the source
saw but could not attribute to a version are ``unattributed`` by cause; what the source read but that is not part of
the split at all (inbound log lines, other services, unparseable lines, ignored series) is ``skipped`` by reason --
reported, never silently dropped. A watch yields the same type once per poll: a batch whose ``window`` is the poll
interval. Every result is a count batch for the one tally: ``Tally.add_batch(result)`` (or ``verify(results, ...)``)
counts it and feeds the sequential gate at the batch's boundary (verifier/tally.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from splitproof.verifier.telemetry.latency import LatencyHistogram
from splitproof.verifier.telemetry.window import Window

NONE = "-"  # what Envoy prints for a value it does not have (and what we use for one the source does not carry)


@dataclass(frozen=True, slots=True, order=True)
class StatusKey:
    """How requests ended: HTTP status, gRPC status and Envoy response flags, each a string, ``-`` when unknown.

    Istio's labels ``response_code`` / ``grpc_response_status`` / ``response_flags``; Envoy's ``upstream_rq_<code>``
    (code only); the access log's ``%RESPONSE_CODE%`` / ``%RESPONSE_FLAGS%`` (no gRPC status in Istio's default
    format)."""

    response_code: str = NONE
    grpc_status: str = NONE
    flags: str = NONE

    @property
    def ok(self) -> bool | None:
        """True for a 2xx (and gRPC OK when known) without response flags; None when the code is unknown."""
        if self.response_code in (NONE, "", "0"):
            return None
        return (self.response_code.startswith("2") and self.grpc_status in (NONE, "", "0")
                and self.flags in (NONE, ""))


def _frozen(mapping: Mapping) -> Mapping:  # type: ignore[type-arg]
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class TelemetryCounts:
    """Exact integer request counts per version over ``window`` from one ``source``.

    ``by_status`` maps ``(version, StatusKey)`` to requests (version None = unattributed rows);
    ``latency`` maps a version to its duration histogram when the source has one; ``notes`` are one-line remarks
    for the report (counter resets seen, series that began inside the window, reporter used, ...)."""

    counts: Mapping[str, int]
    unattributed: Mapping[str, int]
    window: Window
    source: str
    by_status: Mapping[tuple[str | None, StatusKey], int] = field(default_factory=dict)
    skipped: Mapping[str, int] = field(default_factory=dict)
    latency: Mapping[str, LatencyHistogram] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("counts", "unattributed", "by_status", "skipped", "latency"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    @property
    def attributed(self) -> int:
        return sum(self.counts.values())

    @property
    def total(self) -> int:
        """Every request of the service the source saw: attributed + unattributed."""
        return self.attributed + sum(self.unattributed.values())

    @property
    def empty(self) -> bool:
        return self.total == 0

    def as_counter(self) -> Counter[str]:
        """Per-version counts as a Counter (zero entries dropped)."""
        return Counter({v: n for v, n in self.counts.items() if n})

    def status_of(self, version: str | None) -> dict[StatusKey, int]:
        return {key: n for (v, key), n in self.by_status.items() if v == version}

    def relabel(self, mapping: Mapping[str, str]) -> TelemetryCounts:
        """Rename versions (e.g. pod ``version`` label values to DestinationRule subset names); unmapped names
        stay. Two names mapped to one are summed."""
        counts: Counter[str] = Counter()
        for v, n in self.counts.items():
            counts[mapping.get(v, v)] += n
        status: Counter[tuple[str | None, StatusKey]] = Counter()
        for (v, key), n in self.by_status.items():
            status[(mapping.get(v, v) if v is not None else None, key)] += n
        latency = {mapping.get(v, v): h for v, h in self.latency.items()}
        return replace(self, counts=dict(counts), by_status=dict(status), latency=latency)


class CountsBuilder:
    """Mutable accumulation of one result (sources use it; callers see only TelemetryCounts)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.unattributed: Counter[str] = Counter()
        self.by_status: Counter[tuple[str | None, StatusKey]] = Counter()
        self.skipped: Counter[str] = Counter()
        self.notes: list[str] = []

    def add(self, version: str | None, n: int, status: StatusKey | None = None, cause: str | None = None) -> None:
        """``n`` requests routed to ``version`` (None: unattributed with ``cause``), ending with ``status``."""
        if version is None:
            self.unattributed[cause or "unknown"] += n
        else:
            self.counts[version] += n
        if status is not None:
            self.by_status[(version, status)] += n

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def build(self, window: Window, source: str, latency: Mapping[str, LatencyHistogram] | None = None,
              extra_notes: Iterable[str] = (), *, empty_note: bool = True) -> TelemetryCounts:
        """The frozen result; ``empty_note`` adds a note when nothing was counted (off for watch batches, where an
        empty poll is normal)."""
        notes = [*self.notes, *(n for n in extra_notes if n not in self.notes)]
        if empty_note and sum(self.counts.values()) + sum(self.unattributed.values()) == 0:
            seen = f" (versions seen: {', '.join(sorted(self.counts))})" if self.counts else ""
            notes.append(f"no requests of the service in the window {window.describe()}{seen}")
        return TelemetryCounts(counts=dict(self.counts), unattributed=dict(self.unattributed), window=window,
                               source=source, by_status={k: n for k, n in self.by_status.items() if n},
                               skipped=dict(self.skipped), latency=dict(latency or {}), notes=tuple(notes))
