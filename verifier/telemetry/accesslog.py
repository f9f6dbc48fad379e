"""One Istio sidecar access-log line -> an entry: TEXT (Istio's default format) or JSON, detected per line.

Istio's default TEXT format (istio/istio ``pilot/pkg/model/telemetry_logging.go``, ``EnvoyTextLogFormat``, the
same in 1.20 through 1.29 but for ``%UPSTREAM_CLUSTER_RAW%``, which replaced ``%UPSTREAM_CLUSTER%`` in 1.23; both
print the cluster name)::

    [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS%
    %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED%
    %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
    "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS%
    %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%

(one line; Envoy prints ``-`` for a missing value). The JSON encoding (``accessLogEncoding: JSON``,
``EnvoyJSONLogFormatIstio`` in the same file) has the keys ``start_time``, ``method``, ``path``, ``protocol``,
``response_code``, ``response_flags``, ``response_code_details``, ``connection_termination_details``,
``upstream_transport_failure_reason``, ``bytes_received``, ``bytes_sent``, ``duration``, ``upstream_service_time``,
``x_forwarded_for``, ``user_agent``, ``request_id``, ``authority``, ``upstream_host``, ``upstream_cluster``,
``upstream_local_address``, ``downstream_local_address``, ``downstream_remote_address``,
``requested_server_name``, ``route_name``; Envoy writes numbers as JSON numbers and missing values as null.

Envoy's *own* default format (no upstream cluster: envoyproxy/envoy docs, access_log/usage "Default format
string") is recognised and rejected with that reason: it cannot say which subset served a request. A leading
``kubectl logs --prefix`` / ``--timestamps`` prefix is allowed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from splitproof.verifier.istio import ClusterName, parse_cluster
from splitproof.verifier.telemetry.result import NONE, StatusKey

ISTIO_TEXT_FORMAT = (
    "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% "
    "%RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% \"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" "
    "%BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" "
    "\"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER_RAW% "
    "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% "
    "%ROUTE_NAME%\n")
ISTIO_JSON_FORMAT = {
    "start_time": "%START_TIME%", "route_name": "%ROUTE_NAME%", "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", "protocol": "%PROTOCOL%", "response_code": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%", "response_code_details": "%RESPONSE_CODE_DETAILS%",
    "connection_termination_details": "%CONNECTION_TERMINATION_DETAILS%", "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%", "duration": "%DURATION%",
    "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%", "x_forwarded_for": "%REQ(X-FORWARDED-FOR)%",
    "user_agent": "%REQ(USER-AGENT)%", "request_id": "%REQ(X-REQUEST-ID)%", "authority": "%REQ(:AUTHORITY)%",
    "upstream_host": "%UPSTREAM_HOST%", "upstream_cluster": "%UPSTREAM_CLUSTER_RAW%",
    "upstream_local_address": "%UPSTREAM_LOCAL_ADDRESS%", "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%",
    "downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%", "requested_server_name": "%REQUESTED_SERVER_NAME%",
    "upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
}

_TS = r"\[(?P<start>\d{4}-\d\d-\d\dT[^\]\s]+)\] "
_REQ = r'"(?P<method>\S+) (?P<path>.*?) (?P<protocol>\S+)" (?P<code>\d+|-) (?P<flags>\S+) '
_TAIL_ENVOY = r'(?P<rx>\d+|-) (?P<tx>\d+|-) (?P<duration>\d+|-) (?P<ust>\S+) "(?P<xff>.*?)" "(?P<ua>.*?)" ' \
              r'"(?P<rid>.*?)" "(?P<authority>.*?)" "(?P<uhost>.*?)"'
ISTIO_TEXT = re.compile(_TS + _REQ + r'(?P<details>\S+) (?P<term>\S+) "(?P<utfr>.*?)" ' + _TAIL_ENVOY +
                        r" (?P<cluster>\S+) (?P<ulocal>\S+) (?P<dlocal>\S+) (?P<dremote>\S+) (?P<sni>\S+) "
                        r"(?P<route>\S+)(?: .*)?$")
ENVOY_DEFAULT_TEXT = re.compile(_TS + _REQ + _TAIL_ENVOY + r"\s*$")
_LOOKS_TEXT = re.compile(r'\[\d{4}-\d\d-\d\dT[^\]\s]+\] "')
_JSON_KEYS = frozenset({"start_time", "upstream_cluster", "response_code", "response_flags"})


@dataclass(frozen=True, slots=True)
class AccessLogEntry:
    """One request as an Istio sidecar logged it (``None`` / ``-`` for what the line does not carry)."""

    start_time: float
    method: str
    path: str
    protocol: str
    response_code: int  # 0: no response was sent (Envoy logs 0)
    response_flags: str
    response_code_details: str
    duration_ms: int | None
    upstream_host: str | None
    upstream_cluster: str | None
    authority: str | None
    route_name: str | None
    encoding: str  # "text" | "json"

    @property
    def cluster(self) -> ClusterName | None:
        return parse_cluster(self.upstream_cluster) if self.upstream_cluster else None

    @property
    def status(self) -> StatusKey:
        code = str(self.response_code) if self.response_code else NONE
        return StatusKey(code, NONE, self.response_flags or NONE)

    @property
    def is_tcp(self) -> bool:
        """A TCP proxy's per-connection line (``"- - -"``): not an HTTP request."""
        return self.method == "-" and self.protocol == "-"


