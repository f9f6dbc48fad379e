"""Everything a run can refuse before the heavy imports (scipy, numpy, rich): the options (``--health``'s too),
the expected split, the attribution and the input file. A usage or input error thus answers in the time Python
takes to start, not the second scipy takes to import (bench/RESULTS.md, "Verifier throughput" and "Verifier
start-up"). Only light modules are imported here (tests/test_verifier_architecture.py checks it)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from splitproof.verifier.command.health import check_health_split, health_options
from splitproof.verifier.command.prepare import load_attribution, load_expected
from splitproof.verifier.command.settings import Settings, settings
from splitproof.verifier.errors import InputError
from splitproof.verifier.expected import Expected
from splitproof.verifier.inputfile import InputFileError, open_input
from splitproof.verifier.inputs.attribution import Attribution

if TYPE_CHECKING:
    from splitproof.verifier.health.options import HealthOptions


@dataclass
class Preflight:
    """A run's checked inputs; ``results`` is the ``--results`` stream, already open (a FIFO's writer cannot be
    waited for twice); ``health`` the ``--health`` options (None without it, or with ``--plan``)."""

    settings: Settings
    expected: Expected
    attribution: Attribution | None
    results: BinaryIO | None = None
    health: HealthOptions | None = None

    def close(self) -> None:
        if self.results is not None and self.results is not _stdin():
            self.results.close()


def _stdin() -> BinaryIO:
    import sys

    return sys.stdin.buffer


def preflight(args: argparse.Namespace) -> Preflight:
    """Check ``args`` and open the input; InputError (exit 2) for the first thing wrong."""
    s = settings(args)
    expected = load_expected(args)
    attribution = None if args.plan or s.telemetry else load_attribution(args, expected, live=s.live)
    results = None
    if args.results is not None and not args.plan:
        try:
            results = open_input(str(args.results), "--results")
        except InputFileError as exc:  # missing, a directory, a FIFO without a writer
            raise InputError(str(exc)) from None
    pre = Preflight(s, expected, attribution, results)
    try:
        pre.health = None if args.plan else health_options(args, s.alpha, s.power)  # --plan sizes the split only
        if pre.health is not None:
            check_health_split(expected)
    except InputError:
        pre.close()
        raise
    return pre
