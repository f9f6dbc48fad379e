"""A real Prometheus for the telemetry tests: started on 127.0.0.1 with a temp data dir, scraping a test exposition
server every 1 s; ``promtool tsdb create-blocks-from openmetrics`` backfills exact, known series before it starts.

Every process dies with the test process (setup.proc.spawn's die_with_parent) and is stopped by the fixture's
finalizer; readiness is polled, never slept for.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from helpers import free_port

from splitproof.setup import proc

PROMETHEUS = os.environ.get("SPLITPROOF_PROMETHEUS") or shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = os.environ.get("SPLITPROOF_PROMTOOL") or shutil.which("promtool") or "/usr/bin/promtool"


def missing_prometheus() -> str | None:
    """Why the real-Prometheus tests cannot run here (None: they can)."""
    for path in (PROMETHEUS, PROMTOOL):
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            return f"{path} not installed (Debian package prometheus; `make prometheus` installs it as root)"
    return None


def spawn(argv: list[str], log: Path) -> proc.Child:
    """Start ``argv`` in its own session, dying with this process even if it is SIGKILLed (setup.proc)."""
    return proc.spawn(argv, log=log, die_with_parent=True)


def stop(child: proc.Child, timeout: float = 10.0) -> None:
    proc.stop(child, timeout)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """setup.proc.wait_until: the predicate's first true value; WaitTimeoutError naming ``what``."""
    return proc.wait_until(predicate, timeout, what, max_interval=0.2)


# ------------------------------------------------------------------------------------ the test's own target


class Exposition:
    """A scrape target whose counter values the test sets: ``/metrics`` in the text format 0.0.4."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.lock = threading.Lock()
        self.scrapes = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 -- http.server's name
                body = outer.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                with outer.lock:
                    outer.scrapes += 1

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def set(self, name: str, labels: dict[str, str], value: float) -> None:
        with self.lock:
            self.values[(name, tuple(sorted(labels.items())))] = value

    def add(self, name: str, labels: dict[str, str], n: float) -> float:
        key = (name, tuple(sorted(labels.items())))
        with self.lock:
            self.values[key] = self.values.get(key, 0) + n
            return self.values[key]

    def render(self) -> str:
        with self.lock:
            items = sorted(self.values.items())
        lines, typed = [], set()
        for (name, labels), value in items:
            if name not in typed:
                lines.append(f"# TYPE {name} counter")
                typed.add(name)
            inner = ",".join(f'{k}="{v}"' for k, v in labels)
            lines.append(f"{name}{{{inner}}} {value:g}")
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ----------------------------------------------------------------------------------------------- Prometheus


class Prometheus:
    """A running Prometheus; ``url`` is its base URL."""

    def __init__(self, root: Path, scrape_target: str | list[str] | None, openmetrics: str | None = None,
                 metrics_path: str = "/metrics") -> None:
        self.root = root
        self.data = root / "data"
        self.data.mkdir(parents=True)
        if openmetrics is not None:
            src = root / "backfill.om"
            src.write_text(openmetrics)
            out = subprocess.run([PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(src),
                                  str(self.data)], capture_output=True, text=True, timeout=120)
            if out.returncode != 0:
                raise AssertionError(f"promtool backfill failed: {out.stderr.strip() or out.stdout.strip()}")
        targets = [scrape_target] if isinstance(scrape_target, str) else list(scrape_target or [])
        jobs = ""
        if targets:
            listed = ", ".join(f"'{t}'" for t in targets)
            jobs = (f"  - job_name: splitproof-test\n    scrape_interval: 1s\n    scrape_timeout: 1s\n"
                    f"    metrics_path: {metrics_path}\n    static_configs:\n      - targets: [{listed}]\n")
        config = root / "prometheus.yml"
        config.write_text(f"global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{jobs}"
                          if jobs else "global:\n  scrape_interval: 1s\nscrape_configs: []\n")
        self.proc: subprocess.Popen[bytes] | None = None
        for _attempt in range(3):  # a port taken between free_port() and the bind: try another
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            self.proc = spawn([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={self.data}",
                               f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn",
                               "--storage.tsdb.retention.time=30d"], root / "prometheus.log")
            try:
                wait_until(lambda: self.proc.poll() is not None or self._ready(), 30, "Prometheus /-/ready")
            except AssertionError:
                self.stop()
                raise
            if self.proc.poll() is None:
                return
        raise AssertionError(f"Prometheus did not start: {(root / 'prometheus.log').read_text()[-2000:]}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            doc = json.load(resp)
        assert doc["status"] == "success", doc
        return list(doc["data"]["result"])

    def latest_sample(self, selector: str) -> tuple[float, float] | None:
        """(timestamp, value) of the newest raw sample of the one series ``selector`` names, or None."""
        result = self.query(f"{selector}[1m]")
        if not result:
            return None
        assert len(result) == 1, result
        t, v = result[0]["values"][-1]
        return float(t), float(v)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

