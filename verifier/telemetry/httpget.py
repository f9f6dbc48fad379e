"""One bounded HTTP request for the telemetry sources (Prometheus API, Envoy admin): stdlib urllib, no new deps.

* a timeout on every socket operation, and a response-size bound (gzip accepted, decompressed within the bound);
* credentials (bearer token, extra headers, ``user:password@`` in the URL) are sent as *unredirected* headers, so a
  redirect to another host does not carry them, and are redacted from every message -- also from an error body
  that echoes them back (:class:`verifier.redact.Redactor`);
* transport failures (refused, DNS, timeout, reset) raise TelemetryUnreachable; an HTTP error status is returned
  to the caller (who knows the API's error format) as an ``HttpAnswer``.
"""

from __future__ import annotations

import base64
import http.client
import socket
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from splitproof.verifier.redact import Redactor
from splitproof.verifier.telemetry.errors import TelemetryInputError, TelemetryResponseTooLarge, TelemetryUnreachable

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
_CHUNK = 256 * 1024


def one_line(text: str, limit: int = 300) -> str:
    """Whitespace collapsed to single spaces, cut at ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


@dataclass(frozen=True)
class Endpoint:
    """A base URL plus the headers every request to it carries (``secret_headers`` are redacted everywhere)."""

    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    secret_headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout: float = DEFAULT_TIMEOUT
    max_bytes: int = DEFAULT_MAX_BYTES

    @classmethod
    def parse(cls, url: str, *, headers: Mapping[str, str] | None = None,
              secret_headers: Mapping[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT,
              max_bytes: int = DEFAULT_MAX_BYTES) -> Endpoint:
        """Validate ``url`` (http/https with a host); ``user:password@`` moves into a Basic Authorization header."""
        secrets = dict(secret_headers or {})
        try:
            parts = urllib.parse.urlsplit(url.strip())
            port = parts.port
        except ValueError as exc:
            raise TelemetryInputError(f"bad URL {_strip_userinfo(url)!r}: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TelemetryInputError(f"bad URL {_strip_userinfo(url)!r}: give http(s)://HOST[:PORT][/PATH]")
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            secrets.setdefault("Authorization",
                               "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        netloc = host if port is None else f"{host}:{port}"
        base = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        if timeout <= 0 or max_bytes <= 0:
            raise TelemetryInputError("timeout and response-size bound must be positive")
        return cls(base, dict(headers or {}), secrets, timeout, max_bytes)

    @property
    def redactor(self) -> Redactor:
        values = []
        for v in self.secret_headers.values():
            values.append(v)
            scheme, _, credential = v.partition(" ")
            if credential:
                values.append(credential)
                if scheme.lower() == "basic":
                    try:
                        values.extend(base64.b64decode(credential).decode().split(":", 1))
                    except (ValueError, UnicodeDecodeError):
                        pass
        return Redactor(values)


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes
    content_type: str
    url: str  # without credentials


def _strip_userinfo(url: str) -> str:
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[1], parts.path, parts.query, ""))


class _NoAuthOnRedirect(urllib.request.HTTPRedirectHandler):
    """Follow redirects (urllib drops unredirected headers on them), at most a few."""

    max_redirections = 3


def request(endpoint: Endpoint, path: str, *, params: Mapping[str, str] | None = None, post: bool = False,
            accept: str = "application/json") -> HttpAnswer:
    """GET (or form POST) ``base_url + path``; the answer, whatever its status. Raises TelemetryUnreachable for
    transport failures and TelemetryResponseTooLarge beyond ``max_bytes``."""
    redact = endpoint.redactor
    url = endpoint.base_url + path
    query = urllib.parse.urlencode(params or {})
    data = None
    if post:
        data = query.encode()
    elif query:
        url = f"{url}?{query}"
    req = urllib.request.Request(url, data=data, method="POST" if post else "GET")
    req.add_header("Accept", accept)
    req.add_header("Accept-Encoding", "gzip")
    req.add_header("User-Agent", "splitproof-verify-split")
    if post:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    for k, v in endpoint.headers.items():
        req.add_header(k, v)
    for k, v in endpoint.secret_headers.items():
        req.add_unredirected_header(k, v)
    shown = endpoint.base_url + path
    opener = urllib.request.build_opener(_NoAuthOnRedirect())
    try:
        try:
            resp = opener.open(req, timeout=endpoint.timeout)
        except urllib.error.HTTPError as err:
            resp = err
        with resp:
            body = _read_bounded(resp, endpoint.max_bytes, shown)
            status = int(resp.status if resp.status is not None else resp.code)
            ctype = str(resp.headers.get("Content-Type", ""))
    except TelemetryResponseTooLarge:
        raise
    except urllib.error.URLError as err:
        raise TelemetryUnreachable(redact(f"cannot reach {shown}: {one_line(_reason(err.reason))}")) from None
    except TimeoutError:
        raise TelemetryUnreachable(f"no answer from {shown} within {endpoint.timeout:g}s") from None
    except (OSError, http.client.HTTPException, ValueError, zlib.error) as err:
        raise TelemetryUnreachable(redact(f"cannot read from {shown}: {one_line(_reason(err))}")) from None
    return HttpAnswer(status, body, ctype, shown)


def _reason(reason: object) -> str:
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, socket.gaierror):
        return f"name resolution failed ({reason.strerror or reason})"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def _read_bounded(resp: http.client.HTTPResponse | urllib.error.HTTPError, max_bytes: int, shown: str) -> bytes:
    gzipped = str(resp.headers.get("Content-Encoding", "")).lower() == "gzip"
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
    out = bytearray()
    while True:
        chunk = resp.read(_CHUNK)
        if not chunk:
            break
        if inflate is not None:
            chunk = inflate.decompress(chunk, max_bytes + 1 - len(out))
        out += chunk
        if len(out) > max_bytes:
            raise TelemetryResponseTooLarge(f"the answer from {shown} exceeds {max_bytes:,} bytes")
    if inflate is not None:
        out += inflate.flush()
        if len(out) > max_bytes:
            raise TelemetryResponseTooLarge(f"the answer from {shown} exceeds {max_bytes:,} bytes")
    return bytes(out)
