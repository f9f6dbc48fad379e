"""Credentials never reach the terminal -- the one redactor of the project: :func:`redact` removes them from any
text we print that a server, a proxy or a tool may have produced (a Kubernetes API reason phrase, kubectl's stderr,
an HTTP error, a Prometheus error body), and both command lines pass every error message through it before printing.

What is recognised: an ``Authorization`` header's value (``Bearer``, ``Basic`` or any scheme), a bearer token
anywhere, JSON Web Tokens (``eyJ...``, the form of Kubernetes service-account tokens), Google OAuth access
tokens (``ya29.``), ``token``/``password``/``secret``/``api_key``-style ``key=value`` or ``key: value`` pairs,
kubeconfig's ``client-key-data``/``client-certificate-data``, and the user:password part of a URL. A
:class:`Redactor` also knows the secrets a caller sends (the telemetry sources' token and headers) and removes
them in every spelling a server may echo back: as given, URL-quoted and base64-encoded.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Iterable

REDACTED = "<redacted>"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization: Bearer abc / authorization=Basic abc / "Authorization": "Bearer abc"
    (re.compile(r"""(?i)(\b(?:proxy-)?authorization["']?\s*[:=]\s*["']?)(?:[A-Za-z][\w.-]*\s+)?[^\s"',;)]+"""),
     rf"\g<1>{REDACTED}"),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+"), rf"\g<1>{REDACTED}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"\bya29\.[A-Za-z0-9._-]+"), REDACTED),
    (re.compile(r"""(?i)(\b(?:access[_-]?token|refresh[_-]?token|id[_-]?token|token|password|passwd|secret|"""
                r"""api[_-]?key|client-key-data|client-certificate-data)["']?\s*[:=]\s*["']?)[^\s"',;&)]+"""),
     rf"\g<1>{REDACTED}"),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s:]+:[^/@\s]+@"), rf"\g<1>{REDACTED}@"),
)


def redact(text: str) -> str:
    """``text`` with every credential recognised (see the module docstring) replaced by ``<redacted>``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class Redactor:
    """:func:`redact` plus the known ``secrets`` (and their base64 and URL-quoted forms). Values shorter than 4
    characters are not treated as secrets (they would redact ordinary words from every message)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for s in secrets:
            if len(s) >= 4:
                forms.update({s, urllib.parse.quote(s, safe=""), base64.b64encode(s.encode()).decode()})
        self._forms = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for form in self._forms:
            text = text.replace(form, REDACTED)
        return redact(text)
