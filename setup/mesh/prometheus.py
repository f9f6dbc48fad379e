"""The local mesh's telemetry children: the exporter (setup.mesh.exporter, a thread) and, with ``--prometheus``, a
REAL Prometheus (Debian's ``prometheus`` package) supervised like the other children.

Prometheus scrapes every 1 s (https://prometheus.io/docs/prometheus/latest/configuration/configuration/):
job ``istio-mesh`` is the exporter's ``/metrics`` (Istio's standard metrics), job ``envoy-stats`` is Envoy's native
``/stats/prometheus``. The Envoy target comes from a ``file_sd_configs`` file rewritten when Envoy restarts on
another admin port (Prometheus watches the file). Its TSDB lives in ``<state dir>/prometheus``; it listens on
127.0.0.1 only; a crash restarts it on the same port with backoff.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import urllib.request
from pathlib import Path

from splitproof.setup.errors import MissingBinaryError, SetupError, WaitTimeoutError
from splitproof.setup.mesh.exporter import Exporter, Instances
from splitproof.setup.mesh.inbound import Telemetry
from splitproof.setup.mesh.state import MeshState
from splitproof.setup.net import LOOPBACK, free_port
from splitproof.setup.privatefs import private_dir, write_private
from splitproof.setup.proc import Backoff, Child, ProcRef, log_tail, spawn, stop, wait_until

PROMETHEUS_ENV = "SPLITPROOF_PROMETHEUS"
SCRAPE_INTERVAL = "1s"
READY_TIMEOUT = 60.0


def find_prometheus(explicit: str | None = None) -> str:
    """The Prometheus binary: ``explicit``, $SPLITPROOF_PROMETHEUS, ``prometheus`` on PATH, /usr/bin/prometheus."""
    chosen = explicit or os.environ.get(PROMETHEUS_ENV)
    if chosen:
        if Path(chosen).is_file() and os.access(chosen, os.X_OK):
            return chosen
        raise MissingBinaryError(f"prometheus binary not found or not executable: {chosen}")
    for candidate in (shutil.which("prometheus"), "/usr/bin/prometheus"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise MissingBinaryError("prometheus not found: install Debian's prometheus package (`make prometheus` as root, "
                             f"or apt-get install prometheus) or set {PROMETHEUS_ENV}")


def config_yaml(exporter: str, envoy_targets: Path) -> str:
    """prometheus.yml: the exporter and Envoy's own stats, every second (JSON is YAML)."""
    doc = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL,
                   "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            {"job_name": "istio-mesh", "metrics_path": "/metrics",
             "static_configs": [{"targets": [exporter], "labels": {"namespace": "online-boutique"}}]},
            {"job_name": "envoy-stats", "metrics_path": "/stats/prometheus",
             "file_sd_configs": [{"files": [str(envoy_targets)], "refresh_interval": "5s"}]},
        ],
    }
    return json.dumps(doc, indent=1) + "\n"


def prometheus_argv(binary: str, config: Path, data: Path, port: int) -> list[str]:
    return [binary, f"--config.file={config}", f"--storage.tsdb.path={data}",
            f"--web.listen-address={LOOPBACK}:{port}", "--log.level=warn", "--storage.tsdb.retention.time=2d",
            "--web.enable-lifecycle"]


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/-/ready", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def scraped_after(url: str, t: float, timeout: float = 30.0, jobs: tuple[str, ...] = ("istio-mesh",)) -> float:
    """The time of the newest scrape of ``jobs`` once each was scraped after ``t`` (a window edge with every request
    up to ``t`` in the samples at or before it). WaitTimeoutError after ``timeout``."""
    import urllib.parse

    query = urllib.parse.urlencode({"query": f'up{{job=~"{"|".join(jobs)}"}}[1m]'})

    def latest() -> float | None:
        try:
            with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=5) as resp:  # noqa: S310 -- loopback
                result = json.load(resp)["data"]["result"]
        except (OSError, ValueError, KeyError):
            return None
        newest = {r["metric"].get("job"): max(float(v[0]) for v in r["values"]) for r in result if r["values"]}
        return max(newest.values()) if len(newest) == len(jobs) and min(newest.values()) > t else None

    return float(wait_until(latest, timeout, f"a Prometheus scrape after {t:.3f}", 0.05, max_interval=0.2))


