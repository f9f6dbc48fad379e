"""State -> Envoy: what the mesh enforces (rendered from its state), written to the xDS files, waited for.

``render`` turns a MeshState into Envoy configuration (setup.mesh.translate on the desired Istio documents and the
ready instances); ``reconfigure`` writes it -- clusters first, then routes, each served before the next may point
at it; ``change`` is a new desired state (params, documents or weights) applied to a running mesh, under the lock.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from splitproof.setup.errors import NotRunningError
from splitproof.setup.manifests import CanaryParams, mesh_documents
from splitproof.setup.mesh.admin import Admin, wait_applied
from splitproof.setup.mesh.edit import reweight
from splitproof.setup.mesh.envoy_build import EnvoyConfig
from splitproof.setup.mesh.inbound import Telemetry
from splitproof.setup.mesh.state import (
    MESH_READY,
    MESH_STARTING,
    READY,
    MeshState,
    now,
    params_from_json,
    params_to_json,
)
from splitproof.setup.mesh.statedir import locked, read_state, write_state
from splitproof.setup.mesh.topology import Endpoint, plan_instances, services
from splitproof.setup.mesh.translate import translate
from splitproof.setup.mesh.xds import ConfigFiles, Written
from splitproof.setup.net import LOOPBACK
from splitproof.verifier.istio import validate_weights

APPLY_TIMEOUT = 10.0


def xds_files(state_dir: Path) -> ConfigFiles:
    return ConfigFiles(state_dir / "xds")


def envoy_log(state_dir: Path) -> Path:
    return state_dir / "logs" / "envoy.log"


def desired_documents(state: MeshState) -> list[dict[str, Any]]:
    """The Istio documents the mesh enforces: the user's own, or the templates rendered with the params."""
    if state.documents is not None:
        return list(state.documents)
    return json.loads(_rendered(json.dumps(params_to_json(state.params))))  # key order matters: weights order


@functools.lru_cache(maxsize=32)
def _rendered(params_json: str) -> str:
    """mesh_documents() for these params, as JSON (render + YAML parse cost ~20 ms; weights flip back and forth)."""
    return json.dumps(mesh_documents(params_from_json(json.loads(params_json))))


def ready_endpoints(state: MeshState) -> list[Endpoint]:
    """The instances Envoy may send traffic to: the ready ones (like a pod's endpoint in EDS once it is Ready)."""
    return [Endpoint(i.service, LOOPBACK, i.port, dict(i.labels), i.name)
            for i in state.instances if i.state == READY and i.port]


def mesh_telemetry(state_dir: Path, state: MeshState) -> Telemetry:
    """Where the mesh's access logs go, and its planned instances (each gets an inbound hop; setup.mesh.inbound)."""
    planned = plan_instances(state.params, state.replicas or None)
    return Telemetry(state_dir / "logs", state_dir / "telemetry",
                     tuple((i.name, i.service, tuple(sorted(i.labels.items()))) for i in planned))


def render(state: MeshState, files: ConfigFiles, endpoints: Sequence[Endpoint] | None = None) -> EnvoyConfig:
    """The Envoy configuration of ``state`` (InputError for an unsupported field, before anything is written)."""
    return translate(desired_documents(state), services=services(state.params),
                     endpoints=ready_endpoints(state) if endpoints is None else endpoints,
                     ports=state.ports.listen.for_translation(), route_path=files.route_path,
                     default_namespace=state.params.namespace, telemetry=mesh_telemetry(files.dir.parent, state))


def reconfigure(state_dir: Path, state: MeshState, *, wait: bool = True, wait_routes: bool = True,
                timeout: float = APPLY_TIMEOUT) -> float:
    """Render from ``state`` and write the xDS files -- clusters first, then routes. When ``wait``, new clusters
    must be served before the routes are written (routes may point at them), and with ``wait_routes`` this returns
    once Envoy's config_dump serves the routes too. Listeners are never rewritten while Envoy runs. The caller
    holds the lock. Returns the seconds from the first write until Envoy served what was waited for."""
    files = xds_files(state_dir)
    cfg = render(state, files)  # InputError before anything is written
    lds = files.check_listeners(cfg)
    admin = Admin(state.envoy.admin_url) if wait and state.envoy.admin_url else None
    log = envoy_log(state_dir)
    start = time.monotonic()
    before = files.current_cds_version()
    cds = files.write_clusters(cfg)
    if admin and cds != before:  # new clusters must be served before routes may point at them
        wait_applied(admin, cfg, Written(lds, cds, {}), timeout, log)
    routes = files.write_routes(cfg)
    if admin and wait_routes:
        wait_applied(admin, cfg, Written(lds, cds, routes), timeout, log, clusters=False)
    state.warnings = cfg.warnings
    return time.monotonic() - start


def change(state_dir: Path, params: CanaryParams | None = None, documents: Sequence[Mapping[str, Any]] | None = None,
           weights: Mapping[str, int] | None = None, timeout: float = APPLY_TIMEOUT, *,
           wait_routes: bool = True) -> float:
    """Apply new params, documents or weights to a running mesh; with ``wait_routes``, return once Envoy serves
    them (seconds taken).

    Weights re-render the templates (``CanaryParams.with_weights``) or, for a mesh started from the user's own
    documents, rewrite the weights of the VirtualService routes that split the canaried service.
    """
    with locked(state_dir):
        state = read_state(state_dir)
        if state is None or state.status not in (MESH_READY, MESH_STARTING):
            raise NotRunningError(f"no local mesh is running in {state_dir}")
        if not state.supervisor_alive():
            raise NotRunningError(f"the local mesh supervisor in {state_dir} is not running "
                                  f"(`canary-setup local down` cleans up)")
        if params is not None:
            params.validate()
            state.params = params
            if documents is None:
                state.documents = None  # new params = the templates rendered with them
        if documents is not None:
            state.documents = [dict(d) for d in documents]
        if weights is not None:
            _reweight(state, weights)
        took = reconfigure(state_dir, state, timeout=timeout, wait_routes=wait_routes)
        state.applied_at = now()
        write_state(state_dir, state)
        return took


def _reweight(state: MeshState, weights: Mapping[str, int]) -> None:
    current = state.params
    if state.documents is None:
        updated = current.with_weights(weights)
        updated.validate()
        state.params = updated
        return
    validate_weights(weights)
    svc = next(s for s in services(current) if s.name == current.service)
    state.documents = reweight(state.documents, svc.fqdn, weights, current.namespace)
    state.params = current.with_weights(weights)
