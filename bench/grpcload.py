"""The gRPC client loops the benchmarks share: ListRecommendations over one channel, calls back to back or with a
window of calls in flight. Load goes only to 127.0.0.1 and is bounded in time."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from splitproof.verifier.boutique import PRODUCT_IDS


@dataclass(frozen=True)
class LoopResult:
    calls: int
    failures: int
    elapsed: float

    @property
    def rate(self) -> float:
        return self.calls / self.elapsed if self.elapsed > 0 else 0.0


def _request(product: str | None):  # noqa: ANN202 -- a demo_pb2 message
    from splitproof.protos import demo_pb2

    return demo_pb2.ListRecommendationsRequest(user_id="bench", product_ids=[product or random.choice(PRODUCT_IDS)])


def sync_loop(target: str, seconds: float, *, product: str | None = None, warmup: bool = True) -> LoopResult:
    """One synchronous call after another for ``seconds`` (``product``: always that id, else a random one per
    call); a failed call is counted, not raised."""
    import grpc

    from splitproof.protos import demo_pb2_grpc

    calls = failures = 0
    with grpc.insecure_channel(target) as channel:
        stub = demo_pb2_grpc.RecommendationServiceStub(channel)
        if warmup:
            stub.ListRecommendations(_request(product), timeout=10)
        start = time.perf_counter()
        end = start + seconds
        while time.perf_counter() < end:
            try:
                stub.ListRecommendations(_request(product), timeout=10)
            except grpc.RpcError:
                failures += 1
            calls += 1
        return LoopResult(calls, failures, time.perf_counter() - start)


def window_loop(target: str, seconds: float, *, window: int = 16, product: str | None = None) -> LoopResult:
    """``window`` calls in flight on one channel for ``seconds``, then the rest drained."""
    import grpc

    from splitproof.protos import demo_pb2_grpc

    calls = failures = 0
    with grpc.insecure_channel(target) as channel:
        stub = demo_pb2_grpc.RecommendationServiceStub(channel)
        stub.ListRecommendations(_request(product), timeout=10)
        pending = []
        start = time.perf_counter()
        end = start + seconds

        def settle(fut) -> None:  # noqa: ANN001 -- a grpc future
            nonlocal calls, failures
            try:
                fut.result()
            except grpc.RpcError:
                failures += 1
            calls += 1

        while time.perf_counter() < end:
            pending.append(stub.ListRecommendations.future(_request(product), timeout=10))
            if len(pending) >= window:
                settle(pending.pop(0))
        for fut in pending:
            settle(fut)
        return LoopResult(calls, failures, time.perf_counter() - start)
