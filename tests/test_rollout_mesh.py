"""``canary-setup rollout --local`` against real local meshes (Envoy + boutique services): both endings as the demo
runs them (a healthy canary promoted 5 -> 20 -> 50 -> 100 with health; a canary failing 5% of its calls rolled back
at its first step), then on this module's mesh (with the version header) a SIGKILL mid-step then --resume without
repeating a step, the dry run touching nothing; and the one-line usage errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flakebudget import ALPHA_ARGS, TEST_ALPHA
from helpers import in_process

from splitproof.setup import proc
from splitproof.setup.cli import main
from splitproof.setup.errors import BusyError
from splitproof.setup.manifests import CanaryParams
from splitproof.setup.mesh import LocalMesh
from splitproof.setup.mesh.statedir import refuse_during_rollout, rollout_lock
from splitproof.setup.rollout.demo import run_rollouts
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
                            *ALPHA_ARGS, *args)


def run(mesh: LocalMesh, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(rollout_argv(mesh, *args), capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                          check=False)


def events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def served(mesh: LocalMesh) -> dict[str, int]:
    return normalize(mesh.router.served_weights().weights or {})


@pytest.mark.slow
def test_the_demo_promotes_a_healthy_canary_and_rolls_back_a_failing_one(tmp_path: Path) -> None:
    """Both endings as `make demo` runs them (setup/rollout/demo.py): each its own mesh, the real command."""
    said: list[str] = []
    endings = run_rollouts(tmp_path, said.append, alpha=TEST_ALPHA)
    assert [(want, got) for _, want, got, _ in endings] == [(ExitCode.OK, ExitCode.OK), (ExitCode.FAIL, ExitCode.FAIL)]

    healthy = events(tmp_path / "rollout-healthy.jsonl")
    verdicts = [(e["percent"], e["outcome"], e["split"], e["health"]) for e in healthy if e["event"] == "verdict"]
    assert verdicts == [(5, "PASS", "PASS", "PASS"), (20, "PASS", "PASS", "PASS"), (50, "PASS", "PASS", "PASS"),
                        (100, "PASS", "PASS", None)]
    kinds = [e["event"] for e in healthy]
    for i, e in enumerate(healthy):  # counting starts only once the proxies serve the step's weights
        if e["event"] == "verdict":
            assert kinds[i - 1] == "weights_served" and healthy[i - 1]["percent"] == e["percent"]
            assert e["samples"] > 0 and e["counts"]["canary"] > 0
    assert kinds[-1] == "promoted"

    bad = events(tmp_path / "rollout-bad-canary.jsonl")
    verdict = next(e for e in bad if e["event"] == "verdict")
    assert (verdict["percent"], verdict["outcome"], verdict["health"]) == (5, "FAIL", "FAIL")
    assert [e["event"] for e in bad][-2:] == ["rollback_started", "rolled_back"]
    assert bad[-1]["verified"] is True and bad[-1]["check_canary"] == 0 and bad[-1]["check_samples"] > 0
    assert not any(e["event"] == "step_started" and e["percent"] > 5 for e in bad)

    for name, banner in (("healthy", "promoted"), ("bad-canary", "rolled back")):
        page = (tmp_path / f"rollout-{name}.html").read_text()
        assert f'id="outcome">{banner}<' in page and "<svg" in page
    assert not (tmp_path / "mesh-healthy" / "state.json").exists()  # `local down` ran: nothing left


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
def test_ctrl_c_keeps_the_weights_says_so_and_exits_130(mesh: LocalMesh, tmp_path: Path) -> None:
    mesh.router.set_weights({"production": 100, "canary": 0})
    mesh.router.wait_served()
    log, out = tmp_path / "rollout.jsonl", tmp_path / "out.log"
    child = proc.spawn(rollout_argv(mesh, "--steps", "30,100", "--health", "--json-log", str(log)), log=out)
    try:
        proc.wait_until(lambda: log.exists() and any(e["event"] == "weights_served" for e in events(log)), 120.0,
                        "the first step counting", 0.01, max_interval=0.02)
        with pytest.raises(BusyError, match=f"\\(pid {child.pid}, steps 30,100, since "):  # it holds the mesh
            refuse_during_rollout(mesh.state_dir)
        os.kill(child.pid, signal.SIGINT)
        assert child.wait(timeout=60) == ExitCode.INTERRUPTED
    finally:
        proc.stop(child)
    refuse_during_rollout(mesh.state_dir)  # and lets go of it when it ends
    text = out.read_text()
    assert "interrupted at step 1/2 (canary 30%): weights kept at production=70,canary=30" in text, text
    assert "--resume --json-log" in text and "Traceback" not in text
    assert events(log)[-1]["event"] == "interrupted" and events(log)[-1]["action"] == "keep"
    assert served(mesh) == {"production": 70, "canary": 30}


@pytest.mark.slow
def test_a_second_rollout_or_weights_during_a_rollout_exit_9_and_change_nothing(mesh: LocalMesh,
                                                                                 tmp_path: Path) -> None:
    mesh.router.set_weights({"production": 80, "canary": 20})
    mesh.router.wait_served()
    log = tmp_path / "second.jsonl"
    with rollout_lock(mesh.state_dir, "pid 4242, steps 5,20,50,100, since 2026-12-07T23:00:00+0000"):
        second = run(mesh, "--json-log", str(log))
        weights = subprocess.run(proc.python_argv("-m", "splitproof.setup.cli", "local", "weights", "50",
                                                  "--state-dir", str(mesh.state_dir)),
                                 capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)
    for done in (second, weights):
        assert done.returncode == ExitCode.BUSY, done.stdout + done.stderr
        assert done.stderr.startswith("canary-setup: error: a rollout is driving the local mesh in ")
        assert "(pid 4242, steps 5,20,50,100" in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert not log.exists() and served(mesh) == {"production": 80, "canary": 20}


@pytest.mark.slow
def test_the_locust_source_judges_each_step_on_real_locust_responses(mesh: LocalMesh, tmp_path: Path) -> None:
    mesh.router.set_weights({"production": 100, "canary": 0})
    mesh.router.wait_served()
    log = tmp_path / "rollout.jsonl"
    done = run(mesh, "--source", "locust", "--steps", "20,100", "--step-timeout", "2m", "--json-log", str(log))
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    verdicts = [e for e in events(log) if e["event"] == "verdict"]
    assert [(v["percent"], v["outcome"]) for v in verdicts] == [(20, "PASS"), (100, "PASS")]
    assert all(v["samples"] > 0 and "Locust responses started after the switch" in v["reason"] for v in verdicts)
    left = subprocess.run(["pgrep", "-f", f"locust.*{tmp_path.name}"], capture_output=True, text=True, check=False)
    assert left.stdout == ""  # Locust ended with the walk


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
    (["--resume"], ExitCode.USAGE, "--resume needs --json-log FILE"),
    (["--steps", "5,20"], ExitCode.USAGE, "--steps must end at 100"),
    (["--step-timeout", "soon"], ExitCode.USAGE, "--step-timeout must be a duration"),
    (["--target", "127.0.0.1:1"], ExitCode.USAGE, "--target/--url are for --context"),
])
def test_usage_errors_are_one_line_exit_2(args: list[str], code: int, message: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    got, out, err = in_process(main, capsys, "rollout", "--local", "--state-dir", str(tmp_path), *args)
    assert got == code and err.startswith(f"canary-setup: error: {message}") and err.count("\n") == 1, err


def test_health_with_the_locust_source_is_refused(mesh: LocalMesh, capsys: pytest.CaptureFixture[str]) -> None:
    got, _, err = in_process(main, capsys, "rollout", "--local", "--state-dir", str(mesh.state_dir), "--source",
                             "locust", "--health")
    assert got == ExitCode.USAGE and "a failed response in the Locust records names no version" in err


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
