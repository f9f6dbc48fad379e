"""Envoy's admin API on 127.0.0.1: readiness, bound listener ports, and ``config_dump`` -- what Envoy serves.

Everything the local mesh reports as served (weights, subsets, warnings) is read back from here, never from our own
memory; ``wait_applied`` returns once ``config_dump`` shows exactly what was written to the xDS files.
Reference: https://www.envoyproxy.io/docs/envoy/latest/operations/admin (``/ready``, ``/listeners``,
``/config_dump?resource=``).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splitproof.setup.envoyroutes import subset_weights
from splitproof.setup.errors import WaitTimeoutError
from splitproof.setup.mesh.envoy_build import EnvoyConfig
from splitproof.setup.mesh.xds import Written
from splitproof.setup.proc import log_tail, wait_until

T_CLUSTERS_DUMP = "type.googleapis.com/envoy.admin.v3.ClustersConfigDump"
T_LISTENERS_DUMP = "type.googleapis.com/envoy.admin.v3.ListenersConfigDump"
T_ROUTES_DUMP = "type.googleapis.com/envoy.admin.v3.RoutesConfigDump"
ADMIN_ERRORS = (urllib.error.URLError, OSError, ValueError)

ServedRoutes = Mapping[str, tuple[str, dict[str, Any]]]  # name -> (version, RouteConfiguration)


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
        except ADMIN_ERRORS:
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

    def served_routes(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """Only the route section of config_dump (cheaper than the whole dump): name -> (version, config)."""
        data = self.get_json("/config_dump?resource=dynamic_route_configs")
        out: dict[str, tuple[str, dict[str, Any]]] = {}
        for item in data.get("configs") or []:
            rc = item.get("route_config") or {}
            out[rc.get("name", "")] = (str(item.get("version_info", "")), rc)
        return out


@dataclass(frozen=True)
class Served:
    """What Envoy is serving, from its config_dump."""

    lds_version: str
    cds_version: str
    routes: ServedRoutes
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


def routes_applied(served: ServedRoutes, cfg: EnvoyConfig, written: Mapping[str, str]) -> bool:
    """True when every written route configuration is served at its version with the same weights."""
    for name, version in written.items():
        got = served.get(name)
        if got is None or got[0] != version or subset_weights(got[1]) != subset_weights(cfg.routes[name]):
            return False
    return True


def applied(served: Served, cfg: EnvoyConfig, written: Written) -> bool:
    """True when Envoy serves exactly what was written: versions match and route weights read back equal."""
    if served.cds_version != written.cds or served.lds_version != written.lds:
        return False
    return routes_applied(served.routes, cfg, written.routes)


def wait_applied(admin: Admin, cfg: EnvoyConfig, written: Written, timeout: float = 10.0,
                 log: Path | None = None, *, clusters: bool = True) -> float:
    """Poll config_dump until Envoy serves ``written`` (listeners and clusters too when ``clusters``, else only the
    routes); return the seconds it took. WaitTimeoutError otherwise (an update Envoy rejected never shows up)."""
    def serving() -> bool:
        try:
            if clusters:
                return applied(parse_config_dump(admin.config_dump()), cfg, written)
            return routes_applied(admin.served_routes(), cfg, written.routes)
        except ADMIN_ERRORS:
            return False

    start = time.monotonic()
    try:
        wait_until(serving, timeout, "Envoy to apply the configuration", 0.002, max_interval=0.02)
    except WaitTimeoutError:
        hint = f" (envoy log: {log_tail(log)})" if log else ""
        raise WaitTimeoutError(f"Envoy did not apply the new configuration within {timeout:g}s{hint}") from None
    return time.monotonic() - start
