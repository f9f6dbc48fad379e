"""``canary-setup``: one entry point; each capability registers its own subcommands.

Every subcommand module exposes ``register(subparsers)`` which adds its parsers and sets ``func`` on them:
``func(args) -> int`` returns the exit code. SetupError subclasses become one-line errors with their code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from splitproof.setup.errors import EXIT_INTERRUPTED, SetupError

# Modules that contribute subcommands, in help order.
COMMAND_MODULES = (
    "splitproof.setup.boutique.launcher",  # serve: run one local boutique service
    "splitproof.setup.mesh.cli",           # local up/status/weights/down: the lab's mesh on a real Envoy
    "splitproof.setup.cluster.cli",        # up/plan/cluster/istio/app/expose/canary/weights/status/loadtest/down/lint
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
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except SetupError as exc:
        print(f"canary-setup: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("canary-setup: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
