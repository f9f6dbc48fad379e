"""Field checks for Istio documents, each error naming the document and the field path.

``VirtualService online-boutique/recommendationservice: spec.http[0].retries is not supported by the local mesh``:
every value the local mesh reads goes through one of these, and every key it does not implement is refused by
``only`` -- never silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from splitproof.verifier.errors import InputError


@dataclass(frozen=True)
class DocRef:
    """Which document we are in, for error messages."""

    kind: str
    namespace: str
    name: str

    def err(self, path: str, problem: str) -> InputError:
        return InputError(f"{self.kind} {self.namespace}/{self.name}: {path} {problem}")

    def unsupported(self, path: str) -> InputError:
        return self.err(path, "is not supported by the local mesh")


def mapping(value: Any, ref: DocRef, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ref.err(path, f"must be a mapping, got {type(value).__name__}")
    return value


def listing(value: Any, ref: DocRef, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ref.err(path, f"must be a list, got {type(value).__name__}")
    return value


def string(value: Any, ref: DocRef, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise ref.err(path, f"must be a non-empty string, got {value!r}")
    return value


def only(obj: Mapping[str, Any], allowed: Iterable[str], ref: DocRef, path: str) -> None:
    """Reject every key the translation does not implement (never ignore a field silently)."""
    allowed = set(allowed)
    for key in obj:
        if key not in allowed:
            raise ref.unsupported(f"{path}.{key}" if path else str(key))


def labels(value: Any, ref: DocRef, path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, val in mapping(value, ref, path).items():
        if not isinstance(key, str) or not isinstance(val, str):
            raise ref.err(f"{path}.{key}", f"must map strings to strings, got {val!r}")
        out[key] = val
    return out


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(h|m|s|ms|us|µs|ns)$")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def duration(value: Any, ref: DocRef, path: str) -> str:
    """Istio duration ("5s", "250ms", "1m") -> Envoy JSON duration ("5s", "0.250s")."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match:
        raise ref.err(path, f"must be a duration like 5s or 250ms, got {value!r}")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"
