"""The local mesh's telemetry hops: an INBOUND listener per instance (Istio's inbound sidecar) and the two access
loggers every HTTP connection manager gets. Pure builders of Envoy v3 JSON.

In Istio a request leaves the client pod through its sidecar's outbound listener (``reporter="source"``) and enters
the server pod through the server sidecar's inbound listener (``reporter="destination"``), so the two reporters
differ by exactly the client's retries. The local mesh has one Envoy, so each instance gets an *internal* listener
``inbound.<instance>`` (Envoy's internal listeners, envoy.bootstrap.internal_listener: a user-space connection, no
port to allocate and keep across processes); the outbound subset clusters' endpoints are
``envoy_internal_address`` entries naming it, and it forwards to ``inbound|<port>||<instance>``, a cluster of the
instance's real port. Every hop is logged twice:

* Istio's default TEXT format (``meshConfig.accessLogFile``; verifier.telemetry.accesslog.ISTIO_TEXT_FORMAT) to
  ``logs/access-<listener>.log`` -- what ``verify-split --access-log`` reads;
* one JSON line with what Istio's stats filter would record (upstream cluster and host, response code, gRPC
  status, flags, duration, the listener and its direction, the static peer labels) to ``telemetry/requests.jsonl``,
  which the exporter (setup.mesh.exporter) tails into ``istio_requests_total`` & co.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splitproof.setup.mesh.topology import Endpoint, Service
from splitproof.verifier.telemetry.accesslog import ISTIO_TEXT_FORMAT

T_FILE_LOG = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
T_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
T_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
T_LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
T_INTERNAL_LISTENER = "type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3.InternalListener"
INTERNAL_LISTENER_EXTENSION = {"name": "envoy.bootstrap.internal_listener",
                               "typed_config": {"@type": T_INTERNAL_LISTENER}}
REQUESTS_LOG = "requests.jsonl"

# The fields of the JSON line (setup.mesh.exporter reads exactly these).
JSON_FIELDS: Mapping[str, str] = {
    "start_time": "%START_TIME%",
    "upstream_cluster": "%UPSTREAM_CLUSTER%",
    "upstream_host": "%UPSTREAM_HOST%",
    "response_code": "%RESPONSE_CODE%",
    "grpc_status": "%GRPC_STATUS_NUMBER%",
    "response_flags": "%RESPONSE_FLAGS%",
    "duration": "%DURATION%",
    "protocol": "%PROTOCOL%",
    "content_type": "%REQ(CONTENT-TYPE)%",
}


@dataclass(frozen=True)
class Telemetry:
    """Where the local mesh's access logs go: ``logs/access-<listener>.log`` (TEXT) and one JSON-lines file."""

    log_dir: Path
    json_dir: Path
    instances: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = ()  # (instance, service, labels)

    @property
    def requests_log(self) -> Path:
        return self.json_dir / REQUESTS_LOG

    def text_log(self, listener: str) -> Path:
        return self.log_dir / f"access-{listener}.log"


def inbound_listener_name(instance: str) -> str:
    return f"inbound.{instance}"


def inbound_cluster_name(svc: Service, instance: str) -> str:
    return f"inbound|{svc.port}||{instance}"


def access_logs(telemetry: Telemetry, listener: str, direction: str,
                statics: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The two file access loggers of one HCM (TEXT for people and --access-log, JSON for the exporter)."""
    fields = {**JSON_FIELDS, "listener": listener, "direction": direction, **(statics or {})}
    return [
        {"name": "envoy.access_loggers.file",
         "typed_config": {"@type": T_FILE_LOG, "path": str(telemetry.text_log(listener)),
                          "log_format": {"text_format_source": {"inline_string": ISTIO_TEXT_FORMAT}}}},
        {"name": "envoy.access_loggers.file",
         "typed_config": {"@type": T_FILE_LOG, "path": str(telemetry.requests_log),
                          "log_format": {"json_format": fields}}},
    ]


def internal_endpoint(ep: Endpoint) -> Endpoint:
    """The endpoint the outbound clusters get for a ready instance: its inbound listener."""
    return Endpoint(ep.service, "", 0, ep.labels, ep.instance, internal=inbound_listener_name(ep.instance))


def inbound_listener(instance: str, svc: Service, telemetry: Telemetry) -> dict[str, Any]:
    """The instance's inbound hop: everything to ``inbound|<port>||<instance>``, logged as the destination."""
    name = inbound_listener_name(instance)
    cluster = inbound_cluster_name(svc, instance)
    hcm = {
        "@type": T_HCM,
        "stat_prefix": name,
        "codec_type": "AUTO",
        "route_config": {"name": name, "virtual_hosts": [{
            "name": name, "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "name": "default",
                        "route": {"cluster": cluster, "timeout": "0s",
                                  "max_stream_duration": {"grpc_timeout_header_max": "0s"}}}]}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": T_ROUTER}}],
        "access_log": access_logs(telemetry, name, "inbound", {"instance": instance}),
    }
    return {"@type": T_LISTENER, "name": name, "internal_listener": {},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                            "typed_config": hcm}]}]}


def is_internal(listener: Mapping[str, Any]) -> bool:
    return "internal_listener" in listener
