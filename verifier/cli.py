"""``verify-split``: count responses per version and gate on the statistical verdict.

Exit codes (verifier.exitcodes, README "Exit codes"): 0 PASS, 1 FAIL, 2 usage or input error, 3 INCONCLUSIVE,
4 unreachable, 130 on Ctrl-C (after printing the verdict so far). This is the shell: it parses the command line,
checks the options, the expected split and the input file (verifier.command.preflight, light modules only) and
only then imports the body (scipy, numpy, rich), so ``--help``, usage and input errors answer at once.
"""

from __future__ import annotations

import argparse
import sys

from splitproof.verifier import defaults
from splitproof.verifier.cliexit import describe_os_error, error_text, stdout_failure, watch_stdout
from splitproof.verifier.errors import InputError, Unreachable
from splitproof.verifier.exitcodes import ExitCode
from splitproof.verifier.verdict import Outcome

# What each of verify-split's exit codes means (the shared table, verifier.exitcodes; README "Exit codes").
EXIT_CODES: dict[ExitCode, str] = {
    ExitCode.OK: "PASS",
    ExitCode.FAIL: "FAIL",
    ExitCode.USAGE: "usage or input error",
    ExitCode.INCONCLUSIVE: "INCONCLUSIVE (not enough samples yet)",
    ExitCode.UNREACHABLE: "target unreachable",
    ExitCode.INTERRUPTED: "interrupted (after printing the verdict so far)",
}

EPILOG = "exit codes: " + ", ".join(f"{int(code)} {text}" for code, text in EXIT_CODES.items()) + """.

examples:
  verify-split --expected 20 --target 127.0.0.1:15001          # sequential, stops at the first verdict
  verify-split --weights production=60,canary=30,shadow=10 --results out.jsonl --json - --junit split.xml
  verify-split --from-virtualservice recommendationservice -n online-boutique --url http://INGRESS
  verify-split --from-httproute recommendationservice -n online-boutique --target 127.0.0.1:8081
  verify-split --expected 20 --plan --rate 500
  verify-split --expected 20 --prometheus http://prometheus.istio-system:9090 --since 10m
  verify-split --expected 20 --prometheus http://127.0.0.1:9090 --watch --duration 300
  kubectl logs -l app=frontend -c istio-proxy --since=10m | verify-split --expected 20 --access-log - --since 10m
  verify-split --expected 20 --target 127.0.0.1:15001 --header x-version --health   # split + canary health
"""


