"""A canary that can be bad: recommendation's --error-rate / --error-code / --extra-latency-ms, on real processes."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from helpers import start_service

from splitproof.protos import demo_pb2, demo_pb2_grpc
from splitproof.setup.boutique.launcher import Spawned
from splitproof.verifier.exitcodes import ExitCode


def call(addr: str, calls: int, timeout: float = 5.0) -> list[str]:
    """Status name of each of ``calls`` sequential ListRecommendations calls ("OK" when it answered)."""
    out = []
    with grpc.insecure_channel(addr) as channel:
        stub = demo_pb2_grpc.RecommendationServiceStub(channel)
        for _ in range(calls):
            try:
                stub.ListRecommendations(demo_pb2.ListRecommendationsRequest(user_id="u", product_ids=["OLJCESPC7Z"]),
                                         timeout=timeout)
                out.append("OK")
            except grpc.RpcError as exc:
                out.append(exc.code().name)
    return out


def test_seeded_error_rate_fails_exactly_the_drawn_calls(request: pytest.FixtureRequest, logs: Path,
                                                         catalog: Spawned) -> None:
    bad = start_service(request, logs, "rec-errors", "recommendation",
                        ["--catalog-addr", catalog.addr, "--error-rate", "30", "--error-code", "internal",
                         "--fault-seed", "7", "--max-responses", "2"])
    statuses = call(bad.addr, 60)
    draws = random.Random(7)
    expected = ["INTERNAL" if draws.random() < 0.30 else "OK" for _ in range(60)]
    assert statuses == expected and 5 < statuses.count("INTERNAL") < 40
    assert "30% of calls fail with INTERNAL (seed 7)" in bad.log.read_text()


def test_default_code_is_unavailable_and_100_percent_fails_every_call(request: pytest.FixtureRequest, logs: Path,
                                                                      catalog: Spawned) -> None:
    dead = start_service(request, logs, "rec-all-fail", "recommendation",
                         ["--catalog-addr", catalog.addr, "--error-rate", "100"])
    assert call(dead.addr, 5) == ["UNAVAILABLE"] * 5
    with grpc.insecure_channel(dead.addr) as channel:
        stub = demo_pb2_grpc.RecommendationServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.ListRecommendations(demo_pb2.ListRecommendationsRequest(user_id="u"), timeout=5)
    assert "injected fault: 100% of calls fail" in err.value.details()


def test_extra_latency_is_added_to_every_call(request: pytest.FixtureRequest, logs: Path, catalog: Spawned,
                                              production: Spawned) -> None:
    slow = start_service(request, logs, "rec-slow", "recommendation",
                         ["--catalog-addr", catalog.addr, "--extra-latency-ms", "120"])
    call(slow.addr, 1)  # connect first: the timing below is the call alone
    start = time.monotonic()
    assert call(slow.addr, 3) == ["OK"] * 3
    assert time.monotonic() - start >= 3 * 0.120
    # Never past the caller's deadline: a 50 ms deadline gets DEADLINE_EXCEEDED, not a 120 ms wait.
    assert call(slow.addr, 1, timeout=0.05) == ["DEADLINE_EXCEEDED"]
    assert call(production.addr, 2) == ["OK", "OK"]  # production untouched


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--error-rate", "150", "--error-rate must be from 0 to 100"),
    ("--error-rate", "five", "--error-rate must be a number"),
    ("--error-code", "OK", "cannot be OK"),
    ("--error-code", "NOPE", "unknown gRPC status 'NOPE'"),
    ("--extra-latency-ms", "-3", "--extra-latency-ms must be from 0"),
    ("--fault-seed", "x", "--fault-seed must be an integer"),
])
def test_bad_fault_options_are_one_line_usage_errors(flag: str, value: str, message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "splitproof.setup.boutique", "recommendation", "--port", "0",
                             "--catalog-addr", "127.0.0.1:1", flag, value],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == ExitCode.USAGE and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr
