"""In-pod wrapper for the Locust master Job: ``python -m splitproof.setup.cluster.podrun [options] -- locust ...``.

An injected pod's istio-proxy never exits on its own, so a Job with a sidecar never completes. This wrapper runs
the command (argv, no shell), writes ``{"exit_code": N}`` to ``--status`` (atomically: temp file + rename), waits
until ``--collected`` exists (canary-setup creates it after copying the results out; bounded by
``--collect-timeout``), then asks the sidecar to quit (``POST /quitquitquit`` on the pilot-agent port) and exits
with the command's exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from splitproof.setup.errors import WaitTimeoutError
from splitproof.setup.proc import spawn, wait_until

QUIT_URL = "http://127.0.0.1:15020/quitquitquit"


def write_status(path: Path, exit_code: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"exit_code": exit_code}) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def quit_sidecar(url: str, timeout: float = 3.0) -> bool:
    """Ask the sidecar to exit; False (and no error) when there is none."""
    request = urllib.request.Request(url, data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout):  # noqa: S310 -- fixed loopback URL
            return True
    except (urllib.error.URLError, OSError):
        return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m splitproof.setup.cluster.podrun", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--status", type=Path, required=True, help="where to write {\"exit_code\": N}")
    parser.add_argument("--collected", type=Path, default=None, help="wait for this file before exiting")
    parser.add_argument("--collect-timeout", type=float, default=900.0, help="seconds to wait for --collected")
    parser.add_argument("--quit-url", default=QUIT_URL, help="sidecar quit endpoint (default: %(default)s)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (use -- COMMAND ...)")
    try:
        code = spawn(command, inherit_output=True, new_session=False).wait()
    except OSError as exc:
        print(f"podrun: cannot run {command[0]}: {exc}", file=sys.stderr)
        code = 127
    write_status(args.status, code)
    if args.collected is not None:
        try:
            wait_until(args.collected.exists, timeout=args.collect_timeout, what="the results to be collected",
                       interval=0.5)
        except WaitTimeoutError as exc:
            print(f"podrun: {exc}; exiting anyway", file=sys.stderr)
    quit_sidecar(args.quit_url)
    return code


if __name__ == "__main__":
    sys.exit(main())
