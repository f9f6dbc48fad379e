"""Istio's standard metrics for the local mesh, the way Istio's stats filter would record them, from Envoy's own
per-request data: the JSON access-log lines every hop writes (setup.mesh.inbound), tailed by a thread of the
supervisor and served in the Prometheus text format on 127.0.0.1.

* ``istio_requests_total`` (counter) and ``istio_request_duration_milliseconds`` (histogram, Envoy's default
  buckets -- the ones Istio uses without a ``sidecar.istio.io/statsHistogramBuckets`` annotation), with Istio's
  label set (https://istio.io/latest/docs/reference/config/metrics/): ``reporter="source"`` for a line of an
  outbound or ingress listener (the client's sidecar), ``"destination"`` for an instance's inbound listener.
* ``destination_version`` is the ``version`` label of the instance the request reached (read from the upstream host,
  ``envoy://inbound.<instance>/``); ``unknown`` when there is no upstream host (``UH``, ``NR``) or the instance
  has no such label -- as Istio says ``unknown`` when no peer metadata was exchanged.
* Exactness: every line is counted once. The tail keeps its (inode, offset) in ``telemetry/exporter-offset.json``
  and follows a rotation (a renamed file is read to its end before the new one); an Envoy restart appends to the
  same file. The counters belong to the exporter, so they reset only when the exporter (the mesh) restarts --
  Prometheus sees a counter reset, which verify-split's Prometheus source counts from 0.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from splitproof.setup.net import LOOPBACK
from splitproof.setup.privatefs import write_private
from splitproof.verifier.istio import parse_cluster
from splitproof.verifier.telemetry.latency import ISTIO_DURATION_BUCKETS_MS

REQUESTS = "istio_requests_total"
DURATION = "istio_request_duration_milliseconds"
POLL = 0.05
MAX_LINE = 64 * 1024
LABELS = ("reporter", "source_workload", "source_workload_namespace", "source_principal", "source_app",
          "source_version", "source_canonical_service", "source_canonical_revision", "source_cluster",
          "destination_workload", "destination_workload_namespace", "destination_principal", "destination_app",
          "destination_version", "destination_service", "destination_service_name",
          "destination_service_namespace", "destination_canonical_service", "destination_canonical_revision",
          "destination_cluster", "request_protocol", "response_code", "grpc_response_status", "response_flags",
          "connection_security_policy")
UNKNOWN = "unknown"
_UPSTREAM_INSTANCE = re.compile(r"envoy://inbound\.([^/]+)/?")
_INDEX = re.compile(r"-\d+$")

Key = tuple[str, ...]


class Instances:
    """The mesh's planned instances: name -> (service, labels), and the namespace of their services."""

    def __init__(self, instances: Iterable[tuple[str, str, Iterable[tuple[str, str]]]], namespace: str) -> None:
        self.by_name = {name: (service, dict(labels)) for name, service, labels in instances}
        self.namespace = namespace

    def workload(self, name: str) -> dict[str, str]:
        """The destination_* labels of ``name`` (all ``unknown`` for an instance the mesh does not have)."""
        service, labels = self.by_name.get(name, (None, {}))
        if service is None:
            return {k: UNKNOWN for k in ("destination_workload", "destination_workload_namespace",
                                         "destination_app", "destination_version", "destination_canonical_service",
                                         "destination_canonical_revision")}
        app, version = labels.get("app", UNKNOWN), labels.get("version", UNKNOWN)
        return {"destination_workload": _INDEX.sub("", name), "destination_workload_namespace": self.namespace,
                "destination_app": app, "destination_version": version, "destination_canonical_service": app,
                "destination_canonical_revision": labels.get("version", "latest")}

    def service_fqdn(self, name: str) -> str | None:
        service = self.by_name.get(name, (None, {}))[0]
        return f"{service}.{self.namespace}.svc.cluster.local" if service else None


