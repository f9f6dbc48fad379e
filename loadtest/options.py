"""The locustfile's own command-line options and their validation into one immutable SplitConfig.

Options are registered on Locust's parser (``events.init_command_line_parser``), so they also work from a Locust
config file or ``LOCUST_*`` environment variables, and travel from the master to the workers with the rest of
the parsed options. Values are kept as the strings the user typed and parsed here, so a bad value is one line
naming the option (exit code 2), never a traceback. This is the Locust edge: ``--tolerance`` (percentage points) and
``--max-unattributed`` (percent) are converted here, once, into the fractions of the verifier's API; the defaults
are the verifier's (verifier.defaults).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from splitproof.verifier import defaults
from splitproof.verifier.errors import InputError
from splitproof.verifier.expected import Expected, check_attributable, from_canary_percent, from_weights_spec
from splitproof.verifier.inputs.attribution import (
    DEFAULT_GRPC_CLASSES,
    DEFAULT_HTML_CLASSES,
    Attribution,
    parse_class_overrides,
)

if TYPE_CHECKING:  # scipy behind it: imported when --health is given
    from splitproof.verifier.health.options import HealthOptions

# ShopperUser task names (as on the command line) -> the upstream load generator's weights.
SHOPPER_TASKS: dict[str, int] = {
    "index": 1, "setCurrency": 2, "browseProduct": 10, "addToCart": 2, "viewCart": 3, "checkout": 1,
}


class UsageError(ValueError):
    """A bad option value: one line for the user, exit code 2."""


def add_arguments(parser: Any) -> None:
    """Register the options on Locust's (configargparse) parser."""
    group = parser.add_argument_group(
        "Splitproof", "Attribute every product page / ListRecommendations reply to a version and verify the split")
    # Arguments of a group carry no web-UI flag, so Locust's start form leaves them out; --grpc-target is the one
    # a user may want to change between runs, so it is flagged for the form like parser.add_argument would.
    target = group.add_argument("--grpc-target", metavar="HOST:PORT", default=None,
                       help="RecommendationService address for RecommendationUser: a proxy that applies the split "
                            "(mesh entry, sidecar, gateway), never a pod or a port-forward to the service")
    target.include_in_web_ui = True
    target.is_secret = False
    target.is_required = False
    group.add_argument("--split-results", metavar="PATH", default=None,
                       help="write one JSON line per attributed response here (the verify-split --results format); "
                            "started afresh for each run, like --csv")
    group.add_argument("--split-results-append", action="store_true", default=False,
                       help="append to an existing --split-results file instead of starting it afresh")
    group.add_argument("--expected", metavar="PERCENT", default=None,
                       help="expected canary percentage (rest production): live split + verdict exit code")
    group.add_argument("--weights", metavar="NAME=W,...", default=None,
                       help="expected split as Istio weights summing to 100, e.g. production=80,canary=20")
    group.add_argument("--tolerance", metavar="PP", default=None,
                       help=f"equivalence margin in percentage points "
                            f"(default {defaults.points(defaults.TOLERANCE):g})")
    group.add_argument("--alpha", metavar="A", default=None,
                       help=f"significance level (default {defaults.ALPHA:g})")
    group.add_argument("--max-unattributed", metavar="PERCENT", default=None,
                       help=f"FAIL when more than this percent of split responses are unattributed "
                            f"(default {defaults.points(defaults.MAX_UNATTRIBUTED):g})")
    group.add_argument("--stop-on-verdict", action="store_true", default=False,
                       help="stop the test at the first decision of the sequential (always-valid) test")
    group.add_argument("--html-class", metavar="NAME=COUNT", action="append", default=None,
                       help="product-page item count of a version (repeatable; default production=4, canary=2)")
    group.add_argument("--grpc-class", metavar="NAME=COUNT", action="append", default=None,
                       help="ListRecommendations item count of a version (repeatable; default production=5, canary=2)")
    group.add_argument("--shopper-tasks", metavar="TASK=W,...", default=None,
                       help="ShopperUser task weights, e.g. browseProduct=10,index=0 (tasks: "
                            + ", ".join(f"{k} {v}" for k, v in SHOPPER_TASKS.items()) + ")")
    group.add_argument("--version-header", metavar="NAME", default=None,
                       help="attribute by this response header / gRPC metadata (Istio headers.response.set; the "
                            "local mesh's --version-header): a failed call then names its version too")
    group.add_argument("--health", action="store_true", default=False,
                       help="also judge the canary's health (errors, slow responses) against production: the "
                            "exit code FAILs if the split or a health metric fails (needs --expected/--weights)")
    group.add_argument("--max-error-increase", metavar="PP", default=None,
                       help=f"--health: PASS needs the canary's error rate shown below production's + PP "
                            f"(default {defaults.points(defaults.MAX_ERROR_INCREASE):g})")
    group.add_argument("--latency-threshold-ms", metavar="MS", default=None,
                       help="--health: a response slower than MS is slow (default: production's p95 over its first "
                            "200 successful responses)")
    group.add_argument("--max-slow-increase", metavar="PP", default=None,
                       help=f"--health: PASS needs the canary's share of slow responses shown below production's + "
                            f"PP (default {defaults.points(defaults.MAX_SLOW_INCREASE):g})")
    group.add_argument("--think-time", metavar="MIN[:MAX]", default=None,
                       help="seconds each user waits between tasks (default 0; the upstream generator uses 1:10)")