@dataclass(frozen=True, slots=True)
class Rejected:
    """A line that gave no entry: ``kind`` is ``malformed`` (looks like an access-log line but does not parse),
    ``envoy-default`` (Envoy's own format, no upstream cluster) or ``other`` (not an access-log line, e.g. the
    proxy's own log)."""

    kind: str
    reason: str


def _opt(value: Any) -> str | None:
    if value is None:
        return None
    s = str(value)
    return None if s in ("", "-") else s


def _int(value: Any) -> int | None:
    if value is None or value == "-" or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return int(str(value))


def parse_time(text: str) -> float:
    """Envoy's ``%START_TIME%`` default form, ``2025-11-25T22:10:00.123Z`` (RFC 3339 in UTC)."""
    return datetime.fromisoformat(text).timestamp()


def _from_text(m: re.Match[str]) -> AccessLogEntry:
    g = m.groupdict()
    return AccessLogEntry(
        start_time=parse_time(g["start"]), method=g["method"], path=g["path"], protocol=g["protocol"],
        response_code=_int(g["code"]) or 0, response_flags=g["flags"], response_code_details=g["details"],
        duration_ms=_int(g["duration"]), upstream_host=_opt(g["uhost"]), upstream_cluster=_opt(g["cluster"]),
        authority=_opt(g["authority"]), route_name=_opt(g["route"]), encoding="text")


def _from_json(doc: dict[str, Any]) -> AccessLogEntry:
    start = doc.get("start_time")
    if not isinstance(start, str):
        raise ValueError("no start_time")
    return AccessLogEntry(
        start_time=parse_time(start), method=str(doc.get("method") or NONE), path=str(doc.get("path") or NONE),
        protocol=str(doc.get("protocol") or NONE), response_code=_int(doc.get("response_code")) or 0,
        response_flags=str(doc.get("response_flags") or NONE),
        response_code_details=str(doc.get("response_code_details") or NONE),
        duration_ms=_int(doc.get("duration")), upstream_host=_opt(doc.get("upstream_host")),
        upstream_cluster=_opt(doc.get("upstream_cluster")), authority=_opt(doc.get("authority")),
        route_name=_opt(doc.get("route_name")), encoding="json")


def parse_line(line: str) -> AccessLogEntry | Rejected:
    """Parse one line (without its newline) of either encoding."""
    brace = line.find("{")
    bracket = _LOOKS_TEXT.search(line)
    if brace >= 0 and (bracket is None or brace < bracket.start()):
        try:
            doc = json.loads(line[brace:])
        except ValueError:
            if '"upstream_cluster"' in line or '"start_time"' in line:
                return Rejected("malformed", "broken JSON access-log line")
            return Rejected("other", "not an access-log line")
        if not isinstance(doc, dict) or not _JSON_KEYS & doc.keys():
            return Rejected("other", "JSON without access-log keys")
        try:
            return _from_json(doc)
        except (ValueError, TypeError) as exc:
            return Rejected("malformed", f"JSON access-log line with a bad field ({exc})")
    if bracket is None:
        return Rejected("other", "not an access-log line")
    text = line[bracket.start():]
    m = ISTIO_TEXT.match(text)
    if m is None:
        if ENVOY_DEFAULT_TEXT.match(text):
            return Rejected("envoy-default", "Envoy's default format has no upstream cluster (use Istio's format)")
        return Rejected("malformed", "does not match Istio's default TEXT format")
    try:
        return _from_text(m)
    except ValueError as exc:
        return Rejected("malformed", f"bad field ({exc})")
