"""gRPC server plumbing shared by the catalog and recommendation servers: binding, health, graceful stop."""

from __future__ import annotations

from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from splitproof.setup.errors import PortInUseError
from splitproof.setup.net import bindable

GRPC_SERVER_OPTIONS = (
    ("grpc.so_reuseport", 0),  # gRPC sets SO_REUSEPORT by default: two servers could silently share a port
)


def check_bindable(host: str, port: int) -> None:
    """Raise PortInUseError when ``host:port`` is taken (port 0 always binds). Same socket options as gRPC."""
    if port != 0 and not bindable(host, port):
        raise PortInUseError(f"cannot bind {host}:{port}: address already in use")


def new_grpc_server(max_workers: int = 16) -> grpc.Server:
    return grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers), options=GRPC_SERVER_OPTIONS)


def add_health(server: grpc.Server, *service_names: str) -> health.HealthServicer:
    """Standard grpc.health.v1 service: SERVING for "" and each named service."""
    servicer = health.HealthServicer(experimental_non_blocking=True)
    for name in ("", *service_names):
        servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return servicer


def bind_and_start(server: grpc.Server, host: str, port: int) -> int:
    """Bind ``host:port`` (0 = ephemeral) and start; return the bound port. PortInUseError when taken."""
    check_bindable(host, port)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as exc:  # grpcio raises when nothing could be bound
        raise PortInUseError(f"cannot bind {host}:{port}: {exc}") from None
    if bound == 0:
        raise PortInUseError(f"cannot bind {host}:{port}")
    server.start()
    return bound
