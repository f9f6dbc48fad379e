"""File-based xDS: the local mesh's Envoy configuration as files, changed by renaming new files into place.

The bootstrap points LDS and CDS at ``lds.json`` / ``cds.json`` and every listener's RDS at its own
``rds-<route>.json``. Envoy applies a file only when a new file is *moved into place* (an in-place rewrite is
ignored), so every write is temp file + ``os.rename`` in the same directory. A weight change rewrites one route
file; listeners and connections are untouched, so in-flight and concurrent requests keep flowing. Each file's
``version_info`` is a hash of its content: the same content is the same version, and setup.mesh.admin compares
these versions with what Envoy's ``config_dump`` serves.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splitproof.setup.errors import SetupError
from splitproof.setup.mesh.envoy_build import EnvoyConfig
from splitproof.setup.privatefs import private_dir, write_private


def version_of(payload: Any) -> str:
    """A short content hash used as xDS version_info (same content -> same version -> Envoy skips it)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _discovery_response(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"version_info": version_of(resources), "resources": resources}


@dataclass(frozen=True)
class Written:
    """The versions in the xDS files after a write."""

    lds: str
    cds: str
    routes: Mapping[str, str]


class ConfigFiles:
    """The xDS files of one mesh, in ``directory`` (owner-only, like everything in the state directory)."""

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
        write_private(path, text)  # a temp file renamed into place: what Envoy's file watch needs
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

    def write_all(self, cfg: EnvoyConfig) -> Written:
        """Listeners, clusters, routes -- for an Envoy that is not running yet."""
        return Written(self.write_listeners(cfg), self.write_clusters(cfg), self.write_routes(cfg))

    def current_lds_version(self) -> str:
        return self._current_version(self.lds)

    def current_cds_version(self) -> str:
        return self._current_version(self.cds)

    def route_versions(self) -> dict[str, str]:
        """{route configuration name: version} of every route file written."""
        out: dict[str, str] = {}
        for path in sorted(self.dir.glob("rds-*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                out[str(data["resources"][0]["name"])] = str(data["version_info"])
            except (OSError, ValueError, KeyError, IndexError, TypeError):
                continue
        return out

    @staticmethod
    def _current_version(path: Path) -> str:
        try:
            return str(json.loads(path.read_text(encoding="utf-8"))["version_info"])
        except (OSError, ValueError, KeyError):
            return ""
