"""The detached supervisor of ``canary-setup local up --detach``: ``python -m splitproof.setup.mesh.daemon``.

It starts the mesh (setup.mesh.local.LocalMesh, in this process), prints ``READY local mesh <grpc entry>``, then
waits for SIGTERM/SIGINT/SIGHUP and stops everything. Its children die with it even when it is SIGKILLed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from splitproof.setup.mesh.faults import faults_from_json
from splitproof.setup.mesh.local import LocalMesh
from splitproof.setup.mesh.state import params_from_json
from splitproof.setup.stopsignals import StopSignals
from splitproof.verifier.errors import SplitproofError

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m splitproof.setup.mesh.daemon")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--launch", required=True, help="JSON file with the LocalMesh arguments")
    args = parser.parse_args(argv)
    os.umask(0o077)  # this process only runs the mesh: everything it creates in the state dir is owner-only
    with StopSignals(*STOP_SIGNALS) as stop:  # held until the mesh is down: the rest of a burst waits
        try:
            spec = json.loads(Path(args.launch).read_text(encoding="utf-8"))
            params = params_from_json(spec.pop("params"))
            faults = faults_from_json(spec.pop("faults", None))
            mesh = LocalMesh(params, state_dir=args.state_dir, faults=faults, **spec)
            mesh.start()
        except SplitproofError as exc:
            print(f"canary-setup: error: {exc}", file=sys.stderr, flush=True)
            return exc.exit_code
        print(f"READY local mesh {mesh.grpc_entry}", flush=True)
        try:
            stop.wait()
        finally:
            mesh.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
