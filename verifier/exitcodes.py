"""One exit-code table for both commands, ``verify-split`` and ``canary-setup`` (README "Exit codes").

Every code means one thing whichever command returns it, so a CI step gating on both reads them the same way:
0 is always "good", 1 always "the thing checked or attempted failed", 2 always "you asked for something wrong".
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0              # verify-split PASS; canary-setup done; a rollout promoted
    FAIL = 1            # verify-split FAIL; a canary-setup step failed; a rollout rolled back
    USAGE = 2           # bad command line or input: options, YAML, manifests, unsupported Istio fields, files
    INCONCLUSIVE = 3    # not enough evidence either way yet; a rollout held
    UNREACHABLE = 4     # a target, the Kubernetes API, Prometheus or the cluster cannot be reached
    MISSING_BINARY = 5  # envoy / kubectl / istioctl / gcloud / kind / docker / prometheus not found
    NOT_RUNNING = 6     # no local mesh running (or its supervisor died)
    TIMEOUT = 7         # waited for readiness, a rollout or the proxies, and gave up
    PORT_IN_USE = 8     # a port the local mesh must bind is taken
    BUSY = 9            # another rollout is driving this local mesh
    INTERRUPTED = 130   # Ctrl-C (after printing what was measured so far)


MEANING: dict[ExitCode, str] = {
    ExitCode.OK: "PASS / done / promoted",
    ExitCode.FAIL: "FAIL / a step failed / rolled back",
    ExitCode.USAGE: "usage or input error (one line on stderr, never a traceback)",
    ExitCode.INCONCLUSIVE: "INCONCLUSIVE / held: not enough evidence yet",
    ExitCode.UNREACHABLE: "unreachable: target, Kubernetes API, Prometheus or cluster",
    ExitCode.MISSING_BINARY: "a required binary is missing",
    ExitCode.NOT_RUNNING: "nothing running (no local mesh, or its supervisor died)",
    ExitCode.TIMEOUT: "timed out waiting (readiness, rollout, proxies)",
    ExitCode.PORT_IN_USE: "a port the local mesh must bind is taken",
    ExitCode.BUSY: "busy: another rollout is driving this local mesh",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}


def epilog() -> str:
    """The table as one line per code, for ``--help`` epilogs."""
    return "exit codes:\n" + "\n".join(f"  {int(code):>3}  {text}" for code, text in MEANING.items())
