"""Errors a user can cause, each with its own exit code; the CLI prints one line, never a traceback."""

from __future__ import annotations

# Exit codes of canary-setup (documented in README.md).
EXIT_OK = 0
EXIT_FAILED = 1          # a step or an operation failed (details printed)
EXIT_USAGE = 2           # bad command line (argparse convention)
EXIT_BAD_CONFIG = 3      # bad YAML / manifest / unsupported Istio field
EXIT_PORT_IN_USE = 4     # a port we must bind is taken
EXIT_MISSING_BINARY = 5  # envoy / kubectl / istioctl / gcloud / kind / docker not found
EXIT_NOT_RUNNING = 6     # `local status/weights/down` with nothing running, or target unreachable
EXIT_TIMEOUT = 7         # waited for readiness / rollout / proxies and gave up
EXIT_INTERRUPTED = 130   # Ctrl-C


class SetupError(Exception):
    """A failure to report as one line with a distinct exit code."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(SetupError):
    exit_code = EXIT_BAD_CONFIG


class PortInUseError(SetupError):
    exit_code = EXIT_PORT_IN_USE


class MissingBinaryError(SetupError):
    exit_code = EXIT_MISSING_BINARY


class NotRunningError(SetupError):
    exit_code = EXIT_NOT_RUNNING


class WaitTimeoutError(SetupError):
    exit_code = EXIT_TIMEOUT
