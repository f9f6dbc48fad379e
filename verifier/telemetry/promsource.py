"""Exact per-version request counts from Prometheus over a window, and a watch that yields them per poll.

``count_window`` reads the *raw samples* of the spec's series with a range selector (``read_range``), from
``lookback`` before the window (to find each series' baseline) to its end, and counts them with
``CounterAccumulator``: no ``increase()``, so the counts are integers, a counter reset inside the window is handled,
and a series that first appears inside the window counts from 0. A request is placed at the first scrape that saw
it, so the window's edges are effectively the scrapes at or before ``since`` and ``until``: exact for a window with
idle edges. ``until`` close to now misses samples Prometheus has not ingested yet (the next scrape).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from splitproof.verifier.telemetry.counters import CounterAccumulator
from splitproof.verifier.telemetry.errors import TelemetryQueryError
from splitproof.verifier.telemetry.latency import LatencyHistogram
from splitproof.verifier.telemetry.prometheus import DEFAULT_CHUNK_MS, PrometheusClient
from splitproof.verifier.telemetry.promql import SeriesSpec, classify
from splitproof.verifier.telemetry.result import CountsBuilder, TelemetryCounts
from splitproof.verifier.telemetry.watch import ticks
from splitproof.verifier.telemetry.window import Window, format_duration

DEFAULT_LOOKBACK = 300.0  # Prometheus' staleness period: a live series has a sample at most this old

Key = tuple[tuple[str, str], ...]


@dataclass
class _Read:
    acc: CounterAccumulator
    labels: dict[Hashable, dict[str, str]]
    warnings: list[str]


def _ms(t: float) -> int:
    return round(t * 1000)


def _feed(client: PrometheusClient, spec: SeriesSpec, acc: CounterAccumulator, labels: dict[Hashable, dict[str, str]],
          warnings: list[str], start_ms: int, end_ms: int, chunk_ms: int) -> None:
    for chunk in client.read_range(spec.selector, start_ms, end_ms, chunk_ms):
        for w in chunk.warnings:
            if w not in warnings:
                warnings.append(w)
        for series_labels, samples in chunk.series:
            key: Key = tuple(sorted(series_labels.items()))
            labels.setdefault(key, series_labels)
            acc.feed(key, samples)


def _read(client: PrometheusClient, spec: SeriesSpec, window: Window, lookback: float, chunk: float) -> _Read:
    acc = CounterAccumulator(_ms(window.since), _ms(window.until))
    labels: dict[Hashable, dict[str, str]] = {}
    warnings: list[str] = []
    _feed(client, spec, acc, labels, warnings, _ms(window.since - lookback), _ms(window.until), _ms(chunk))
    return _Read(acc, labels, warnings)


def _check_one_reporter(spec: SeriesSpec, labels: Iterable[dict[str, str]]) -> None:
    reporters = sorted({lab["reporter"] for lab in labels if "reporter" in lab})
    if len(reporters) > 1:
        raise TelemetryQueryError(f"{spec.selector} mixes reporters ({', '.join(reporters)}): every request would "
                                  "be counted once per reporter; select one (reporter=\"source\")")


def _group(spec: SeriesSpec, counts: dict[Hashable, int], labels: dict[Hashable, dict[str, str]],
           builder: CountsBuilder) -> None:
    """Add per-series counts to ``builder`` by version and status."""
    _check_one_reporter(spec, labels.values())
    for key, n in counts.items():
        c = classify(spec, labels[key])
        if c.role == "skip":
            if n:
                builder.skipped[f"series of {c.cause}"] += n
            continue
        if c.role == "status":
            if n:
                builder.by_status[(c.version, c.status)] += n  # type: ignore[index]
            continue
        builder.add(c.version, n, c.status, c.cause)


def _notes(spec: SeriesSpec, acc: CounterAccumulator, warnings: list[str], lookback: float) -> list[str]:
    notes = []
    if spec.reporter:
        notes.append(f'reporter="{spec.reporter}" only (each request is counted once per reporter)')
    if acc.resets:
        notes.append(f"{acc.resets} counter reset(s) inside the window (a restarted proxy: counted from 0)")
    if acc.began_inside:
        notes.append(f"{acc.began_inside} series began inside the window (no sample in the {format_duration(lookback)}"
                     " before it: counted from 0)")
    notes.extend(f"Prometheus warning: {w}" for w in warnings)
    return notes


def count_window(client: PrometheusClient, spec: SeriesSpec | Sequence[SeriesSpec], window: Window, *,
                 lookback: float = DEFAULT_LOOKBACK, chunk: float = DEFAULT_CHUNK_MS / 1000,
                 latency: SeriesSpec | None = None, own_latency: bool = False) -> TelemetryCounts:
    """Requests per version in ``window``. A sequence of specs (``promql.envoy_candidates``) is tried in order;
    the first with any series in the range is used. ``latency``: also read that ``_bucket`` spec's histograms;
    ``own_latency``: those of the chosen spec's own ``latency`` (Envoy's, in the chosen tag spelling)."""
    specs = [spec] if isinstance(spec, SeriesSpec) else list(spec)
    reads = []
    for candidate in specs:
        reads.append(_read(client, candidate, window, lookback, chunk))
        if reads[-1].labels:
            break
    chosen, read = (specs[len(reads) - 1], reads[-1]) if reads[-1].labels else (specs[0], reads[0])
    builder = CountsBuilder()
    _group(chosen, read.acc.totals(), read.labels, builder)
    if not read.labels and len(specs) > 1:
        builder.note("no series for any of: " + "; ".join(s.selector for s in specs))
    if latency is None and own_latency:
        latency = chosen.latency
    hist = latency_window(client, latency, window, lookback=lookback, chunk=chunk) if latency else None
    return builder.build(window, f"Prometheus {client.url}: {chosen.description}", hist,
                         _notes(chosen, read.acc, read.warnings, lookback))


def latency_window(client: PrometheusClient, spec: SeriesSpec, window: Window, *, lookback: float = DEFAULT_LOOKBACK,
                   chunk: float = DEFAULT_CHUNK_MS / 1000) -> dict[str, LatencyHistogram]:
    """Exact per-version duration histograms in ``window`` from ``_bucket`` series (each bucket is a counter)."""
    read = _read(client, spec, window, lookback, chunk)
    return _histograms(spec, read.acc.totals(), read.labels)


def _histograms(spec: SeriesSpec, counts: dict[Hashable, int],
                labels: dict[Hashable, dict[str, str]]) -> dict[str, LatencyHistogram]:
    """Per-version histograms of ``_bucket`` series counts; every bucket ever seen is present (0 when it did not
    grow), so the batches of a watch have the same bounds and add up."""
    _check_one_reporter(spec, labels.values())
    per: dict[str, Counter[float]] = {}
    for key, lab in labels.items():
        c = classify(spec, lab)
        if c.role != "count" or c.version is None or "le" not in lab:
            continue
        try:
            le = float(lab["le"])
        except ValueError:
            continue
        per.setdefault(c.version, Counter())[le] += counts.get(key, 0)
    return {v: LatencyHistogram.from_cumulative(dict(b)) for v, b in sorted(per.items())}


def watch(client: PrometheusClient, spec: SeriesSpec, interval: float, *, start: float | None = None,
          duration: float | None = None, lookback: float = DEFAULT_LOOKBACK, overlap: float | None = None,
          clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
          latency: SeriesSpec | None = None) -> Iterator[TelemetryCounts]:
    """From ``start`` (default now), poll every ``interval`` (the scrape interval) and yield each poll's new
    requests as a batch (``TelemetryCounts`` whose window is the poll interval; possibly empty). Each poll re-reads
    ``overlap`` (default ``3 * interval + 10 s``) back so samples ingested late are counted in the next batch, never
    twice. Stops after ``duration`` or when the caller stops iterating. ``latency``: each batch also carries that
    ``_bucket`` spec's per-version histograms of the batch."""
    t0 = clock() if start is None else start
    back = 3 * interval + 10.0 if overlap is None else overlap
    acc = CounterAccumulator(_ms(t0))
    labels: dict[Hashable, dict[str, str]] = {}
    warnings: list[str] = []
    _feed(client, spec, acc, labels, warnings, _ms(t0 - lookback), _ms(t0), _ms(lookback + 1))
    acc.take()
    lat_acc = CounterAccumulator(_ms(t0))
    lat_labels: dict[Hashable, dict[str, str]] = {}
    if latency is not None:
        _feed(client, latency, lat_acc, lat_labels, warnings, _ms(t0 - lookback), _ms(t0), _ms(lookback + 1))
        lat_acc.take()
    previous = t0
    seen_resets = seen_began = 0
    for t in ticks(interval, start=t0, duration=duration, clock=clock, sleep=sleep):
        before = len(warnings)
        _feed(client, spec, acc, labels, warnings, _ms(t - back), _ms(t), _ms(back + 1))
        builder = CountsBuilder()
        _group(spec, acc.take(), labels, builder)
        hist = None
        if latency is not None:
            _feed(client, latency, lat_acc, lat_labels, warnings, _ms(t - back), _ms(t), _ms(back + 1))
            hist = _histograms(latency, lat_acc.take(), lat_labels)
        if acc.resets > seen_resets:
            builder.note(f"{acc.resets - seen_resets} counter reset(s) in this batch (counted from 0)")
        if acc.began_inside > seen_began:
            builder.note(f"{acc.began_inside - seen_began} new series in this batch (counted from 0)")
        seen_resets, seen_began = acc.resets, acc.began_inside
        for w in warnings[before:]:
            builder.note(f"Prometheus warning: {w}")
        batch = Window(previous, t)
        yield builder.build(batch, f"Prometheus {client.url}: {spec.description} (watch, every "
                                   f"{format_duration(interval)})", hist, empty_note=False)
        previous = t