# ------------------------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="verify-split",
        description="Prove that each version receives the share of traffic the split gives it, and gate on it.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("expected split (exactly one)")
    exp = g.add_mutually_exclusive_group(required=True)
    exp.add_argument("--expected", metavar="P", help="canary percent; the rest is production (e.g. 20)")
    exp.add_argument("--weights", metavar="SPEC", help="subset weights summing to 100: production=80,canary=20")
    exp.add_argument("--from-virtualservice", metavar="FILE|NAME",
                     help="Istio YAML file (multi-document fine), or with -n the live VirtualService NAME")
    exp.add_argument("--from-httproute", metavar="FILE|NAME",
                     help="Gateway API YAML (the HTTPRoute and its backend Services), or with -n the live HTTPRoute "
                          "NAME; each backend Service is named by its selector's version label")
    g.add_argument("-n", "--namespace", help="namespace of the live VirtualService or HTTPRoute (current kube "
                                             "context); with a telemetry source also the service's (default "
                                             f"{defaults.SERVICE_NAMESPACE})")
    g.add_argument("--context", help="kube context for the live VirtualService or HTTPRoute (default: current)")
    g.add_argument("--host", default=defaults.SERVICE_HOST,
                   help="service host whose weighted route to read (default: %(default)s)")

    g = p.add_argument_group("observations (exactly one)")
    obs = g.add_mutually_exclusive_group(required=True)
    obs.add_argument("--results", metavar="FILE", help="JSON-lines records written by loadtest/boutique.py (- = stdin)")
    obs.add_argument("--target", metavar="HOST:PORT",
                     help="sample live: gRPC ListRecommendations through a proxy that applies the split")
    obs.add_argument("--url", metavar="URL", help="sample live: product pages of the shop at URL (through the mesh)")
    obs.add_argument("--plan", action="store_true", help="print the samples needed and exit")
    obs.add_argument("--prometheus", metavar="URL",
                     help="passive: count the real traffic from Prometheus (istio_requests_total, exact raw samples)")
    obs.add_argument("--envoy-admin", metavar="URL",
                     help="passive: per-subset cluster counters of one Envoy admin endpoint (delta of two snapshots)")
    obs.add_argument("--access-log", metavar="FILE|-",
                     help="passive: Istio sidecar access log (TEXT or JSON lines; - = stdin)")

    g = p.add_argument_group("statistics")
    mode = g.add_mutually_exclusive_group()
    mode.add_argument("--sequential", action="store_true",
                      help="anytime-valid test, stop at the first verdict (default for --target/--url)")
    mode.add_argument("--fixed", action="store_true",
                      help="fixed-n test (default for --results; live: sample --max-samples or the planned n)")
    g.add_argument("--alpha", type=float, default=defaults.ALPHA,
                   help="error rate of each verdict (default: %(default)s)")
    g.add_argument("--tolerance", type=float, default=defaults.points(defaults.TOLERANCE), metavar="PP",
                   help="PASS needs every share within expected ± PP percentage points (default: %(default)s)")
    g.add_argument("--max-unattributed", type=float, default=defaults.points(defaults.MAX_UNATTRIBUTED),
                   metavar="PCT", help="FAIL when unattributed responses are shown above PCT percent "
                                       "(default: %(default)s)")
    g.add_argument("--power", type=float, default=defaults.POWER,
                   help="power for --plan and samples-needed (default: %(default)s)")
    g.add_argument("--rate", type=float, metavar="PER_S", help="--plan: responses per second, to show the time")

    g = p.add_argument_group("live sampling (--target / --url)")
    g.add_argument("--max-samples", type=int, metavar="N",
                   help=f"stop after N responses (sequential default {defaults.SEQUENTIAL_MAX_SAMPLES}; fixed "
                        "default: the planned n)")
    g.add_argument("--duration", type=float, metavar="S",
                   help=f"stop after S seconds (default: {defaults.LIVE_DURATION_S:g})")
    g.add_argument("--concurrency", type=int, default=8, help="parallel requests (default: %(default)s)")
    g.add_argument("--timeout", type=float, default=5.0, metavar="S", help="per-request timeout (default: %(default)s)")
    g.add_argument("--connect-timeout", type=float, default=5.0, metavar="S",
                   help="give up (exit 4) when the target accepts no connection within S seconds")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--save-results", metavar="FILE", help="append every sampled response to FILE as a record")

    g = p.add_argument_group("telemetry (--prometheus / --envoy-admin / --access-log; README \"Passive verification\")")
    g.add_argument("--since", metavar="T", help="window start: unix seconds, RFC 3339, or a duration back from now "
                                                "(10m); required for --prometheus without --watch")
    g.add_argument("--until", metavar="T", help="window end (default: now)")
    g.add_argument("--service", default=defaults.SERVICE_HOST,
                   help="the service whose split is verified (default: %(default)s; a name with dots is a full host)")
    g.add_argument("--reporter", default="source", choices=("source", "destination"),
                   help="istio_requests_total reporter, never both (default: %(default)s)")
    g.add_argument("--metric", default="istio", choices=("istio", "envoy"),
                   help="--prometheus: Istio's standard metrics or Envoy's per-cluster counters (default: istio)")
    g.add_argument("--promql", metavar="SELECTOR", help="--prometheus: your own counter selector, grouped by "
                                                        "--version-label")
    g.add_argument("--version-label", default="destination_version", metavar="LABEL",
                   help="--promql: the label naming the version (default: %(default)s)")
    g.add_argument("--token-file", metavar="FILE", help="bearer token for a secured Prometheus, read from FILE")
    g.add_argument("--token-env", metavar="VAR", help="bearer token from environment variable VAR")
    g.add_argument("--header-file", metavar="FILE", help="extra request headers, 'Name: value' lines (never printed)")
    g.add_argument("--watch", action="store_true",
                   help="sequential from now: poll every --interval, the gate decides at poll boundaries; stops at the "
                        "verdict or INCONCLUSIVE at --duration")
    g.add_argument("--interval", type=float, metavar="S",
                   help="--watch poll interval (default: Prometheus' scrape interval; Envoy admin 1 s)")

    g = p.add_argument_group("attribution")
    g.add_argument("--class", dest="classes", action="append", metavar="NAME=COUNT", default=[],
                   help="version NAME answers with COUNT items (repeatable; replaces the 5/2 and 4/2 defaults)")
    g.add_argument("--header", metavar="NAME",
                   help="attribute by this response header / gRPC metadata (Istio headers.response.set)")

    add_health_arguments(p)

    g = p.add_argument_group("outputs")
    g.add_argument("--json", metavar="PATH|-", help="write the verdict as JSON (- = stdout; the table goes to stderr)")
    g.add_argument("--junit", metavar="PATH", help="write JUnit XML: one testcase per version + the verdict")
    g.add_argument("--html", metavar="PATH",
                   help="write a self-contained HTML report: verdict, table, share over time, latencies")
    return p


