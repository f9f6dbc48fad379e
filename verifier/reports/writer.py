"""Writing a verdict's outputs: the table, ``--json``, ``--junit``, ``--html``, ``$GITHUB_STEP_SUMMARY``.

Each output is attempted whatever happened to the others, so one that cannot be written (a read-only directory,
standard output on a full disk) loses nothing else already measured: the rest are written, then one
:class:`OutputError` (an InputError: exit 2, a usage-class code) names every failure and the verdict itself.

Each writer is imported when its output is asked for (``--html`` alone loads matplotlib; the health reports load
only with ``--health``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from splitproof.verifier.cliexit import stdout_failure
from splitproof.verifier.errors import InputError
from splitproof.verifier.reports.table import print_verdict
from splitproof.verifier.verdict import Verdict

if TYPE_CHECKING:
    from splitproof.verifier.reports.healthout import HealthReport
    from splitproof.verifier.reports.timeline import Timeline


class OutputError(InputError):
    """Some outputs could not be written (the others were); the message names them and the verdict."""


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path``, ``-`` = standard output. OSError when it cannot be written."""
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    Path(path).write_text(text, encoding="utf-8")


class _Attempts:
    def __init__(self) -> None:
        self.failed: list[str] = []
        self.written: list[str] = []

    def __call__(self, what: str, action: Callable[[], None], stdout: bool = False) -> None:
        try:
            action()
        except (OSError, ValueError) as exc:
            reason = (stdout_failure() if stdout else None) or getattr(exc, "strerror", None) or str(exc)
            self.failed.append(f"{what}{' on standard output' if stdout else ''} ({reason})")
        else:
            self.written.append(what)


def write_outputs(args: argparse.Namespace, verdict: Verdict, extra: dict[str, Any], console: Console,
                  timeline: Timeline | None = None, health: HealthReport | None = None) -> None:
    """Every requested output; with ``health`` each carries the health verdict and the gate's outcome too."""
    attempt = _Attempts()

    def table() -> None:
        print_verdict(verdict, console)
        if health is not None:
            from splitproof.verifier.reports.healthout import print_health

            print_health(health, health.gate(verdict), console)

    attempt("the table", table, stdout=console.file is sys.stdout)
    if args.json:
        from splitproof.verifier.reports.jsonout import verdict_json

        name = "--json -" if args.json == "-" else f"--json {args.json}"
        more = extra
        if health is not None:
            from splitproof.verifier.reports.healthout import gate_fields

            more = {**extra, **gate_fields(verdict, health)}
        attempt(name, lambda: write_text(args.json, verdict_json(verdict, more) + "\n"),
                stdout=args.json == "-")
    if args.junit:
        from splitproof.verifier.reports.junit import write_junit

        attempt(f"--junit {args.junit}", lambda: write_junit(verdict, args.junit, health))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        from splitproof.verifier.reports.markdown import append_github_summary

        attempt("$GITHUB_STEP_SUMMARY", lambda: append_github_summary(verdict, summary, health))
    if getattr(args, "html", None):
        from splitproof.verifier.reports.html import write_html
        from splitproof.verifier.reports.timeline import Timeline

        what = extra.get("target") or getattr(args, "results", None)
        source = f"{what} · expected split from {extra.get('expected_source', '?')}"
        attempt(f"--html {args.html}", lambda: write_html(args.html, verdict, timeline or Timeline(), source=source,
                                                          health=health))
    if attempt.failed:
        kept = f"; written: {', '.join(attempt.written)}" if attempt.written else ""
        outcome, reason = ((health.gate(verdict).outcome, health.gate(verdict).reason) if health is not None
                           else (verdict.outcome, verdict.reason))
        raise OutputError(f"could not write {'; '.join(attempt.failed)}{kept} -- the verdict was {outcome}"
                          f" ({reason})")
