"""gRPC plumbing for the Locust gRPC user: gevent integration and one shared channel per target per process.

``grpc.experimental.gevent.init_gevent()`` must run before the process creates any gRPC object, otherwise calls
block the gevent hub and every other Locust user with it. ``ensure_gevent`` is idempotent and is called when the
locustfile is imported (before Locust forks ``--processes`` children, which inherit it).

Envoy picks the weighted destination per request (per HTTP/2 stream for gRPC), so all users of a process may share
one channel without pinning the split.
"""

from __future__ import annotations

import grpc

from splitproof.protos import demo_pb2_grpc

_gevent_ready = False
_channels: dict[str, tuple[grpc.Channel, demo_pb2_grpc.RecommendationServiceStub]] = {}


def ensure_gevent() -> None:
    global _gevent_ready
    if not _gevent_ready:
        import grpc.experimental.gevent as grpc_gevent

        grpc_gevent.init_gevent()
        _gevent_ready = True


def recommendation_stub(target: str) -> demo_pb2_grpc.RecommendationServiceStub:
    """The process-wide stub for ``target`` (HOST:PORT), creating its insecure channel on first use."""
    entry = _channels.get(target)
    if entry is None:
        ensure_gevent()
        channel = grpc.insecure_channel(target)
        entry = (channel, demo_pb2_grpc.RecommendationServiceStub(channel))
        _channels[target] = entry
    return entry[1]


def close_channels() -> None:
    for channel, _ in _channels.values():
        channel.close()
    _channels.clear()


def status_name(error: grpc.RpcError) -> str:
    """``UNAVAILABLE`` etc. for a failed call; ``UNKNOWN`` when the error carries no status code."""
    code = error.code() if isinstance(error, grpc.Call) else None
    return code.name if code is not None else "UNKNOWN"


class GrpcCallError(Exception):
    """A failed call as Locust should group it: ``UNAVAILABLE: <details>`` (no per-call debug string)."""


def call_error(error: grpc.RpcError) -> GrpcCallError:
    details = error.details() if isinstance(error, grpc.Call) else None
    name = status_name(error)
    return GrpcCallError(f"{name}: {details}" if details else name)
