"""What a run needs before its first response: the expected split, the attribution it applies, the record sinks."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from splitproof.verifier import fmt
from splitproof.verifier.errors import InputError
from splitproof.verifier.expected import Expected, check_attributable, from_canary_percent, from_weights_spec
from splitproof.verifier.inputs.attribution import Attribution
from splitproof.verifier.inputs.records import Record, RecordWriter
from splitproof.verifier.reports.timeline import Timeline
from splitproof.verifier.stats.margins import version_tolerance

if TYPE_CHECKING:
    from splitproof.verifier.tally import RecordSink


def tolerance_notes(expected: Expected, tolerance: float) -> list[str]:
    """Versions whose margin is narrower than --tolerance: half their share (verifier/stats/margins.py), so that a
    version receiving nothing can never PASS -- said once, because it sets how long a PASS takes."""
    narrow = [v for v, e in expected.items() if 0 < e and version_tolerance(e, tolerance) < tolerance - 1e-12]
    if not narrow:
        return []
    margins = ", ".join(f"{v} ±{fmt.pp(version_tolerance(expected[v], tolerance))}" for v in narrow)
    return [f"margin narrower than --tolerance {fmt.pp(tolerance)}: {margins} (half the expected share: a PASS "
            "must show every version receives at least half its share)"]


def load_expected(args: argparse.Namespace) -> Expected:
    if args.expected is not None:
        return from_canary_percent(args.expected)
    if args.weights is not None:
        return from_weights_spec(args.weights)
    if args.from_httproute is not None:
        from splitproof.verifier.inputs.httproute import from_httproute_file, from_httproute_live

        if args.namespace:
            return from_httproute_live(args.from_httproute, args.namespace, args.host, args.context)
        return from_httproute_file(args.from_httproute, args.host)
    from splitproof.verifier.inputs.virtualservice import from_virtualservice_file, from_virtualservice_live

    if args.namespace:
        return from_virtualservice_live(args.from_virtualservice, args.namespace, args.host, args.context)
    return from_virtualservice_file(args.from_virtualservice, args.host)


def load_attribution(args: argparse.Namespace, expected: Expected, *, live: bool) -> Attribution | None:
    """The attribution this run applies itself (None: --results records keep their own version)."""
    if not live and not args.classes:
        return None
    channel = "grpc" if args.target else "http" if args.url else None
    try:
        attribution = Attribution.with_overrides(args.classes, args.header, channel=channel)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if attribution.header is None:
        check_attributable(expected, attribution.classes_for(channel).values() if channel
                           else attribution.versions())
    return attribution


class SaveSink:
    """``--save-results``: every sampled response appended to a records file."""

    def __init__(self, path: str) -> None:
        try:
            self.writer = RecordWriter(path)
        except OSError as exc:
            raise InputError(f"--save-results: cannot write {path}: {exc.strerror or exc}") from None

    def add(self, record: Record) -> None:
        self.writer.write(record)

    def close(self) -> None:
        self.writer.close()


class TimelineSink:
    """Feeds the HTML report's streaming Timeline (bounded memory whatever the number of records)."""

    def __init__(self) -> None:
        self.timeline = Timeline()

    def add(self, record: Record) -> None:
        self.timeline.add(record)

    def close(self) -> None:
        self.timeline.finish()


def record_sinks(args: argparse.Namespace) -> list[RecordSink]:
    sinks: list[RecordSink] = []
    if getattr(args, "save_results", None) and (args.target or args.url):
        sinks.append(SaveSink(args.save_results))
    if getattr(args, "html", None):
        sinks.append(TimelineSink())
    return sinks