def add_health_arguments(p: argparse.ArgumentParser) -> None:
    """``--health`` and its margins (README "Canary health"; the method: docs/health-method.md)."""
    g = p.add_argument_group("canary health (--health)")
    g.add_argument("--health", action="store_true",
                   help="also judge whether the canary is worse than production (errors, slow responses); the exit "
                        "code is FAIL if the split or a health metric fails")
    g.add_argument("--max-error-increase", type=float, default=defaults.points(defaults.MAX_ERROR_INCREASE),
                   metavar="PP", help="PASS needs the canary's error rate shown below production's + PP percentage "
                                      "points (default: %(default)s)")
    g.add_argument("--error-fail-margin", type=float, default=0.0, metavar="PP",
                   help="FAIL needs the canary's error rate shown above production's + PP (default: %(default)s: "
                        "shown worse at all)")
    lat = g.add_mutually_exclusive_group()
    lat.add_argument("--latency-threshold-ms", type=float, metavar="MS",
                     help="a successful response slower than MS is slow (default: production's p95 over its first "
                          "--latency-warmup successful responses, which are not used in the test)")
    lat.add_argument("--no-latency", action="store_true", help="judge errors only")
    g.add_argument("--latency-warmup", type=int, default=200, metavar="N",
                   help="production responses that set the slow threshold when none is given (default: %(default)s)")
    g.add_argument("--max-slow-increase", type=float, default=defaults.points(defaults.MAX_SLOW_INCREASE),
                   metavar="PP", help="PASS needs the canary's share of slow responses shown below production's + PP "
                                      "(default: %(default)s)")
    g.add_argument("--slow-fail-margin", type=float, default=0.0, metavar="PP",
                   help="FAIL needs the canary's share of slow responses shown above production's + PP "
                        "(default: %(default)s)")


def main(argv: list[str] | None = None) -> int:
    watch_stdout()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, message already printed)
        return int(exc.code) if isinstance(exc.code, int) else ExitCode.USAGE
    from splitproof.verifier.command.preflight import preflight  # light: checks before the heavy imports

    try:
        pre = preflight(args)
        from splitproof.verifier.command.run import (  # the heavy part (scipy), once the inputs are good
            make_consoles,
            run,
        )

        console, err = make_consoles(args.json == "-")
        code = run(args, console, err, pre)
    except InputError as exc:
        return _error(exc, ExitCode.USAGE)
    except Unreachable as exc:
        return _error(exc, ExitCode.UNREACHABLE)
    except OSError as exc:  # the environment (a full disk, a closed pipe, ...): one line, never a traceback
        reason = stdout_failure()
        return _error(f"cannot write to standard output ({reason})" if reason else describe_os_error(exc),
                      ExitCode.USAGE)
    except SystemExit:  # rich ends the process this way (exit 1) when standard output is a closed pipe
        reason = stdout_failure()
        if reason is None:
            raise
        return _error(f"cannot write to standard output ({reason})", ExitCode.USAGE)
    except KeyboardInterrupt:
        print("verify-split: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    reason = stdout_failure()
    if reason is not None:
        outcome = next((o for o in Outcome if o.exit_code == code), None)
        return _error(f"cannot write to standard output ({reason})"
                      + (f" -- the verdict was {outcome}" if outcome else ""), ExitCode.USAGE)
    return code


def _error(message: object, code: int) -> int:
    """Print ``verify-split: error: MESSAGE`` as one line (credentials redacted) and return ``code``."""
    text = " ".join(error_text(message).split())
    print(f"verify-split: error: {text}", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
