"""verify-split's command line, checked and converted once into the Python API's units (fractions).

The percentages are checked as the user typed them (``--tolerance 5`` percentage points, ``--max-unattributed 1``
percent), so a bad value is named in the unit typed; everything past this module sees fractions only.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from splitproof.verifier import defaults
from splitproof.verifier.errors import InputError
from splitproof.verifier.stats.checks import check_parameters
from splitproof.verifier.verdict import Method


@dataclass(frozen=True)
class Settings:
    """What one run does, in the API's units."""

    method: Method
    live: bool
    alpha: float
    tolerance: float          # fraction
    max_unattributed: float   # fraction
    power: float


def _check_options(args: argparse.Namespace, live: bool) -> None:
    if args.header and args.results:
        raise InputError("--header needs live sampling: result records carry no headers (use --class or the "
                         "record's version)")
    if args.save_results and not live:
        raise InputError("--save-results applies to live sampling (--target/--url)")
    if args.namespace and not (args.from_virtualservice or args.from_httproute):
        raise InputError("-n/--namespace only applies to --from-virtualservice NAME or --from-httproute NAME")
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


def settings(args: argparse.Namespace) -> Settings:
    """The run's settings; InputError (exit 2) for any bad combination or value."""
    live = bool(args.target or args.url)
    _check_options(args, live)
    if not 0 < args.tolerance < 100:
        raise InputError(f"--tolerance must be between 0 and 100 percentage points, got {args.tolerance:g}")
    if not 0 <= args.max_unattributed < 100:
        raise InputError(f"--max-unattributed must be a percentage from 0 to below 100, got "
                         f"{args.max_unattributed:g}")
    tolerance, max_unattributed = defaults.fraction(args.tolerance), defaults.fraction(args.max_unattributed)
    check_parameters(args.alpha, tolerance, max_unattributed, args.power)
    sequential = args.sequential or (live and not args.fixed)
    return Settings(Method.SEQUENTIAL if sequential else Method.FIXED_N, live, args.alpha, tolerance,
                    max_unattributed, args.power)
