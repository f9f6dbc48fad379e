"""Every exit code README's "Exit codes" table documents for ``canary-setup``, produced by the installed command
for the reason the table gives (the cluster through the recorded fakes on PATH, the local mesh for real)."""

from __future__ import annotations

import json
import re
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fakes.harness import FakeCluster
from helpers import REPO, installed, run_installed

from splitproof.setup import proc
from splitproof.setup.mesh.statedir import rollout_lock
from splitproof.verifier.exitcodes import ExitCode

KIND = ["--provider", "kind"]
NS = "online-boutique"


def documented_codes() -> dict[int, str]:
    """exit code -> what the README table says canary-setup means by it."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Exit codes"):]
    section = section[:section.index("\n## ", 1)]
    out = {}
    for row in re.findall(r"^\| (\d+) \|(.*)\|$", section, re.M):
        cells = [c.strip() for c in row[1].split("|")]
        if cells[-1] not in ("–", "-", ""):
            out[int(row[0])] = cells[-1]
    return out


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, finished_world: dict[str, Any]) -> FakeCluster:
    """The recorded fakes on PATH (inherited by the command), holding what `up` left behind."""
    cluster = FakeCluster(tmp_path / "cluster", monkeypatch)
    cluster.save_world(json.loads(json.dumps(finished_world)))
    return cluster


def setup_command(*args: str, **kwargs: Any) -> tuple[int, str]:
    done = run_installed("canary-setup", *args, **kwargs)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout + done.stderr


def ok(fake: FakeCluster, tmp_path: Path) -> tuple[int, str]:
    return setup_command("status", *KIND)


def step_failed(fake: FakeCluster, tmp_path: Path) -> tuple[int, str]:
    fake.update(lambda w: w["objects"].pop(f"destinationrules|{NS}|recommendationservice"))
    return setup_command("weights", "50", *KIND)


def usage(fake: FakeCluster, tmp_path: Path) -> tuple[int, str]:
    return setup_command("up", *KIND, "--weights", "production=70,canary=20")


def inconclusive(fake: FakeCluster, tmp_path: Path) -> tuple[int, str]:
    records = tmp_path / "recorded.jsonl"
    records.write_text(json.dumps({"v": 1, "t": 1.0, "channel": "grpc", "items": 5, "version": "production",
                                   "status": "ok", "latency_ms": 1.5}) + "\n")
    fake.rule("*exec locust-master-* cat /results/status.json", tool="kubectl", stdout='{"exit_code": 3}\n')
    fake.rule("*exec locust-master-* cat /results/results.jsonl", tool="kubectl", stdout_file=str(records))
    fake.rule("*exec locust-master-* touch /results/collected", tool="kubectl")
    fake.rule("--results * --expected 20", tool="verify-split", rc=3, stdout="INCONCLUSIVE: more samples\n")
    return setup_command("loadtest", *KIND, "--loadtest-image", "registry.example/splitproof:1",
                         "--results", str(tmp_path / "out.jsonl"))


def unreachable(fake: FakeCluster, tmp_path: Path) -> tuple[int, str]:
    fake.update(lambda w: w.update(unreachable=["kind-istio-traffic-lab"]))
    return setup_command("status", *KIND)


def missing_binary(fake: FakeCluster, tmp_path: Path) -> tuple[int, str]:
    return setup_command("local", "up", "--envoy", "/nonexistent/envoy", "--state-dir", str(tmp_path / "mesh"))


def nothing_running(fake: FakeCluster, tmp_path: Path) -> tuple[int, str]:
    return setup_command("local", "status", "--state-dir", str(tmp_path / "mesh"))


def timed_out(fake: FakeCluster, tmp_path: Path) -> tuple[int, str]:
    fake.update(lambda w: w.update(proxy_lag=10**9))
    return setup_command("weights", "50", *KIND, "--proxy-timeout", "1")


def port_in_use(fake: FakeCluster, tmp_path: Path) -> tuple[int, str]:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        return setup_command("local", "up", "--ingress-port", str(busy.getsockname()[1]), "--grpc-port", "0",
                             "--state-dir", str(tmp_path / "mesh"))


def busy(fake: FakeCluster, tmp_path: Path) -> tuple[int, str]:
    """``local weights`` while a rollout holds the mesh's rollout lock (held here as a rollout holds it)."""
    state_dir = tmp_path / "mesh"
    state_dir.mkdir(mode=0o700)
    with rollout_lock(state_dir, "pid 4242, steps 5,20,50,100, since 2026-12-07T23:00:00+0000"):
        return setup_command("local", "weights", "50", "--state-dir", str(state_dir))


def interrupted(fake: FakeCluster, tmp_path: Path) -> tuple[int, str]:
    """Ctrl-C (SIGINT) while ``weights`` waits for proxies that never catch up."""
    fake.update(lambda w: w.update(proxy_lag=10**9))
    log = tmp_path / "weights.log"
    child = proc.spawn([installed("canary-setup"), "weights", "50", *KIND, "--proxy-timeout", "120"], log=log,
                       new_session=False)
    try:
        proc.wait_until(lambda: any(c[1:3] == ["proxy-config", "routes"] for c in fake.commands())
                        or child.poll() is not None, 60, "the proxy poll to begin")
        child.send_signal(signal.SIGINT)
        code = child.wait(timeout=30)
    finally:
        proc.stop(child)
    return code, log.read_text()


CASES: dict[int, tuple[Callable[[FakeCluster, Path], tuple[int, str]], str]] = {
    ExitCode.OK: (ok, "healthy"),
    ExitCode.FAIL: (step_failed, "step 6/9 'weights' failed: DestinationRule recommendationservice not found"),
    ExitCode.USAGE: (usage, "weights must sum to 100"),
    ExitCode.INCONCLUSIVE: (inconclusive, "INCONCLUSIVE"),
    ExitCode.UNREACHABLE: (unreachable, "cannot reach the cluster of kind-istio-traffic-lab"),
    ExitCode.MISSING_BINARY: (missing_binary, "envoy binary not found"),
    ExitCode.NOT_RUNNING: (nothing_running, "no local mesh is running"),
    ExitCode.TIMEOUT: (timed_out, "the proxies did not serve production=50,canary=50 within 1s"),
    ExitCode.PORT_IN_USE: (port_in_use, "is already in use"),
    ExitCode.BUSY: (busy, "a rollout is driving the local mesh in"),
    ExitCode.INTERRUPTED: (interrupted, "canary-setup: interrupted"),
}


def test_every_documented_code_has_a_case_here() -> None:
    assert set(documented_codes()) == set(CASES), documented_codes()


@pytest.mark.parametrize("code", sorted(CASES), ids=lambda c: f"{int(c)}-{ExitCode(c).name}")
def test_canary_setup_exits_with_the_documented_code(code: int, fake: FakeCluster, tmp_path: Path) -> None:
    make, says = CASES[code]
    got, output = make(fake, tmp_path)
    assert got == code, output
    assert says in output
