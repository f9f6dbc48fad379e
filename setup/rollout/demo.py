"""The two rollout endings ``make demo`` shows (called from setup/demo.py), each on its own local mesh started at
production 100 with the version header (``canary-setup local up --detach``), driven by the real command as a child
process (``canary-setup rollout --local --health``), the mesh stopped afterwards (``local down``, also on Ctrl-C or
an error):

1. a healthy canary, promoted 5 -> 20 -> 50 -> 100 (exit 0);
2. a canary failing 5% of its calls (``local up --canary-error-rate 5 --canary-error-code INTERNAL``), rolled back
   at its first step (exit 1), the rollback read back from Envoy and confirmed by a short sample with no canary
   response. INTERNAL, not the default UNAVAILABLE: Istio's default retry policy retries UNAVAILABLE (``retryOn``
   includes ``unavailable``, https://istio.io/latest/docs/reference/config/networking/virtual-service/#HTTPRetry),
   so a client never sees most of those failures -- the canary looks healthy from outside the proxy.

Each writes its event log and HTML report into the demo's output directory.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from splitproof.setup import proc
from splitproof.setup.errors import SetupError
from splitproof.verifier.exitcodes import ExitCode

HEADER = "x-version"
UP_TIMEOUT_S = 90.0
ROLLOUT_TIMEOUT_S = 240.0
STEP_TIMEOUT = "2m"
DEMO_ALPHA = 0.001  # as setup/demo.py's gates: a healthy canary is rolled back about once in a thousand demos
BAD_ERROR_RATE = 5
# The health margin of the demo's rollouts: 2 pp instead of the default 1 -- showing a healthy canary within it at
# its 5% step takes less than half the responses (about 8,000 instead of 18,000), and a canary failing 5% of its
# calls is still far outside it.
MAX_ERROR_INCREASE_PP = "2"


@dataclass(frozen=True)
class Ending:
    name: str                  # file stem: rollout-<name>.jsonl / .html
    title: str
    up_args: tuple[str, ...]   # extra `local up` options (the bad canary's)
    want: int                  # the exit code the rollout must end with


ENDINGS = (
    Ending("healthy", "a healthy canary: promoted 5 -> 20 -> 50 -> 100", (), ExitCode.OK),
    Ending("bad-canary", f"a canary failing {BAD_ERROR_RATE}% of its calls: rolled back at its first step",
           ("--canary-error-rate", str(BAD_ERROR_RATE), "--canary-error-code", "INTERNAL"), ExitCode.FAIL),
)


def cli(*args: str) -> list[str]:
    return proc.python_argv("-m", "splitproof.setup.cli", *args)


def _run(argv: list[str], timeout: float, log: Path | None, children: list[proc.Child]) -> int:
    child = proc.spawn(argv, log=log, inherit_output=log is None, on_start=children.append)
    try:
        return child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SetupError(f"{' '.join(argv[-6:])} did not finish within {timeout:g}s") from None
    finally:
        proc.stop(child)


def run_ending(ending: Ending, out: Path, say: Callable[[str], None], children: list[proc.Child],
               alpha: float = DEMO_ALPHA) -> tuple[str, int, int, float]:
    """(label, wanted exit, got exit, seconds) for one ending; ``alpha`` bounds the whole rollout's false rollback."""
    state = out / f"mesh-{ending.name}"
    log, html = out / f"rollout-{ending.name}.jsonl", out / f"rollout-{ending.name}.html"
    log.unlink(missing_ok=True)
    say(f"rollout: {ending.title}")
    up = cli("local", "up", "--detach", "--state-dir", str(state), "--ingress-port", "0", "--grpc-port", "0",
             "--weights", "production=100,canary=0", "--version-header", HEADER, *ending.up_args)
    code = _run(up, UP_TIMEOUT_S, out / f"mesh-{ending.name}.log", children)
    if code != 0:
        tail = (out / f"mesh-{ending.name}.log").read_text(errors="replace").strip().splitlines()[-3:]
        raise SetupError(f"the {ending.name} mesh did not start (exit {code}): {' | '.join(tail)}")
    started = time.monotonic()
    try:
        say(f"  canary-setup rollout --local --health --max-error-increase {MAX_ERROR_INCREASE_PP} --alpha {alpha:g} "
            f"--json-log {log.name} --html {html.name}")
        code = _run(cli("rollout", "--local", "--state-dir", str(state), "--health", "--max-error-increase",
                        MAX_ERROR_INCREASE_PP, "--step-timeout", STEP_TIMEOUT, "--alpha", str(alpha),
                        "--json-log", str(log), "--html", str(html)), ROLLOUT_TIMEOUT_S, None, children)
    finally:
        _run(cli("local", "down", "--state-dir", str(state)), UP_TIMEOUT_S, out / f"mesh-{ending.name}.log",
             children)
    took = time.monotonic() - started
    say(f"  {ending.name}: exit {code} in {took:.0f}s; {_summary(log)}")
    return ending.title, int(ending.want), code, took


def _summary(log: Path) -> str:
    try:
        events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return "no event log"
    steps = [f"{e['percent']}% {e['outcome']} ({e.get('samples', 0):,} responses)" for e in events
             if e.get("event") == "verdict"]
    return "; ".join(steps) + f" -> {events[-1]['event'] if events else 'nothing'}"


def run_rollouts(out: Path, say: Callable[[str], None],
                 alpha: float = DEMO_ALPHA) -> list[tuple[str, int, int, float]]:
    children: list[proc.Child] = []
    try:
        return [run_ending(ending, out, say, children, alpha) for ending in ENDINGS]
    finally:
        proc.stop_all(children)
