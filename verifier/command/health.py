"""``--health``: the health judge's options from the command line, and the judge a run feeds (README "Canary
health"). Percentage points as typed are checked here and become the API's fractions.

:func:`health_options` is part of the preflight (light modules only: a bad option answers before scipy loads;
without ``--health`` no module of verifier.health is loaded); the judges, and the scipy under them, are imported
by the functions that build them."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from splitproof.verifier import defaults
from splitproof.verifier.errors import InputError
from splitproof.verifier.expected import Expected
from splitproof.verifier.inputs.attribution import Attribution
from splitproof.verifier.verdict import Method

if TYPE_CHECKING:
    from splitproof.verifier.health.batches import BatchHealth
    from splitproof.verifier.health.options import HealthOptions
    from splitproof.verifier.health.responses import ResponseHealth

HEALTH_ONLY = ("max_error_increase", "error_fail_margin", "latency_threshold_ms", "no_latency", "latency_warmup",
               "max_slow_increase", "slow_fail_margin")
_DEFAULTS = {"max_error_increase": defaults.points(defaults.MAX_ERROR_INCREASE), "error_fail_margin": 0.0,
             "latency_threshold_ms": None, "no_latency": False, "latency_warmup": 200,
             "max_slow_increase": defaults.points(defaults.MAX_SLOW_INCREASE), "slow_fail_margin": 0.0}


def _points(value: float, flag: str, lo: float = 0.0) -> float:
    if not lo <= value < 100:
        raise InputError(f"{flag} must be from {lo:g} to below 100 percentage points, got {value:g}")
    return defaults.fraction(value)


def health_options(args: argparse.Namespace, alpha: float, power: float) -> HealthOptions | None:
    """The run's HealthOptions (None without ``--health``); InputError (exit 2) for a bad value or combination."""
    if not getattr(args, "health", False):
        changed = [f"--{name.replace('_', '-')}" for name in HEALTH_ONLY
                   if getattr(args, name, _DEFAULTS[name]) != _DEFAULTS[name]]
        if changed:
            raise InputError(f"{', '.join(changed)} only appl{'ies' if len(changed) == 1 else 'y'} with --health")
        return None
    if args.max_error_increase <= 0:
        raise InputError(f"--max-error-increase must be above 0 percentage points, got {args.max_error_increase:g}")
    if args.max_slow_increase <= 0:
        raise InputError(f"--max-slow-increase must be above 0 percentage points, got {args.max_slow_increase:g}")
    if args.latency_threshold_ms is not None and not args.latency_threshold_ms > 0:
        raise InputError(f"--latency-threshold-ms must be a positive number of milliseconds, got "
                         f"{args.latency_threshold_ms:g}")
    from splitproof.verifier.health.options import HealthOptions  # light (no judge, no scipy); with --health only

    options = HealthOptions(
        alpha=alpha, power=power,
        max_error_increase=_points(args.max_error_increase, "--max-error-increase"),
        error_fail_margin=_points(args.error_fail_margin, "--error-fail-margin"),
        latency=not args.no_latency, latency_threshold_ms=args.latency_threshold_ms,
        max_slow_increase=_points(args.max_slow_increase, "--max-slow-increase"),
        slow_fail_margin=_points(args.slow_fail_margin, "--slow-fail-margin"),
        warmup=args.latency_warmup)
    try:
        options.check()
    except InputError as exc:
        text = str(exc).replace("the errors fail margin", "--error-fail-margin").replace(
            "the latency fail margin", "--slow-fail-margin").replace("the latency warm-up", "--latency-warmup")
        raise InputError(text) from None
    return options


def check_health_split(expected: Expected) -> list[str]:
    """The versions the expected split gives traffic to; InputError unless a canary is among them besides
    production (what both judges need; checked in the preflight, before they are imported)."""
    versions = [v for v, share in expected.items() if share > 0]
    if len(versions) < 2:
        raise InputError("--health needs a canary besides production: the expected split gives traffic to "
                         f"{', '.join(versions) or 'no version'} only")
    return versions


def response_health(options: HealthOptions, expected: Expected, method: Method,
                    attribution: Attribution | None, *, live: bool) -> ResponseHealth:
    """The judge records feed: live sampling knows whether a failure can name its version (``--header``); a
    results file says so in its records (``by``)."""
    from splitproof.verifier.health.responses import ResponseHealth

    attributable = (attribution is not None and attribution.header is not None) if live else None
    try:
        return ResponseHealth.for_expected(options, expected, method=method, errors_attributable=attributable)
    except InputError as exc:
        raise InputError(str(exc).replace("the health judge needs", "--health needs")) from None


def batch_health(options: HealthOptions, expected: Expected, method: Method) -> BatchHealth:
    """The judge a telemetry source's count batches feed (statuses, duration histograms)."""
    from splitproof.verifier.health.batches import BatchHealth
    from splitproof.verifier.health.model import baseline_of

    versions = check_health_split(expected)
    return BatchHealth(options, versions, baseline_of({v: expected[v] for v in versions}), method=method)
