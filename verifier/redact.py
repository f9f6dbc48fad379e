"""Credentials never reach the terminal: :func:`redact` removes them from any text we print that a server, a
proxy or a tool may have produced (a Kubernetes API reason phrase, kubectl's stderr, an HTTP error), and both
command lines pass every error message through it before printing.

What is recognised: an ``Authorization`` header's value (``Bearer``, ``Basic`` or any scheme), a bearer token
anywhere, JSON Web Tokens (``eyJ...``, the form of Kubernetes service-account tokens), Google OAuth access
tokens (``ya29.``), ``token``/``password``/``secret``/``api_key``-style ``key=value`` or ``key: value`` pairs,
kubeconfig's ``client-key-data``/``client-certificate-data``, and the user:password part of a URL.
"""

from __future__ import annotations

import re

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
