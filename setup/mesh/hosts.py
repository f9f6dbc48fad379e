"""Istio host names: short names resolved like istiod, and Gateway/VirtualService host matching."""

from __future__ import annotations

import fnmatch


def resolve_host(host: str, namespace: str) -> str:
    """Short names are relative to the document's namespace, like istiod: ``svc`` -> ``svc.ns.svc.cluster.local``."""
    if host.endswith(".svc.cluster.local") or host.startswith("*"):
        return host
    parts = host.split(".")
    if len(parts) == 1:
        return f"{host}.{namespace}.svc.cluster.local"
    if len(parts) == 2:
        return f"{host}.svc.cluster.local"
    if len(parts) == 3 and parts[2] == "svc":
        return f"{host}.cluster.local"
    return host


def host_intersection(a: str, b: str) -> str | None:
    """The more specific of two host patterns when one covers the other (Istio's gateway host matching)."""
    a, b = a.lower(), b.lower()
    if a == b:
        return a
    if fnmatch.fnmatchcase(b, a) and "*" in a:
        return b
    if fnmatch.fnmatchcase(a, b) and "*" in b:
        return a
    return None


def domains(host: str) -> list[str]:
    """The Envoy virtual host domains for ``host`` (with any port)."""
    return ["*"] if host == "*" else [host, f"{host}:*"]