@dataclass(frozen=True)
class SplitConfig:
    grpc_target: str | None = None
    results_path: str | None = None
    append: bool = False
    expected: Expected | None = None
    alpha: float = defaults.ALPHA
    tolerance: float = defaults.TOLERANCE                 # a fraction (typed in percentage points)
    max_unattributed: float = defaults.MAX_UNATTRIBUTED   # a fraction (typed in percent)
    stop_on_verdict: bool = False
    attribution: Attribution = field(default_factory=Attribution)
    shopper_tasks: Mapping[str, int] | None = None
    think_time: tuple[float, float] = (0.0, 0.0)
    health: HealthOptions | None = None   # --health: the canary's health judged too


def _text(value: Any) -> str | None:
    """Option value as stripped text; None/'' (unset, or an empty web-UI field) -> None."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _number(value: Any, option: str, lo: float, hi: float, default: float, *, open_lo: bool = True) -> float:
    text = _text(value)
    if text is None:
        return default
    try:
        number = float(text)
    except ValueError:
        raise UsageError(f"{option} must be a number, got {text!r}") from None
    if not math.isfinite(number) or number > hi or number < lo or (open_lo and number == lo):
        bound = f"({lo:g}, {hi:g}]" if open_lo else f"[{lo:g}, {hi:g}]"
        raise UsageError(f"{option} must be in {bound}, got {text}")
    return number


def parse_target(value: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    for prefix in ("grpc://", "dns:///"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--grpc-target must be HOST:PORT, got {value!r}")
    return text


def parse_shopper_tasks(value: Any) -> dict[str, int] | None:
    """``browseProduct=10,index=0`` -> the full task table with those weights changed (None when unset)."""
    text = _text(value)
    if text is None:
        return None
    weights = dict(SHOPPER_TASKS)
    for item in text.split(","):
        name, sep, weight_text = item.strip().partition("=")
        if not sep or name.strip() not in SHOPPER_TASKS:
            raise UsageError(f"--shopper-tasks expects TASK=WEIGHT with TASK one of {', '.join(SHOPPER_TASKS)}, "
                             f"got {item.strip()!r}")
        try:
            weight = int(weight_text)
        except ValueError:
            raise UsageError(f"--shopper-tasks: weight of {name.strip()} must be an integer, got {weight_text!r}") \
                from None
        if weight < 0:
            raise UsageError(f"--shopper-tasks: weight of {name.strip()} must be >= 0, got {weight}")
        weights[name.strip()] = weight
    if not any(weights.values()):
        raise UsageError("--shopper-tasks: at least one task needs a positive weight")
    return weights


def parse_think_time(value: Any) -> tuple[float, float]:
    text = _text(value)
    if text is None:
        return (0.0, 0.0)
    lo_text, _, hi_text = text.partition(":")
    try:
        lo = float(lo_text)
        hi = float(hi_text) if hi_text else lo
    except ValueError:
        raise UsageError(f"--think-time must be MIN[:MAX] seconds, got {text!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < 0 or hi < lo:
        raise UsageError(f"--think-time must be MIN[:MAX] seconds with 0 <= MIN <= MAX, got {text!r}")
    return (lo, hi)


def parse_attribution(html_specs: list[str] | None, grpc_specs: list[str] | None,
                      header: Any = None) -> Attribution:
    try:
        html = parse_class_overrides(list(html_specs)) if html_specs else dict(DEFAULT_HTML_CLASSES)
        grpc = parse_class_overrides(list(grpc_specs)) if grpc_specs else dict(DEFAULT_GRPC_CLASSES)
    except ValueError as exc:
        raise UsageError(str(exc).replace("--class", "--html-class/--grpc-class")) from None
    name = _text(header)
    if name is not None and (not name.isprintable() or any(c in name for c in " :\t")):
        raise UsageError(f"--version-header must be a header name, got {name!r}")
    return Attribution(grpc_classes=grpc, html_classes=html, header=name.lower() if name else None)


def parse_health(options: Any, alpha: float, expected: Expected | None) -> HealthOptions | None:
    """``--health`` and its margins (percentage points as typed) -> HealthOptions; None without --health."""
    def get(name: str) -> Any:
        return getattr(options, name, None) if options is not None else None

    if not get("health"):
        given = [f"--{n.replace('_', '-')}" for n in ("max_error_increase", "latency_threshold_ms",
                                                       "max_slow_increase") if _text(get(n)) is not None]
        if given:
            raise UsageError(f"{', '.join(given)} only apply with --health")
        return None
    if expected is None:
        raise UsageError("--health needs the expected split (--expected or --weights)")
    error_pp = _number(get("max_error_increase"), "--max-error-increase", 0.0, 100.0,
                       defaults.points(defaults.MAX_ERROR_INCREASE))
    slow_pp = _number(get("max_slow_increase"), "--max-slow-increase", 0.0, 100.0,
                      defaults.points(defaults.MAX_SLOW_INCREASE))
    threshold = _text(get("latency_threshold_ms"))
    from splitproof.verifier.health.options import HealthOptions

    health = HealthOptions(alpha=alpha, max_error_increase=defaults.fraction(error_pp),
                           max_slow_increase=defaults.fraction(slow_pp),
                           latency_threshold_ms=_number(threshold, "--latency-threshold-ms", 0.0, 3.6e6, 0.0)
                           if threshold is not None else None)
    try:
        health.check()
    except InputError as exc:
        raise UsageError(str(exc)) from None
    return health


def parse_expected(expected: Any, weights: Any) -> Expected | None:
    expected_text, weights_text = _text(expected), _text(weights)
    if expected_text is not None and weights_text is not None:
        raise UsageError("give either --expected or --weights, not both")
    option = "--expected" if expected_text is not None else "--weights"
    try:
        if expected_text is not None:
            return from_canary_percent(expected_text)
        if weights_text is not None:
            return from_weights_spec(weights_text)
    except InputError as exc:
        message = str(exc)
        raise UsageError(message if message.startswith(option) else f"{option}: {message}") from None
    return None


def config_from_options(options: Any) -> SplitConfig:
    """Validate Locust's parsed options (a Namespace; missing attributes count as unset). Raises UsageError."""

    def get(name: str) -> Any:
        return getattr(options, name, None) if options is not None else None

    attribution = parse_attribution(get("html_class"), get("grpc_class"), get("version_header"))
    expected = parse_expected(get("expected"), get("weights"))
    if expected is not None and attribution.header is None:
        try:
            check_attributable(expected, attribution.versions())
        except InputError as exc:
            raise UsageError(str(exc).replace("--class NAME=COUNT", "--html-class/--grpc-class NAME=COUNT")) \
                from None
    stop_on_verdict = bool(get("stop_on_verdict"))
    if stop_on_verdict and expected is None:
        raise UsageError("--stop-on-verdict needs the expected split (--expected or --weights)")
    alpha = _number(get("alpha"), "--alpha", 0.0, 0.5, defaults.ALPHA)
    return SplitConfig(
        grpc_target=parse_target(get("grpc_target")),
        results_path=_text(get("split_results")),
        append=bool(get("split_results_append")),
        expected=expected,
        alpha=alpha,
        tolerance=defaults.fraction(_number(get("tolerance"), "--tolerance", 0.0, 100.0,
                                            defaults.points(defaults.TOLERANCE))),
        max_unattributed=defaults.fraction(_number(get("max_unattributed"), "--max-unattributed", 0.0, 100.0,
                                                   defaults.points(defaults.MAX_UNATTRIBUTED), open_lo=False)),
        stop_on_verdict=stop_on_verdict,
        attribution=attribution,
        shopper_tasks=parse_shopper_tasks(get("shopper_tasks")),
        think_time=parse_think_time(get("think_time")),
        health=parse_health(options, alpha, expected),
    )
