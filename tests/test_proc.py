"""setup.proc with real processes: a child started with die_with_parent dies with a SIGKILLed parent, stop()
escalates to SIGKILL for a child that ignores SIGTERM, stop_all reaps everything, wait_ready reads READY."""

from __future__ import annotations

import signal
import sys
import textwrap
from pathlib import Path

from splitproof.setup import proc

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
STUBBORN = [sys.executable, "-c", textwrap.dedent("""
    import signal, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("READY stubborn 127.0.0.1:4321", flush=True)
    time.sleep(120)
""")]


def test_a_child_dies_with_its_sigkilled_parent(tmp_path: Path) -> None:
    """The parent spawns a sleeper with die_with_parent and prints its pid; SIGKILL the parent: the sleeper gets
    SIGTERM (PR_SET_PDEATHSIG) and exits -- no orphan, although nobody stopped it."""
    pid_file = tmp_path / "child.pid"
    parent_code = textwrap.dedent(f"""
        import sys, time
        from splitproof.setup import proc
        child = proc.spawn({SLEEPER!r}, die_with_parent=True)
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(120)
    """)
    parent = proc.spawn(proc.python_argv("-c", parent_code), log=tmp_path / "parent.log")
    try:
        proc.wait_until(lambda: pid_file.exists() and pid_file.read_text(), 30, "the child's pid")
        child = proc.ProcRef.of(int(pid_file.read_text()))
        assert child.alive()
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        proc.wait_until(lambda: not child.alive(), 10, "the orphaned child to exit")
    finally:
        proc.stop(parent)


def test_stop_escalates_to_sigkill_and_wait_ready_reads_the_ready_line(tmp_path: Path) -> None:
    log = tmp_path / "stubborn.log"
    ready = proc.ReadyLine(log, "stubborn")
    child = proc.spawn(STUBBORN, log=log)
    try:
        assert proc.wait_ready(child, ready, 30) == ("127.0.0.1", 4321)
        proc.stop(child, timeout=0.5)
        assert child.returncode == -signal.SIGKILL
    finally:
        proc.stop(child)


def test_stop_all_stops_and_reaps_every_child() -> None:
    children = [proc.spawn(SLEEPER) for _ in range(3)]
    started = list(children)
    proc.stop_all(children)
    assert children == [] and all(c.returncode == -signal.SIGTERM for c in started)


def test_a_recorded_process_is_terminated_by_pid_and_start_time() -> None:
    child = proc.spawn(SLEEPER)
    try:
        ref = proc.ProcRef.of(child.pid)
        assert ref.alive() and ref.terminate(timeout=5)
        assert not ref.alive()
    finally:
        proc.stop(child)
