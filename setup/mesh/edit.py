"""Edits and readings of Istio documents the user gave (``local up --manifests``): what split they configure,
and the same documents with new weights (a mesh started from the templates re-renders them instead)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from splitproof.setup.mesh.hosts import resolve_host
from splitproof.verifier.errors import InputError
from splitproof.verifier.istio import weighted_route


def reweight(documents: Sequence[Any], service_fqdn: str, weights: Mapping[str, int],
             default_namespace: str) -> list[dict[str, Any]]:
    """Copy of ``documents`` where every VirtualService route splitting ``service_fqdn`` across subsets gets
    ``weights`` (by subset name). InputError when the new weights name other subsets, or nothing splits."""
    out = copy.deepcopy([dict(d) for d in documents])
    touched = 0
    for doc in out:
        if not isinstance(doc, dict) or doc.get("kind") != "VirtualService":
            continue
        meta = doc.get("metadata") or {}
        ns = meta.get("namespace") or default_namespace
        for i, route in enumerate((doc.get("spec") or {}).get("http") or []):
            dests = route.get("route") if isinstance(route, dict) else None
            if not isinstance(dests, list) or not dests:
                continue
            subsets = []
            for d in dests:
                dest = (d or {}).get("destination") or {}
                if resolve_host(str(dest.get("host", "")), ns) != service_fqdn or not dest.get("subset"):
                    break
                subsets.append(str(dest["subset"]))
            else:
                missing = [s for s in subsets if s not in weights]
                extra = [s for s, w in weights.items() if s not in subsets and w]
                if missing or extra:
                    raise InputError(f"VirtualService {ns}/{meta.get('name')}: spec.http[{i}] splits across "
                                     f"subsets {', '.join(subsets)}; the new weights name {', '.join(weights)}")
                for d, subset in zip(dests, subsets, strict=True):
                    d["weight"] = int(weights[subset])
                touched += 1
    if not touched:
        raise InputError(f"no VirtualService route splits {service_fqdn} across subsets: nothing to reweight")
    return out


def split_of(documents: Sequence[Any], service_fqdn: str, default_namespace: str
             ) -> tuple[dict[str, dict[str, str]], dict[str, int]]:
    """(DestinationRule subsets, the split the service's mesh VirtualService configures) found in ``documents``,
    so that status can compare served and desired weights of a mesh started from the user's own YAML."""
    subsets: dict[str, dict[str, str]] = {}
    weights: dict[str, int] = {}
    for doc in documents:
        if not isinstance(doc, Mapping):
            continue
        ns = (doc.get("metadata") or {}).get("namespace") or default_namespace
        spec = doc.get("spec") or {}
        if doc.get("kind") == "DestinationRule" and resolve_host(str(spec.get("host", "")), ns) == service_fqdn:
            for s in spec.get("subsets") or []:
                subsets[str(s.get("name"))] = {str(k): str(v) for k, v in (s.get("labels") or {}).items()}
        if doc.get("kind") == "VirtualService" and not weights and not spec.get("gateways") and any(
                resolve_host(str(h), ns) == service_fqdn for h in spec.get("hosts") or []):
            try:
                weights = weighted_route(doc)  # the same reading as verify-split and cluster status
            except InputError:
                continue
    return subsets, weights
