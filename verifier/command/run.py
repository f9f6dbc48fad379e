"""One ``verify-split`` run, start to exit code: settings -> expected split and attribution -> the observations into
the one tally (a results file, or live sampling) -> the verdict -> every requested output.

Each path imports what it uses, in its branch: a results file's fixed-n verdict loads no health judge, no
sequential gate, no live sampling or telemetry, and no scipy.stats (bench/RESULTS.md, "Verifier start-up")."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from rich.console import Console

from splitproof.verifier import defaults
from splitproof.verifier.command.preflight import Preflight, preflight
from splitproof.verifier.command.prepare import TimelineSink, record_sinks, tolerance_notes
from splitproof.verifier.command.replay import input_summary, observe_results, read_notes
from splitproof.verifier.exitcodes import ExitCode
from splitproof.verifier.reports.writer import OutputError, write_outputs, write_text
from splitproof.verifier.tally import Tally
from splitproof.verifier.verdict import Method


def make_consoles(json_to_stdout: bool) -> tuple[Console, Console]:
    """(where the table goes, where warnings/progress go). Logs and pipes get a 120-column layout."""
    def console(stderr: bool) -> Console:
        stream = sys.stderr if stderr else sys.stdout
        width = None if stream.isatty() else 120
        return Console(stderr=stderr, width=width, highlight=False)

    err = console(True)
    return (err if json_to_stdout else console(False)), err


def run(args: argparse.Namespace, console: Console, err: Console, pre: Preflight | None = None) -> int:
    """The run of ``args``; ``pre`` is what :func:`~verifier.command.preflight.preflight` already checked."""
    pre = preflight(args) if pre is None else pre
    try:
        return _run(args, console, err, pre)
    finally:
        pre.close()


def _run(args: argparse.Namespace, console: Console, err: Console, pre: Preflight) -> int:
    s, expected = pre.settings, pre.expected
    margin_notes = tolerance_notes(expected, s.tolerance)
    for note in margin_notes:
        err.print(f"[yellow]warning:[/yellow] {note}", highlight=False)
    if args.plan:
        from splitproof.verifier.command.plan import print_plan

        data = print_plan(expected, s, args.rate, console)
        if args.json:
            try:
                write_text(args.json, json.dumps(data, indent=2) + "\n")
            except OSError as exc:
                raise OutputError(f"could not write --json {args.json} ({exc.strerror or exc})") from None
        return ExitCode.OK
    attribution = pre.attribution
    max_samples = args.max_samples
    if s.live and max_samples is None:
        from splitproof.verifier.stats.planning import plan

        max_samples = defaults.SEQUENTIAL_MAX_SAMPLES if s.method == Method.SEQUENTIAL else \
            plan(expected, s.tolerance, s.alpha, s.power, s.max_unattributed).n
    sinks = record_sinks(args)
    hopts = pre.health
    health: Any = None
    if hopts is not None:
        from splitproof.verifier.command.health import batch_health, response_health

        health = batch_health(hopts, expected, s.method) if s.telemetry else \
            response_health(hopts, expected, s.method, attribution, live=s.live)
    tally = Tally(expected, method=s.method, alpha=s.alpha, tolerance=s.tolerance,
                  max_unattributed=s.max_unattributed, power=s.power, sinks=sinks, max_samples=max_samples,
                  health_records=health)
    extra: dict[str, Any] = {"expected_source": expected.source, "expected": dict(expected)}
    notes: list[str] = list(margin_notes)
    interrupted = False
    destination = None
    try:
        if s.telemetry:
            from splitproof.verifier.command.telemetry import destination_errors, observe_telemetry, telemetry_json

            observed = observe_telemetry(args, tally, err, on_batch=_timeline_batches(sinks))
            extra["telemetry"] = telemetry_json(observed)
            destination = destination_errors(args, observed) if health is not None else None
            extra["target"] = observed.counted.source if observed.counted else observed.source
            notes += [n for n in extra["telemetry"]["notes"]]
        elif s.live:
            assert attribution is not None
            from splitproof.verifier.command.live import observe_live

            notes += observe_live(args, tally, attribution, err)
            extra["target"] = args.target or args.url
        else:
            stats, stopped = observe_results(args.results, tally, attribution, pre.results)
            notes += read_notes(stats, stopped, tally)
            extra["input"] = input_summary(args.results, stats, stopped)
    except KeyboardInterrupt:
        interrupted = True
        notes.append("interrupted (Ctrl-C): verdict on the responses so far")
    finally:
        tally.close()
    verdict = tally.verdict()
    if tally.gate is not None and tally.gate.observed_after_decision:
        notes.append(f"{tally.gate.observed_after_decision} responses after the decision were not counted")
    verdict = dataclasses.replace(verdict, notes=tuple(verdict.notes) + tuple(notes))
    timeline = next((sink.timeline for sink in sinks if isinstance(sink, TimelineSink)), None)
    report = None
    if health is not None:
        from splitproof.verifier.reports.healthout import HealthReport

        report = HealthReport.of(health)
    if report is not None and destination is not None:
        report = dataclasses.replace(report, extra={"destination": destination})
    write_outputs(args, verdict, extra, console, timeline, health=report)
    code = report.gate(verdict).exit_code if report is not None else verdict.exit_code
    return ExitCode.INTERRUPTED if interrupted else code


def _timeline_batches(sinks: list[Any]) -> Any:
    """The HTML timeline's hook for count batches (a point per poll), or None without --html."""
    timeline = next((sink.timeline for sink in sinks if isinstance(sink, TimelineSink)), None)
    return None if timeline is None else timeline.add_batch
