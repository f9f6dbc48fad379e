"""canary-setup's own failures, on the shared base class (exit codes from splitproof.verifier.exitcodes).

Bad input of any kind -- options, YAML, manifests, unsupported Istio fields -- is ``verifier.errors.InputError``
(exit 2), the same class verify-split raises; an unreachable cluster is ``verifier.errors.Unreachable`` (exit 4).
"""

from __future__ import annotations

from splitproof.verifier.errors import SplitproofError
from splitproof.verifier.exitcodes import ExitCode


class SetupError(SplitproofError):
    """A step or an operation failed (details in the message): exit 1."""

    exit_code = ExitCode.FAIL


class PortInUseError(SetupError):
    exit_code = ExitCode.PORT_IN_USE


class MissingBinaryError(SetupError):
    exit_code = ExitCode.MISSING_BINARY


class NotRunningError(SetupError):
    exit_code = ExitCode.NOT_RUNNING


class WaitTimeoutError(SetupError):
    exit_code = ExitCode.TIMEOUT


class BusyError(SetupError):
    exit_code = ExitCode.BUSY