def labels_of(entry: Mapping[str, Any], instances: Instances) -> tuple[Key, float] | None:
    """Istio's label values (in LABELS order) and the duration (ms) of one JSON access-log line; None when the line
    is not one of ours."""
    direction = entry.get("direction")
    if direction not in ("outbound", "inbound"):
        return None
    code = str(entry.get("response_code") if entry.get("response_code") not in (None, "") else 0)
    grpc = entry.get("grpc_status")
    is_grpc = str(entry.get("content_type") or "").startswith("application/grpc")
    if direction == "inbound":
        instance = str(entry.get("instance") or "")
        fqdn = instances.service_fqdn(instance) or UNKNOWN
    else:
        m = _UPSTREAM_INSTANCE.fullmatch(str(entry.get("upstream_host") or ""))
        instance = m.group(1) if m else ""
        cluster = parse_cluster(str(entry.get("upstream_cluster") or ""))
        fqdn = cluster.host if cluster is not None else UNKNOWN
    dest = instances.workload(instance)
    name, _, rest = fqdn.partition(".")
    ns = rest.partition(".")[0] if rest else UNKNOWN
    source = str(entry.get("source") or UNKNOWN)
    values = {
        "reporter": "destination" if direction == "inbound" else "source",
        "source_workload": source, "source_workload_namespace": "istio-system" if source != UNKNOWN else UNKNOWN,
        "source_principal": UNKNOWN, "source_app": source, "source_version": UNKNOWN,
        "source_canonical_service": source, "source_canonical_revision": "latest" if source != UNKNOWN else UNKNOWN,
        "source_cluster": "Kubernetes" if source != UNKNOWN else UNKNOWN,
        **dest, "destination_principal": UNKNOWN, "destination_service": fqdn,
        "destination_service_name": name if fqdn != UNKNOWN else UNKNOWN,
        "destination_service_namespace": ns if fqdn != UNKNOWN else UNKNOWN,
        "destination_cluster": "Kubernetes" if instance in instances.by_name else UNKNOWN,
        "request_protocol": "grpc" if is_grpc else "http", "response_code": code,
        "grpc_response_status": str(grpc) if is_grpc and grpc not in (None, "", "-") else "",
        "response_flags": str(entry.get("response_flags") or "-"),
        "connection_security_policy": "none" if direction == "inbound" else UNKNOWN,
    }
    try:
        duration = float(entry.get("duration") or 0)
    except (TypeError, ValueError):
        duration = 0.0
    return tuple(values[k] for k in LABELS), duration


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt_le(bound: float) -> str:
    return f"{bound:g}" if bound != int(bound) or bound < 1e6 else str(int(bound))


class IstioMetrics:
    """The counters and histograms, keyed by Istio's label values; thread-safe."""

    def __init__(self, bounds: tuple[float, ...] = ISTIO_DURATION_BUCKETS_MS) -> None:
        self.bounds = bounds
        self.lock = threading.Lock()
        self.requests: dict[Key, int] = {}
        self.buckets: dict[Key, list[int]] = {}
        self.sums: dict[Key, float] = {}
        self.lines = 0
        self.ignored = 0

    def observe(self, key: Key, duration_ms: float) -> None:
        with self.lock:
            self.lines += 1
            self.requests[key] = self.requests.get(key, 0) + 1
            bins = self.buckets.setdefault(key, [0] * len(self.bounds))
            for i, bound in enumerate(self.bounds):
                if duration_ms <= bound:
                    bins[i] += 1
            self.sums[key] = self.sums.get(key, 0.0) + duration_ms

    def render(self) -> str:
        """The Prometheus text exposition format 0.0.4 (``promtool check metrics`` clean)."""
        with self.lock:
            requests = sorted(self.requests.items())
            buckets = {k: list(v) for k, v in self.buckets.items()}
            sums = dict(self.sums)
        out = [f"# HELP {REQUESTS} Requests, as Istio's stats filter counts them (local mesh).",
               f"# TYPE {REQUESTS} counter"]
        for key, n in requests:
            out.append(f"{REQUESTS}{{{_labels(key)}}} {n}")
        out += [f"# HELP {DURATION} Request durations, as Istio's stats filter records them (local mesh).",
                f"# TYPE {DURATION} histogram"]
        for key, n in requests:
            inner = _labels(key)
            for bound, c in zip(self.bounds, buckets[key], strict=True):
                out.append(f'{DURATION}_bucket{{{inner},le="{_fmt_le(bound)}"}} {c}')
            out.append(f'{DURATION}_bucket{{{inner},le="+Inf"}} {n}')
            out.append(f"{DURATION}_sum{{{inner}}} {sums[key]:g}")
            out.append(f"{DURATION}_count{{{inner}}} {n}")
        return "\n".join(out) + "\n"


