"""Credentials for a secured Prometheus (or an admin endpoint behind a proxy): from a file or the environment.

Never from the command line (argv is visible to every user of the machine through ``ps``), never printed: the
values go to ``Endpoint.secret_headers``, which the HTTP layer redacts from every message.

* a bearer token: ``token_file`` (e.g. a Kubernetes service-account token,
  ``/var/run/secrets/kubernetes.io/serviceaccount/token``) or ``token_env`` (the name of a variable holding it);
* extra headers: ``header_file`` with ``Name: value`` lines (``#`` comments and blank lines ignored), e.g.
  ``X-Scope-OrgID: tenant-a`` for Grafana Mimir / Cortex, or an ``Authorization: Basic ...`` line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from splitproof.verifier.telemetry.errors import TelemetryInputError

MAX_SECRET_FILE = 64 * 1024
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token


def _read_secret_file(path: str, what: str) -> str:
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_SECRET_FILE:
            raise TelemetryInputError(f"{what} {path}: {size:,} bytes, more than a credential file holds")
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TelemetryInputError(f"{what} {path}: no such file") from None
    except IsADirectoryError:
        raise TelemetryInputError(f"{what} {path}: is a directory") from None
    except PermissionError:
        raise TelemetryInputError(f"{what} {path}: permission denied") from None
    except UnicodeDecodeError:
        raise TelemetryInputError(f"{what} {path}: not UTF-8 text") from None
    except OSError as exc:
        raise TelemetryInputError(f"{what} {path}: {exc.strerror or type(exc).__name__}") from None


def _check_value(value: str, what: str) -> str:
    if any(c in value for c in "\r\n\0"):
        raise TelemetryInputError(f"{what} contains a line break or NUL (it would split the HTTP header)")
    return value


def auth_headers(*, token_file: str | None = None, token_env: str | None = None, header_file: str | None = None,
                 environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The secret headers to send (``{}`` when nothing is configured). Raises TelemetryInputError with a one-line
    message that names the file or variable, never its content."""
    env = os.environ if environ is None else environ
    headers: dict[str, str] = {}
    if token_file and token_env:
        raise TelemetryInputError("give the bearer token from a file or from a variable, not both")
    token = None
    if token_file:
        token = _read_secret_file(token_file, "token file").strip()
        if not token:
            raise TelemetryInputError(f"token file {token_file} is empty")
        token = _check_value(token, f"token file {token_file}")
    elif token_env:
        if token_env not in env:
            raise TelemetryInputError(f"environment variable {token_env} (the bearer token) is not set")
        token = env[token_env].strip()
        if not token:
            raise TelemetryInputError(f"environment variable {token_env} (the bearer token) is empty")
        token = _check_value(token, f"environment variable {token_env}")
    if header_file:
        for n, raw in enumerate(_read_secret_file(header_file, "header file").splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, value = line.partition(":")
            name = name.strip()
            if not sep or not _HEADER_NAME.fullmatch(name):
                raise TelemetryInputError(f"header file {header_file} line {n}: expected 'Name: value'")
            headers[name] = _check_value(value.strip(), f"header file {header_file} line {n}")
    if token is not None:
        if any(k.lower() == "authorization" for k in headers):
            raise TelemetryInputError("a bearer token and an Authorization header in the header file: give one")
        headers["Authorization"] = f"Bearer {token}"
    return headers
