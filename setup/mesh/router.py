"""The local mesh's Router (setup.router): weights go into the state directory and the xDS files; what is served is
read back from Envoy's admin ``config_dump`` -- the route configuration of the canaried service's outbound
("sidecar") listener, the one every split request passes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from splitproof.setup.envoyroutes import served_split
from splitproof.setup.errors import NotRunningError
from splitproof.setup.mesh.admin import ADMIN_ERRORS, Admin
from splitproof.setup.mesh.edit import versions_of
from splitproof.setup.mesh.envoy_build import mesh_route_name
from splitproof.setup.mesh.reconfigure import APPLY_TIMEOUT, change, desired_documents, envoy_log, xds_files
from splitproof.setup.mesh.state import MeshState
from splitproof.setup.mesh.statedir import read_state
from splitproof.setup.mesh.topology import services
from splitproof.setup.proc import log_tail
from splitproof.setup.router import (
    HTTP_ROUTE,
    VIRTUAL_SERVICE,
    ProxyWeights,
    Routing,
    ServedWeights,
    Weights,
    wait_served,
)


class LocalRouter:
    """Router over the local mesh in ``state_dir`` (any process: the mesh's own, or ``canary-setup local``)."""

    def __init__(self, state_dir: Path | str) -> None:
        self.state_dir = Path(state_dir)

    def _state(self) -> MeshState:
        state = read_state(self.state_dir)
        if state is None:
            raise NotRunningError(f"no local mesh is running in {self.state_dir}")
        return state

    @property
    def routing(self) -> Routing:
        return routing_of(self._state())

    def set_weights(self, weights: Mapping[str, int]) -> None:
        """New weights into the state and the route file (clusters stay: they do not depend on weights)."""
        change(self.state_dir, weights=weights, wait_routes=False)

    def served_weights(self) -> ServedWeights:
        state = self._state()
        return ServedWeights(dict(state.params.weights), (self._read(state),))

    def wait_served(self, weights: Mapping[str, int] | None = None,
                    timeout: float | None = None) -> ServedWeights:
        state = self._state()
        want = dict(state.params.weights if weights is None else weights)
        log = envoy_log(self.state_dir)
        written = xds_files(self.state_dir).route_versions()  # what Envoy must have taken: read once
        versions = routing_of(state).version_of               # and the version Services' names: once too
        return wait_served(lambda: ServedWeights(want, (self._read(state, written, versions),)), want,
                           APPLY_TIMEOUT if timeout is None else timeout, interval=0.002, max_interval=0.02,
                           hint=f" (envoy log: {log_tail(log)})" if log.exists() else "")

    def _read(self, state: MeshState, written: Mapping[str, str] | None = None,
              versions: Mapping[str, str] | None = None) -> ProxyWeights:
        """What Envoy serves on the canaried service's outbound route; ``synced`` when every route file written is
        served at its version (nothing written is still pending)."""
        svc = next(s for s in services(state.params) if s.name == state.params.service)
        name = mesh_route_name(svc)
        proxy = f"envoy route {name}"
        if state.envoy.ref is None or not state.envoy.ref.alive() or not state.envoy.admin_url:
            return ProxyWeights(proxy, None, error="Envoy is not running")
        try:
            served = Admin(state.envoy.admin_url).served_routes()
        except ADMIN_ERRORS as exc:
            return ProxyWeights(proxy, None, error=f"Envoy admin {state.envoy.admin_url} unreachable: {exc}")
        if written is None:
            written = xds_files(self.state_dir).route_versions()
        synced = all(served.get(n, ("",))[0] == version for n, version in written.items())
        if versions is None:
            versions = routing_of(state).version_of
        weights: Weights | None = served_split(served[name][1], versions=versions) if name in served else None
        return ProxyWeights(proxy, weights, synced=synced)


def routing_of(state: MeshState) -> Routing:
    """The mesh's Routing: an HTTPRoute when the documents hold per-version Services, else a VirtualService."""
    params = state.params
    versions = versions_of(desired_documents(state), params.namespace)
    return Routing(params.service, params.namespace, HTTP_ROUTE if versions else VIRTUAL_SERVICE,
                   versions=tuple(sorted(versions.items())))


def shown_weights(served: ServedWeights) -> Weights:
    """The served split as ``local status`` shows it: every desired subset listed, 0 for one Envoy routes nothing
    to (Envoy drops zero weights; a lone destination is a plain cluster)."""
    weights = dict(served.weights or {})
    for name in served.desired:
        weights.setdefault(name, 0)
    return weights