def _labels(key: Key) -> str:
    return ",".join(f'{name}="{_escape(value)}"' for name, value in zip(LABELS, key, strict=True))


class LogTail:
    """Complete new lines of a growing file, once each, across rotation (rename + new file) and restarts of the
    reader (its position persisted in ``offset_file``)."""

    def __init__(self, path: Path, offset_file: Path) -> None:
        self.path = path
        self.offset_file = offset_file
        self.file: Any = None
        self.inode: int | None = None
        self.offset = 0
        self.partial = b""
        saved = self._saved()
        if saved is not None:
            self.inode, self.offset = saved

    def _saved(self) -> tuple[int, int] | None:
        try:
            data = json.loads(self.offset_file.read_text(encoding="utf-8"))
            return int(data["inode"]), int(data["offset"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _open(self) -> bool:
        try:
            f = open(self.path, "rb")  # noqa: SIM115 -- kept open across polls
        except FileNotFoundError:
            return False
        st = os.fstat(f.fileno())
        if st.st_ino != self.inode or st.st_size < self.offset:  # another file (rotated, or a new mesh run)
            self.inode, self.offset, self.partial = st.st_ino, 0, b""
        f.seek(self.offset)
        self.file = f
        return True

    def _drain(self) -> list[bytes]:
        assert self.file is not None
        lines: list[bytes] = []
        while True:
            chunk = self.file.read(1 << 20)
            if not chunk:
                break
            self.offset += len(chunk)
            data = self.partial + chunk
            *complete, self.partial = data.split(b"\n")
            if len(self.partial) > MAX_LINE:
                self.partial = b""
            lines.extend(complete)
        return lines

    def read(self) -> list[bytes]:
        """Every complete line written since the last call."""
        if self.file is None and not self._open():
            return []
        lines = self._drain()
        try:
            rotated = os.stat(self.path).st_ino != self.inode
        except FileNotFoundError:
            rotated = False  # renamed away, the new one not created yet: keep reading the old one
        if rotated:
            lines += self._drain()  # what was written to the old file before the rename
            self.file.close()
            self.file = None
            self.inode, self.offset, self.partial = None, 0, b""
            if self._open():
                lines += self._drain()
        if lines:
            self.save()
        return lines

    def save(self) -> None:
        if self.inode is not None:
            write_private(self.offset_file, json.dumps({"inode": self.inode,
                                                        "offset": self.offset - len(self.partial)}))

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


class Exporter:
    """Tails ``requests_log`` into IstioMetrics and serves them at ``url`` + ``/metrics`` (127.0.0.1)."""

    def __init__(self, requests_log: Path, instances: Instances, port: int = 0) -> None:
        self.metrics = IstioMetrics()
        self.instances = instances
        self.tail = LogTail(requests_log, requests_log.parent / "exporter-offset.json")
        self.stop_event = threading.Event()
        self.errors = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 -- http.server's name
                if self.path.split("?")[0] not in ("/metrics", "/stats/prometheus"):
                    self.send_error(404)
                    return
                outer.poll()  # a scrape sees every line flushed before it
                body = outer.metrics.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, port), Handler)
        self.server.daemon_threads = True
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                         name="exporter-http", daemon=True),
                        threading.Thread(target=self._loop, name="exporter-tail", daemon=True)]

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.server.server_address[1]}"

    def start(self) -> Exporter:
        for t in self.threads:
            t.start()
        return self

    def poll(self) -> int:
        """Count the lines written since the last poll; returns how many."""
        with self.lock:
            lines = self.tail.read()
            for raw in lines:
                try:
                    entry = json.loads(raw)
                    found = labels_of(entry, self.instances) if isinstance(entry, dict) else None
                except ValueError:
                    found = None
                if found is None:
                    with self.metrics.lock:
                        self.metrics.ignored += 1
                    continue
                self.metrics.observe(*found)
            return len(lines)

    def _loop(self) -> None:
        while not self.stop_event.wait(POLL):
            try:
                self.poll()
            except Exception:  # a transient read error must not end the exporter; the next poll retries
                self.errors += 1

    def stop(self) -> None:
        self.stop_event.set()
        self.server.shutdown()
        self.server.server_close()
        for t in self.threads:
            t.join(timeout=5)
        with contextlib.suppress(Exception):
            self.poll()
        self.tail.close()
