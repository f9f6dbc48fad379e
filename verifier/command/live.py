"""``--target`` / ``--url``: sample the live service into the tally until the verdict, ``--max-samples`` or
``--duration``; a target that answers nothing successfully in its first responses is unreachable (exit 4)."""

from __future__ import annotations

import argparse

from rich.console import Console

from splitproof.verifier import defaults
from splitproof.verifier.errors import Unreachable
from splitproof.verifier.inputs import probes, sampling
from splitproof.verifier.inputs.attribution import Attribution
from splitproof.verifier.inputs.records import Record
from splitproof.verifier.tally import Tally
from splitproof.verifier.verdict import Method


def make_probe(args: argparse.Namespace, attribution: Attribution) -> tuple[probes.Probe, str]:
    """The probe for ``--target`` (gRPC) or ``--url`` (product pages), and the warning every live run prints."""
    if args.target:
        return probes.GrpcProbe(args.target, attribution, timeout=args.timeout), probes.PROXY_WARNING
    return probes.HttpProbe(args.url, attribution, timeout=args.timeout), probes.URL_WARNING


def observe_live(args: argparse.Namespace, tally: Tally, attribution: Attribution, err: Console) -> list[str]:
    """Sample into ``tally``; returns the notes for the verdict (why it stopped before a decision)."""
    from splitproof.verifier.command.progress import LiveProgress

    probe, warning = make_probe(args, attribution)
    err.print(f"[bold yellow]warning:[/bold yellow] {warning}", highlight=False)
    notes: list[str] = []
    unreachable_after = min(defaults.UNREACHABLE_AFTER, tally.max_samples or 10**9)
    try:
        probe.check(args.connect_timeout)
        enabled = not args.no_progress and err.is_terminal
        with LiveProgress(err, tally, tally.max_samples, f"sampling {probe.target}", enabled) as progress:
            def on_record(rec: Record) -> bool:
                tally.record(rec)  # the probe attributed it
                if tally.ok == 0 and tally.total >= unreachable_after:
                    raise Unreachable(f"target unreachable: no successful response from {probe.target} in the first "
                                      f"{tally.total} attempts (last error: {probe.last_error or 'unknown'})")
                progress.update()
                if tally.ok == 0 and tally.total < defaults.UNREACHABLE_AFTER:
                    return False  # all failures so far: keep going until it is clear whether anything answers
                return tally.decided

            result = sampling.sample(probe, concurrency=args.concurrency, max_samples=tally.max_samples,
                                     duration=args.duration or defaults.LIVE_DURATION_S, on_record=on_record)
    finally:
        probe.close()
    rate = result.observed / result.elapsed if result.elapsed > 0 else 0.0
    info = f"{result.observed:,} responses in {result.elapsed:.1f}s ({rate:,.0f}/s)"
    if tally.method == Method.SEQUENTIAL and not tally.decided:
        notes.append(f"stopped by {'--duration' if result.stop_reason == 'duration' else '--max-samples'} "
                     f"before a decision: {info}")
    elif tally.method == Method.FIXED_N and result.stop_reason == "duration":
        notes.append(f"stopped by --duration before the planned sample size: {info}")
    if result.discarded:
        info += f"; {result.discarded} in flight at the stop, not counted"
    err.print(f"[dim]{info}[/dim]", highlight=False)
    return notes
