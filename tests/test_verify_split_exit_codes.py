"""Every exit code README's "Exit codes" table documents for verify-split is the CLI's own and is reachable: each is
produced here by the installed command, the way a CI step would meet it."""

from __future__ import annotations

import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from splitproof.verifier.cli import EXIT_CODES, build_parser
from splitproof.verifier.exitcodes import ExitCode
from splitproof.verifier.inputs.records import Record

README = Path(__file__).resolve().parent.parent / "README.md"
VERIFY = str(Path(sys.executable).parent / "verify-split")
pytestmark = pytest.mark.slow  # real child processes


def documented() -> dict[int, str]:
    """code -> the verify-split column of README's "Exit codes" table (rows whose column is not "–")."""
    section = README.read_text(encoding="utf-8").split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    codes = {}
    for line in section.splitlines():
        m = re.match(r"\| (\d+) \| ([^|]+) \|", line)
        if m and m.group(2).strip() not in ("–", "-"):
            codes[int(m.group(1))] = m.group(2).strip()
    return codes


def test_the_readme_table_is_the_clis_table() -> None:
    assert set(documented()) == {int(c) for c in EXIT_CODES} == {0, 1, 2, 3, 4, 130}
    assert all(isinstance(c, ExitCode) for c in EXIT_CODES)
    epilog = build_parser().epilog or ""
    for code, meaning in EXIT_CODES.items():
        assert f"{int(code)} {meaning}" in epilog


def results(path: Path, canary: float, n: int) -> Path:
    rng = random.Random(1)
    lines = []
    for i in range(n):
        version = "canary" if rng.random() < canary else "production"
        lines.append(Record(1.0 + i, "grpc", 2 if version == "canary" else 5, version, "ok", 1.0).to_json())
    path.write_text("\n".join(lines) + "\n")
    return path


def verify(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([VERIFY, *argv], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("case", "code"), [("pass", ExitCode.OK), ("fail", ExitCode.FAIL),
                                             ("usage", ExitCode.USAGE), ("inconclusive", ExitCode.INCONCLUSIVE),
                                             ("unreachable", ExitCode.UNREACHABLE)])
def test_each_verdict_and_error_code_is_reached(case: str, code: ExitCode, tmp_path: Path) -> None:
    argv = {
        "pass": ["--expected", "20", "--results", str(results(tmp_path / "pass.jsonl", 0.2, 3000))],
        "fail": ["--expected", "20", "--results", str(results(tmp_path / "fail.jsonl", 0.5, 3000))],
        "usage": ["--expected", "20", "--results", "r.jsonl", "--tolerance", "-5"],
        "inconclusive": ["--expected", "20", "--results", str(results(tmp_path / "few.jsonl", 0.2, 50))],
        "unreachable": ["--expected", "20", "--target", f"127.0.0.1:{_closed_port()}", "--connect-timeout", "0.3"],
    }[case]
    result = verify(*argv)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and never answers: a live run against it only ends when interrupted (or after minutes)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not done.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        done.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        listener.close()


def test_ctrl_c_is_130_after_the_verdict_so_far(silent_server: int) -> None:
    child = subprocess.Popen([VERIFY, "--expected", "20", "--url", f"http://127.0.0.1:{silent_server}",
                              "--timeout", "2", "--concurrency", "1", "--no-progress"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stderr is not None
        deadline = time.monotonic() + 60
        line = ""
        while "warning" not in line and time.monotonic() < deadline:  # sampling is about to start
            line = child.stderr.readline()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == ExitCode.INTERRUPTED, err
    assert "Traceback" not in err and "INCONCLUSIVE" in out + err