class MeshTelemetry:
    """The exporter and the optional Prometheus of one mesh (the supervisor starts, ticks and stops it)."""

    def __init__(self, state_dir: Path, telemetry: Telemetry, namespace: str, *, prometheus: bool,
                 binary: str | None = None) -> None:
        self.dir = state_dir / "telemetry"
        self.telemetry = telemetry
        self.namespace = namespace
        self.binary = find_prometheus(binary) if prometheus else None  # exit 5 before anything starts
        self.exporter: Exporter | None = None
        self.child: Child | None = None
        self.ref: ProcRef | None = None
        self.port = 0
        self.restarts = 0
        self.next_start = 0.0
        self.backoff = Backoff()
        self.log = state_dir / "logs" / "prometheus.log"
        self.envoy_targets = self.dir / "envoy-targets.json"
        self.envoy_admin: str | None = None

    @property
    def prometheus_url(self) -> str | None:
        return f"http://{LOOPBACK}:{self.port}" if self.binary and self.port else None

    def fresh_log(self) -> None:
        """A new mesh run starts a new requests log (the previous one kept as ``.prev``) and a new tail position."""
        private_dir(self.dir)
        log = self.telemetry.requests_log
        with contextlib.suppress(FileNotFoundError):
            os.replace(log, log.with_name(log.name + ".prev"))
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "exporter-offset.json").unlink()

    def start_exporter(self) -> str:
        instances = Instances(((n, s, lab) for n, s, lab in self.telemetry.instances), self.namespace)
        self.exporter = Exporter(self.telemetry.requests_log, instances).start()
        return self.exporter.url

    def set_envoy_admin(self, admin_url: str | None) -> None:
        """Point Prometheus' envoy-stats job at the (new) admin address."""
        if not admin_url or admin_url == self.envoy_admin:
            return
        self.envoy_admin = admin_url
        target = admin_url.split("://", 1)[-1]
        write_private(self.envoy_targets, json.dumps([{"targets": [target], "labels": {"job": "envoy-stats"}}]))

    def start_prometheus(self) -> ProcRef | None:
        if self.binary is None or self.exporter is None:
            return None
        private_dir(self.dir)
        private_dir(self.log.parent)
        if not self.envoy_targets.exists():
            write_private(self.envoy_targets, "[]")
        config = self.dir / "prometheus.yml"
        write_private(config, config_yaml(self.exporter.url.split("://", 1)[1], self.envoy_targets))
        data = self.dir.parent / "prometheus"
        private_dir(data)
        for _attempt in range(3):
            port = self.port or free_port()
            self.child = spawn(prometheus_argv(self.binary, config, data, port), log=self.log, die_with_parent=True)
            self.ref = ProcRef.of(self.child.pid)
            child, url = self.child, f"http://{LOOPBACK}:{port}"

            def up(child: Child = child, url: str = url) -> bool:
                return child.poll() is not None or ready(url)

            try:
                wait_until(up, READY_TIMEOUT, "Prometheus /-/ready", 0.05, max_interval=0.2)
            except WaitTimeoutError:
                stop(child)
                raise WaitTimeoutError(f"timed out after {READY_TIMEOUT:g}s waiting for Prometheus /-/ready "
                                       f"({log_tail(self.log, 2)})") from None
            if child.poll() is None:
                self.port = port
                return self.ref
            if self.port:  # a restart must keep its port: let the backoff try again
                break
        raise SetupError(f"prometheus exited with code {self.child.returncode}: {log_tail(self.log, 2)}")

    def tick(self) -> ProcRef | None:
        """Restart a crashed Prometheus (same port, backoff); returns the new process, if one was started."""
        if self.binary is None or self.exporter is None:
            return None
        now = time.monotonic()
        if self.child is not None and self.child.poll() is not None:
            self.child = None
            self.restarts += 1
            self.next_start = now + self.backoff.next_delay()
        if self.child is None and now >= self.next_start:
            try:
                return self.start_prometheus()
            except SetupError:
                self.next_start = time.monotonic() + self.backoff.next_delay()
        return None

    def record(self, state: MeshState, exporter_url: str | None, prometheus: ProcRef | None, logs: Path) -> None:
        """Record the exporter and a (re)started Prometheus in ``state`` (for `local status` and `down`)."""
        t = state.telemetry
        t.exporter_url = exporter_url or t.exporter_url
        t.access_logs = str(logs)
        t.prometheus_url = self.prometheus_url
        t.prometheus_restarts = self.restarts
        if prometheus is not None:
            t.prometheus = prometheus
            state.remember(prometheus)

    def children(self) -> list[Child]:
        return [self.child] if self.child is not None else []

    def stop(self) -> None:
        if self.child is not None:
            stop(self.child)
            self.child = None
        if self.exporter is not None:
            self.exporter.stop()
            self.exporter = None
