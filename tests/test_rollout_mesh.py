"""``canary-setup rollout --local`` against a real local mesh (Envoy + boutique services, one per module, with the
version header): a healthy canary promoted 5 -> 20 -> 50 -> 100 with health, a SIGKILL mid-step then --resume
without repeating a step, the dry run touching nothing; and the one-line usage errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import in_process

from splitproof.setup import proc
from splitproof.setup.cli import main
from splitproof.setup.manifests import CanaryParams
from splitproof.setup.mesh import LocalMesh
from splitproof.setup.router import normalize
from splitproof.verifier.exitcodes import ExitCode

HEADER = "x-version"
RUN_TIMEOUT_S = 300.0


@pytest.fixture(scope="module")
def mesh() -> Iterator[LocalMesh]:
    with LocalMesh(CanaryParams(version_header=HEADER)) as m:
        yield m


def rollout_argv(mesh: LocalMesh, *args: str) -> list[str]:
    return proc.python_argv("-m", "splitproof.setup.cli", "rollout", "--local", "--state-dir", str(mesh.state_dir),
                            *args)


def run(mesh: LocalMesh, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(rollout_argv(mesh, *args), capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                          check=False)


def events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def served(mesh: LocalMesh) -> dict[str, int]:
    return normalize(mesh.router.served_weights().weights or {})


@pytest.mark.slow
def test_a_healthy_canary_is_promoted_step_by_step_with_health(mesh: LocalMesh, tmp_path: Path) -> None:
    log, html = tmp_path / "rollout.jsonl", tmp_path / "rollout.html"
    done = run(mesh, "--health", "--json-log", str(log), "--html", str(html), "--step-timeout", "3m")
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert "promoted" in done.stdout and "canary-setup local weights 0" in done.stdout
    got = events(log)
    verdicts = [(e["percent"], e["outcome"], e["split"], e["health"]) for e in got if e["event"] == "verdict"]
    assert verdicts == [(5, "PASS", "PASS", "PASS"), (20, "PASS", "PASS", "PASS"), (50, "PASS", "PASS", "PASS"),
                        (100, "PASS", "PASS", None)]
    kinds = [e["event"] for e in got]
    for i, e in enumerate(got):  # counting starts only once the proxies serve the step's weights
        if e["event"] == "verdict":
            assert kinds[i - 1] == "weights_served" and got[i - 1]["percent"] == e["percent"]
            assert e["samples"] > 0 and e["counts"]["canary"] > 0
    assert kinds[-1] == "promoted" and served(mesh) == {"canary": 100}
    page = html.read_text()
    assert 'id="outcome">promoted<' in page and page.count("<svg") >= 1 and page.count(">PASS<") >= 4


@pytest.mark.slow
def test_sigkill_mid_step_then_resume_repeats_no_completed_step(mesh: LocalMesh, tmp_path: Path) -> None:
    mesh.router.set_weights({"production": 100, "canary": 0})
    mesh.router.wait_served()
    log = tmp_path / "rollout.jsonl"
    child = proc.spawn(rollout_argv(mesh, "--steps", "20,50,100", "--json-log", str(log)),
                       log=tmp_path / "first.log")
    try:
        def second_step_counting() -> bool:
            assert child.poll() is None, (tmp_path / "first.log").read_text()
            return log.exists() and any(e["event"] == "weights_served" and e["percent"] == 50 for e in events(log))

        proc.wait_until(second_step_counting, 120.0, "the rollout's second step", 0.01, max_interval=0.02)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        proc.stop(child)
    before = events(log)
    passed = [e["percent"] for e in before if e["event"] == "verdict" and e["outcome"] == "PASS"]
    assert passed[:1] == [20] and "promoted" not in [e["event"] for e in before]
    # the kill left the weights where the driver last put them: nothing reset, nothing rolled back
    last_written = [e["weights"] for e in before if e["event"] == "weights_written"][-1]
    assert served(mesh) == normalize(last_written)

    done = run(mesh, "--resume", "--json-log", str(log))
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert "resuming" in done.stdout
    after = events(log)[len(before):]
    assert after[0]["event"] == "rollout_resumed"
    restarted = [e["percent"] for e in after if e["event"] == "step_started"]
    assert not set(restarted) & set(passed) and restarted[-1] == 100
    assert after[-1]["event"] == "promoted" and served(mesh) == {"canary": 100}


@pytest.mark.slow
def test_dry_run_prints_the_actions_and_changes_nothing(mesh: LocalMesh, tmp_path: Path) -> None:
    mesh.router.set_weights({"production": 80, "canary": 20})
    mesh.router.wait_served()
    log = tmp_path / "never.jsonl"
    done = run(mesh, "--dry-run", "--health", "--json-log", str(log))
    assert done.returncode == ExitCode.OK, done.stderr
    writes = [line for line in done.stdout.splitlines() if line.startswith("rollout: [dry-run] write")]
    assert [w.split()[3] for w in writes] == ["production=95,canary=5", "production=80,canary=20",
                                              "production=50,canary=50", "production=0,canary=100"]
    assert not log.exists() and served(mesh) == {"production": 80, "canary": 20}


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--source", "prometheus"], ExitCode.USAGE, "--source prometheus needs the telemetry source"),
    (["--resume"], ExitCode.USAGE, "--resume needs --json-log FILE"),
    (["--steps", "5,20"], ExitCode.USAGE, "--steps must end at 100"),
    (["--step-timeout", "soon"], ExitCode.USAGE, "--step-timeout must be a duration"),
    (["--target", "127.0.0.1:1"], ExitCode.USAGE, "--target/--url are for --context"),
])
def test_usage_errors_are_one_line_exit_2(args: list[str], code: int, message: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    got, out, err = in_process(main, capsys, "rollout", "--local", "--state-dir", str(tmp_path), *args)
    assert got == code and err.startswith(f"canary-setup: error: {message}") and err.count("\n") == 1, err


def test_no_mesh_running_is_exit_6(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    got, _, err = in_process(main, capsys, "rollout", "--local", "--state-dir", str(tmp_path / "none"))
    assert got == ExitCode.NOT_RUNNING and "no local mesh is running" in err and "--version-header" in err


def test_a_log_already_holding_a_rollout_is_not_overwritten(tmp_path: Path, capsys, monkeypatch) -> None:
    log = tmp_path / "old.jsonl"
    log.write_text('{"t": 1, "event": "rollout_started"}\n')
    import splitproof.setup.rollout.targets as targets

    monkeypatch.setattr(targets, "local_parts", lambda args, plan, say: (None, None, ()))
    got, _, err = in_process(main, capsys, "rollout", "--local", "--json-log", str(log))
    assert got == ExitCode.USAGE and "already holds a rollout: continue it with --resume" in err
    assert log.read_text() == '{"t": 1, "event": "rollout_started"}\n'
