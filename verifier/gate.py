"""The body of ``verify-split``: observe (results file or live sampling), judge, write the outputs.

verifier/cli.py parses the command line and imports this module only then, so ``--help`` and usage errors do not
pay for scipy. The statistics live in verifier.stats / verifier.sequential.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections import Counter
from typing import Any, Protocol

from rich.console import Console

from splitproof.verifier.attribution import Attribution
from splitproof.verifier.errors import InputError, Unreachable
from splitproof.verifier.exitcodes import ExitCode
from splitproof.verifier.expected import (
    Expected,
    check_attributable,
    from_canary_percent,
    from_virtualservice_file,
    from_virtualservice_live,
    from_weights_spec,
)
from splitproof.verifier.inputfile import InputFileError
from splitproof.verifier.margins import version_tolerance
from splitproof.verifier.outputs import OutputError, write_outputs, write_text
from splitproof.verifier.records import ReadStats, Record, RecordWriter, read_records
from splitproof.verifier.sequential import SequentialGate
from splitproof.verifier.stats import Verdict, check_parameters, clopper_pearson, judge, pct, plan
from splitproof.verifier.timeline import Timeline

UNREACHABLE_AFTER = 20  # this many responses at the start, none successful -> the target is unreachable

CAUSE_MALFORMED = "malformed line"
CAUSE_TRUNCATED = "truncated line"

def _defaults_for_mode(args: argparse.Namespace) -> None:
    live = bool(args.target or args.url)
    args.sequential_mode = args.sequential or (live and not args.fixed)
    if args.header and args.results:
        raise InputError("--header needs live sampling: result records carry no headers (use --class or the "
                         "record's version)")
    if args.save_results and not live:
        raise InputError("--save-results applies to live sampling (--target/--url)")
    if args.namespace and not args.from_virtualservice:
        raise InputError("-n/--namespace only applies to --from-virtualservice NAME")
    if args.max_samples is not None and args.max_samples < 1:
        raise InputError(f"--max-samples must be at least 1, got {args.max_samples}")
    if args.duration is not None and args.duration <= 0:
        raise InputError(f"--duration must be positive, got {args.duration:g}")
    if args.concurrency < 1 or args.concurrency > 512:
        raise InputError(f"--concurrency must be from 1 to 512, got {args.concurrency}")
    if args.timeout <= 0 or args.connect_timeout <= 0:
        raise InputError("--timeout and --connect-timeout must be positive")
    if args.rate is not None and args.rate <= 0:
        raise InputError(f"--rate must be positive, got {args.rate:g}")


# --------------------------------------------------------------------------------------------------- the inputs


def tolerance_notes(expected: Expected, tolerance: float) -> list[str]:
    """Versions whose margin is narrower than --tolerance: half their share (verifier/margins.py), so that a
    version receiving nothing can never PASS -- said once, because it sets how long a PASS takes."""
    narrow = [v for v, e in expected.items() if 0 < e and version_tolerance(e, tolerance) < tolerance - 1e-12]
    if not narrow:
        return []
    margins = ", ".join(f"{v} ±{100 * version_tolerance(expected[v], tolerance):g} pp" for v in narrow)
    return [f"margin narrower than --tolerance {100 * tolerance:g} pp: {margins} (half the expected share: a PASS "
            "must show every version receives at least half its share)"]


def load_expected(args: argparse.Namespace) -> Expected:
    if args.expected is not None:
        return from_canary_percent(args.expected)
    if args.weights is not None:
        return from_weights_spec(args.weights)
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


# ----------------------------------------------------------------------------------------------- the observation


class RecordSink(Protocol):
    """Something that wants every observed response (report writers). Issue 7's ``--html`` adds a Timeline-backed
    sink in :func:`record_sinks` and writes its file in :func:`write_outputs`."""

    def add(self, record: Record) -> None: ...

    def close(self) -> None: ...


class _SaveSink:
    def __init__(self, path: str) -> None:
        try:
            self.writer = RecordWriter(path)
        except OSError as exc:
            raise InputError(f"--save-results: cannot write {path}: {exc.strerror or exc}") from None

    def add(self, record: Record) -> None:
        self.writer.write(record)

    def close(self) -> None:
        self.writer.close()


class _TimelineSink:
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
        sinks.append(_SaveSink(args.save_results))
    if getattr(args, "html", None):
        sinks.append(_TimelineSink())
    return sinks


class Observer:
    """Counts every response, feeds the sequential gate (if any) and the sinks."""

    def __init__(self, expected: Expected, gate: SequentialGate | None, sinks: list[RecordSink],
                 max_samples: int | None = None) -> None:
        self.expected = expected
        self.gate = gate
        self.sinks = sinks
        self.max_samples = max_samples
        self.counts: Counter[str] = Counter()
        self.causes: Counter[str] = Counter()
        self.unattributed = 0
        self.ok = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + self.unattributed

    @property
    def done(self) -> bool:
        if self.gate is not None and self.gate.decided:
            return True
        return self.max_samples is not None and self.total >= self.max_samples

    def observe(self, version: str | None, cause: str | None = None) -> None:
        if version is None:
            self.unattributed += 1
            self.causes[cause or "unattributed"] += 1
        else:
            self.counts[version] += 1
        if self.gate is not None:
            self.gate.observe(version)

    def record(self, rec: Record, reattribute: Attribution | None = None) -> None:
        """One response record; ``reattribute`` maps its item count anew (``--class`` over a results file)."""
        if not rec.ok:
            for sink in self.sinks:
                sink.add(rec)
            self.observe(None, rec.status)
            return
        self.ok += 1
        version = reattribute.by_count(rec.channel, rec.items) if reattribute is not None else rec.version
        if version != rec.version:
            rec = dataclasses.replace(rec, version=version)
        for sink in self.sinks:
            sink.add(rec)
        self.observe(version, None if version else f"{rec.channel} reply with {rec.items} items")

    def verdict(self, alpha: float, tolerance: float, max_unattributed: float, power: float) -> Verdict:
        if self.gate is not None:
            v = self.gate.verdict()
        else:
            v = judge(self.counts, self.unattributed, self.expected, alpha=alpha, tolerance=tolerance,
                      max_unattributed=max_unattributed, power=power)
        return dataclasses.replace(v, unattributed_causes=dict(self.causes))


def observe_results(path: str, observer: Observer, attribution: Attribution | None) -> tuple[ReadStats, bool]:
    """Stream the records file into the observer; bad lines count as unattributed where they occur.
    Returns the read statistics and whether the read stopped early (decided / --max-samples)."""
    stats = ReadStats()
    seen_malformed = seen_truncated = 0
    stopped = False

    def catch_up() -> None:
        nonlocal seen_malformed, seen_truncated
        while seen_malformed < stats.malformed:
            seen_malformed += 1
            observer.observe(None, CAUSE_MALFORMED)
        while seen_truncated < stats.truncated:
            seen_truncated += 1
            observer.observe(None, CAUSE_TRUNCATED)

    try:
        for rec in read_records(path, stats):
            catch_up()
            if observer.done:
                stopped = True
                break
            observer.record(rec, attribution)
        if not stopped:
            catch_up()
    except InputFileError as exc:  # missing, a directory, a FIFO without a writer
        raise InputError(str(exc)) from None
    except OSError as exc:
        raise InputError(f"--results: cannot read {path}: {exc.strerror or exc}") from None
    if stats.valid == 0 and not stopped:
        bad = stats.malformed + stats.truncated
        detail = f" ({bad} bad lines; {stats.examples[0]})" if bad else ""
        raise InputError(f"--results: no valid records in {path}{detail}")
    return stats, stopped


def read_notes(stats: ReadStats, stopped: bool, observer: Observer) -> list[str]:
    notes = []
    if stats.malformed or stats.truncated:
        parts = []
        if stats.malformed:
            parts.append(f"{stats.malformed} malformed line{'s' if stats.malformed != 1 else ''}")
        if stats.truncated:
            parts.append("a truncated last line (a run killed mid-write?)")
        notes.append(f"{' and '.join(parts)} counted as unattributed ({'; '.join(stats.examples[:3])})")
    if stopped:
        notes.append(f"replay stopped after {observer.total:,} responses"
                     + (" at the sequential verdict" if observer.gate and observer.gate.decided else
                        " (--max-samples)") + "; the rest of the file was not read")
    return notes


class LiveProgress:
    """A rich progress bar with the live shares and their intervals (refreshed a few times a second)."""

    def __init__(self, console: Console, observer: Observer, total: int | None, label: str, alpha: float,
                 enabled: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.observer, self.alpha = observer, alpha
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[status]}"), console=console,
                                 disable=not enabled, transient=False)
        self.task = self.progress.add_task(label, total=total, status="connecting")
        self._last = 0.0

    def __enter__(self) -> LiveProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.update(force=True)
        self.progress.stop()

    def update(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.progress.disable or (not force and now - self._last < 0.25):
            return
        self._last = now
        obs = self.observer
        n = sum(obs.counts.values())
        parts = []
        if obs.gate is not None:
            v = obs.gate.verdict()
            for row in v.rows:
                if row.share is not None:
                    parts.append(f"{row.version} {pct(row.share)} [{100 * row.lo:.1f}–{100 * row.hi:.1f}]")
        else:
            for version in obs.expected:
                if n:
                    lo, hi = clopper_pearson(obs.counts[version], n, self.alpha)
                    parts.append(f"{version} {pct(obs.counts[version] / n)} [{100 * lo:.1f}–{100 * hi:.1f}]")
        parts.append(f"unattributed {obs.unattributed}")
        self.progress.update(self.task, completed=obs.total, status=" · ".join(parts))


def observe_live(args: argparse.Namespace, observer: Observer, attribution: Attribution, err: Console,
                 alpha: float) -> list[str]:
    from splitproof.verifier import sampler

    if args.target:
        probe: sampler.Probe = sampler.GrpcProbe(args.target, attribution, timeout=args.timeout)
        warning = sampler.PROXY_WARNING
    else:
        probe = sampler.HttpProbe(args.url, attribution, timeout=args.timeout)
        warning = sampler.URL_WARNING
    err.print(f"[bold yellow]warning:[/bold yellow] {warning}", highlight=False)
    notes: list[str] = []
    try:
        probe.check(args.connect_timeout)
        label = f"sampling {probe.target}"
        enabled = not args.no_progress and err.is_terminal
        with LiveProgress(err, observer, observer.max_samples, label, alpha, enabled) as progress:
            def on_record(rec: Record) -> bool:
                observer.record(rec)  # the probe attributed it
                if observer.ok == 0 and observer.total >= min(UNREACHABLE_AFTER, observer.max_samples or 10**9):
                    raise Unreachable(f"target unreachable: no successful response from {probe.target} in the first "
                                      f"{observer.total} attempts (last error: {probe.last_error or 'unknown'})")
                progress.update()
                if observer.ok == 0 and observer.total < UNREACHABLE_AFTER:
                    return False  # all failures so far: keep going until it is clear whether anything answers
                return observer.gate is not None and observer.gate.decided

            result = sampler.sample(probe, concurrency=args.concurrency, max_samples=observer.max_samples,
                                    duration=args.duration or 600.0, on_record=on_record)
    finally:
        probe.close()
    rate = result.observed / result.elapsed if result.elapsed > 0 else 0.0
    notes_info = f"{result.observed:,} responses in {result.elapsed:.1f}s ({rate:,.0f}/s)"
    if observer.gate is not None and not observer.gate.decided:
        notes.append(f"stopped by {'--duration' if result.stop_reason == 'duration' else '--max-samples'} "
                     f"before a decision: {notes_info}")
    elif observer.gate is None and result.stop_reason == "duration":
        notes.append(f"stopped by --duration before the planned sample size: {notes_info}")
    if result.discarded:
        notes_info += f"; {result.discarded} in flight at the stop, not counted"
    err.print(f"[dim]{notes_info}[/dim]", highlight=False)
    return notes


# --------------------------------------------------------------------------------------------------- the outputs


def print_plan(args: argparse.Namespace, expected: Expected, console: Console, alpha: float, tolerance: float,
               max_unattributed: float) -> dict[str, Any]:
    from rich.table import Table

    p = plan(expected, tolerance, alpha, args.power, max_unattributed)
    rows = [
        ("fixed-n: PASS with the given power when the split is exactly as expected", p.n_pass),
        (f"fixed-n: FAIL with the given power when a share is off by {100 * tolerance:g} pp", p.n_fail),
        (f"unattributed shown below {100 * max_unattributed:g}% (none occurring)", p.n_unattributed),
        ("fixed-n sample size (all of the above)", p.n),
        ("sequential: typical responses to PASS at the exact split", p.sequential_pass),
    ]
    table = Table(title=f"verify-split --plan · {expected.describe()} · alpha {alpha:g} · tolerance "
                        f"±{100 * tolerance:g} pp · power {args.power:g}", title_justify="left")
    table.add_column("what")
    table.add_column("responses", justify="right")
    if args.rate:
        table.add_column(f"time at {args.rate:g}/s", justify="right")
    for what, n in rows:
        cells = [what, f"{n:,}"] + ([_duration(n / args.rate)] if args.rate else [])
        table.add_row(*cells)
    console.print(table)
    data = {"plan": {"expected": dict(expected), "alpha": alpha, "tolerance": tolerance, "power": args.power,
                     "max_unattributed": max_unattributed, "n_pass": p.n_pass, "n_fail": p.n_fail,
                     "n_unattributed": p.n_unattributed, "n": p.n, "sequential_pass": p.sequential_pass}}
    if args.rate:
        data["plan"]["seconds"] = p.n / args.rate
    return data


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


# ------------------------------------------------------------------------------------------------------ the run


def make_consoles(json_to_stdout: bool) -> tuple[Console, Console]:
    """(where the table goes, where warnings/progress go). Logs and pipes get a 120-column layout."""
    def console(stderr: bool) -> Console:
        stream = sys.stderr if stderr else sys.stdout
        width = None if stream.isatty() else 120
        return Console(stderr=stderr, width=width, highlight=False)

    err = console(True)
    return (err if json_to_stdout else console(False)), err


def run(args: argparse.Namespace, console: Console, err: Console) -> int:
    _defaults_for_mode(args)
    # the percentages are checked as the user typed them (the statistics take fractions)
    if not 0 < args.tolerance < 100:
        raise InputError(f"--tolerance must be between 0 and 100 percentage points, got {args.tolerance:g}")
    if not 0 <= args.max_unattributed < 100:
        raise InputError(f"--max-unattributed must be a percentage from 0 to below 100, got "
                         f"{args.max_unattributed:g}")
    alpha, tolerance, max_unattributed = args.alpha, args.tolerance / 100, args.max_unattributed / 100
    check_parameters(alpha, tolerance, max_unattributed, args.power)
    expected = load_expected(args)
    margin_notes = tolerance_notes(expected, tolerance)
    for note in margin_notes:
        err.print(f"[yellow]warning:[/yellow] {note}", highlight=False)
    if args.plan:
        data = print_plan(args, expected, console, alpha, tolerance, max_unattributed)
        if args.json:
            try:
                write_text(args.json, json.dumps(data, indent=2) + "\n")
            except OSError as exc:
                raise OutputError(f"could not write --json {args.json} ({exc.strerror or exc})") from None
        return 0
    live = bool(args.target or args.url)
    attribution = load_attribution(args, expected, live=live)
    gate = SequentialGate(expected, alpha=alpha, tolerance=tolerance, max_unattributed=max_unattributed) \
        if args.sequential_mode else None
    max_samples = args.max_samples
    if live and max_samples is None:
        max_samples = 20_000 if gate is not None else plan(expected, tolerance, alpha, args.power,
                                                           max_unattributed).n
    sinks = record_sinks(args)
    observer = Observer(expected, gate, sinks, max_samples)
    extra: dict[str, Any] = {"expected_source": expected.source, "expected": dict(expected)}
    notes: list[str] = list(margin_notes)
    interrupted = False
    try:
        if live:
            assert attribution is not None
            notes += observe_live(args, observer, attribution, err, alpha)
            extra["target"] = args.target or args.url
        else:
            stats, stopped = observe_results(args.results, observer, attribution)
            notes += read_notes(stats, stopped, observer)
            extra["input"] = {"path": args.results, "lines": stats.lines, "valid": stats.valid,
                              "malformed": stats.malformed, "truncated": stats.truncated,
                              "examples": stats.examples, "stopped_early": stopped}
    except KeyboardInterrupt:
        interrupted = True
        notes.append("interrupted (Ctrl-C): verdict on the responses so far")
    finally:
        for sink in sinks:
            sink.close()
    verdict = observer.verdict(alpha, tolerance, max_unattributed, args.power)
    if gate is not None and gate.observed_after_decision:
        notes.append(f"{gate.observed_after_decision} responses after the decision were not counted")
    verdict = dataclasses.replace(verdict, notes=tuple(verdict.notes) + tuple(notes))
    timeline = next((s.timeline for s in sinks if isinstance(s, _TimelineSink)), None)
    write_outputs(args, verdict, extra, console, timeline)
    return ExitCode.INTERRUPTED if interrupted else verdict.exit_code
