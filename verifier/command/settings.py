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
    telemetry: bool
    alpha: float
    tolerance: float          # fraction
    max_unattributed: float   # fraction
    power: float


def telemetry_source(args: argparse.Namespace) -> str | None:
    """Which telemetry source the run reads ("prometheus" | "envoy-admin" | "access-log"), or None."""
    for name in ("prometheus", "envoy_admin", "access_log"):
        if getattr(args, name, None) is not None:
            return name.replace("_", "-")
    return None


def _check_telemetry(args: argparse.Namespace, source: str | None) -> None:
    given = [f"--{n.replace('_', '-')}" for n in ("since", "until", "watch", "interval", "promql", "token_file",
                                                  "token_env", "header_file") if getattr(args, n, None)]
    if args.metric != "istio":
        given.append("--metric")
    if args.reporter != "source":
        given.append("--reporter")
    if source is None:
        if given:
            raise InputError(f"{', '.join(given)} only apply with a telemetry source (--prometheus, --envoy-admin or "
                             "--access-log)")
        return
    if args.classes or args.header:
        raise InputError("--class/--header attribute responses by their content; telemetry counts requests by the "
                         "version they were routed to")
    if source != "prometheus":
        only = [g for g in given if g in ("--promql", "--metric", "--reporter", "--token-file", "--token-env")]
        if only:
            raise InputError(f"{', '.join(only)} only apply to --prometheus")
    if source == "access-log" and (args.watch or args.interval):
        raise InputError("--watch applies to --prometheus and --envoy-admin (an access log is read to its end)")
    if source == "envoy-admin" and (args.since or args.until):
        raise InputError("--envoy-admin counts between two snapshots from now: use --duration (or --watch), not "
                         "--since/--until")
    if source == "prometheus":
        if args.watch and (args.since or args.until):
            raise InputError("--watch counts from now: give --duration, not --since/--until")
        if not args.watch and not args.since:
            raise InputError("--prometheus needs a window (--since 10m, optionally --until) or --watch")
        if args.promql and args.metric != "istio":
            raise InputError("give --promql or --metric envoy, not both")
    if args.interval is not None and args.interval <= 0:
        raise InputError(f"--interval must be positive, got {args.interval:g}")
    if args.fixed and args.watch:
        raise InputError("--watch is the sequential test (decided at poll boundaries); --fixed reads a window")


def _check_options(args: argparse.Namespace, live: bool) -> None:
    if args.header and args.results:
        raise InputError("--header needs live sampling: result records carry no headers (use --class or the "
                         "record's version)")
    if args.save_results and not live:
        raise InputError("--save-results applies to live sampling (--target/--url)")
    if args.namespace and not args.from_virtualservice and telemetry_source(args) is None:
        raise InputError("-n/--namespace only applies to --from-virtualservice NAME or a telemetry source")
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
    source = telemetry_source(args)
    _check_options(args, live)
    _check_telemetry(args, source)
    if not 0 < args.tolerance < 100:
        raise InputError(f"--tolerance must be between 0 and 100 percentage points, got {args.tolerance:g}")
    if not 0 <= args.max_unattributed < 100:
        raise InputError(f"--max-unattributed must be a percentage from 0 to below 100, got "
                         f"{args.max_unattributed:g}")
    tolerance, max_unattributed = defaults.fraction(args.tolerance), defaults.fraction(args.max_unattributed)
    check_parameters(args.alpha, tolerance, max_unattributed, args.power)
    sequential = args.sequential or (live and not args.fixed) or bool(args.watch)
    return Settings(Method.SEQUENTIAL if sequential else Method.FIXED_N, live, source is not None, args.alpha,
                    tolerance,
                    max_unattributed, args.power)
