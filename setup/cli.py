"""``canary-setup``: one entry point; each capability registers its own subcommands.

Every subcommand module exposes ``register(subparsers)`` which adds its parsers and sets ``func`` on them:
``func(args) -> int`` returns the exit code. verifier.errors.SplitproofError subclasses (InputError, SetupError,
...) become one-line errors with their code (the shared table: splitproof.verifier.exitcodes).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from splitproof.verifier.cliexit import describe_os_error, error_text, stdout_failure, watch_stdout
from splitproof.verifier.errors import SplitproofError
from splitproof.verifier.exitcodes import ExitCode

# Modules that contribute subcommands, in help order.
COMMAND_MODULES = (
    "splitproof.setup.boutique.serve",     # serve: run one local boutique service
    "splitproof.setup.mesh.cli",           # local up/status/weights/down: the lab's mesh on a real Envoy
    "splitproof.setup.cluster.cli",        # up/plan/cluster/istio/app/expose/canary/weights/status/loadtest/down/lint
    "splitproof.setup.rollout.cli",        # rollout: 5 -> 20 -> 50 -> 100, each step proven and gated
    "splitproof.setup.demo",               # demo: what `make demo` runs
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="canary-setup",
        description="Provision the Istio canary lab (cluster via kubectl/istioctl, or locally on a real Envoy).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    watch_stdout()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
    except SplitproofError as exc:
        return _error(exc, exc.exit_code)
    except OSError as exc:  # the environment (a full disk, a closed pipe, ...): one line, never a traceback
        reason = stdout_failure()
        if reason is not None:
            return _error(f"cannot write to standard output ({reason})", ExitCode.USAGE)
        return _error(describe_os_error(exc), ExitCode.USAGE)  # a path given that cannot be used
    except SystemExit:  # rich ends the process this way (exit 1) when standard output is a closed pipe
        reason = stdout_failure()
        if reason is None:
            raise
        return _error(f"cannot write to standard output ({reason})", ExitCode.USAGE)
    except KeyboardInterrupt:
        print("canary-setup: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    reason = stdout_failure()
    if reason is not None:
        return _error(f"cannot write to standard output ({reason})", ExitCode.USAGE)
    return code


def _error(message: object, code: int) -> int:
    """Print ``canary-setup: error: MESSAGE`` (credentials redacted; a step failure keeps its lines)."""
    print(f"canary-setup: error: {error_text(message)}", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
