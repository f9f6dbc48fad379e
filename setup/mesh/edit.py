"""Edits and readings of Istio and Gateway API documents the user gave (``local up --manifests``): what split they
configure, and the same documents with new weights (a mesh started from the templates re-renders them instead).
An HTTPRoute's backends are named by the version their Service selects (verifier.gatewayapi)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from splitproof.setup.mesh.hosts import resolve_host
from splitproof.verifier import gatewayapi as gw
from splitproof.verifier.errors import InputError
from splitproof.verifier.istio import weighted_route


def _ns(doc: Mapping[str, Any], default_namespace: str) -> str:
    return str((doc.get("metadata") or {}).get("namespace") or default_namespace)


def _services(documents: Sequence[Any], default_namespace: str) -> list[Mapping[str, Any]]:
    return [d for d in documents if isinstance(d, Mapping) and d.get("kind") == "Service"
            and d.get("apiVersion") == "v1"]


def versions_of(documents: Sequence[Any], default_namespace: str) -> dict[str, str]:
    """{Service fqdn: version} of every Service document whose selector has a ``version`` label: how the
    Gateway API routing's per-version Services are named when their clusters are read back."""
    return {f"{name}.{ns}.svc.cluster.local": version for (ns, name), version in
            gw.service_versions(_services(documents, default_namespace), default_namespace).items()}


def _routes_of(documents: Sequence[Any], service_fqdn: str, default_namespace: str) -> list[dict[str, Any]]:
    """The HTTPRoutes bound to the Service ``service_fqdn`` (GAMMA)."""
    out = []
    for doc in documents:
        if isinstance(doc, dict) and doc.get("kind") == gw.HTTPROUTE and str(doc.get("apiVersion", "")).startswith(
                gw.GROUP + "/"):
            parents = gw.parent_services(doc, default_namespace)
            if any(f"{name}.{ns}.svc.cluster.local" == service_fqdn for ns, name in parents):
                out.append(doc)
    return out


def _reweight_routes(documents: list[Any], service_fqdn: str, weights: Mapping[str, int],
                     default_namespace: str) -> int:
    """Set the weights of every HTTPRoute rule of the Service whose backends all carry a known version."""
    versions = versions_of(documents, default_namespace)
    touched = 0
    for doc in _routes_of(documents, service_fqdn, default_namespace):
        ns = _ns(doc, default_namespace)
        for i, rule in enumerate((doc.get("spec") or {}).get("rules") or []):
            refs = rule.get("backendRefs") if isinstance(rule, dict) else None
            if not isinstance(refs, list) or not refs:
                continue
            named = [versions.get(f"{r.get('name')}.{r.get('namespace') or ns}.svc.cluster.local")
                     if isinstance(r, dict) else None for r in refs]
            if None in named:
                continue
            missing = [v for v in named if v not in weights]
            extra = [v for v, w in weights.items() if v not in named and w]
            if missing or extra:
                raise InputError(f"HTTPRoute {ns}/{(doc.get('metadata') or {}).get('name')}: spec.rules[{i}] "
                                 f"splits across versions {', '.join(map(str, named))}; the new weights name "
                                 f"{', '.join(weights)}")
            for r, version in zip(refs, named, strict=True):
                r["weight"] = int(weights[str(version)])
            touched += 1
    return touched


def reweight(documents: Sequence[Any], service_fqdn: str, weights: Mapping[str, int],
             default_namespace: str) -> list[dict[str, Any]]:
    """Copy of ``documents`` where every VirtualService route splitting ``service_fqdn`` across subsets gets
    ``weights`` (by subset name). InputError when the new weights name other subsets, or nothing splits."""
    out = copy.deepcopy([dict(d) for d in documents])
    touched = _reweight_routes(out, service_fqdn, weights, default_namespace)
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
        raise InputError(f"no VirtualService route or HTTPRoute rule splits {service_fqdn} across subsets or "
                         "version Services: nothing to reweight")
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
    if not weights:
        subsets, weights = _route_split(documents, service_fqdn, default_namespace) or (subsets, weights)
    return subsets, weights


def _route_split(documents: Sequence[Any], service_fqdn: str, default_namespace: str
                 ) -> tuple[dict[str, dict[str, str]], dict[str, int]] | None:
    """(version -> selector labels but ``app``, the HTTPRoute's split as percentages) of the Service's HTTPRoute;
    None without one, or when its relative weights are no whole percentages (then status compares nothing)."""
    routes = _routes_of(documents, service_fqdn, default_namespace)
    if not routes:
        return None
    services = _services(documents, default_namespace)
    try:
        ns = _ns(routes[0], default_namespace)
        relative = gw.version_weights(gw.backends(routes[0], ns), gw.service_versions(services, ns))
    except InputError:
        return None
    total = sum(relative.values())
    if any(w * 100 % total for w in relative.values()):
        return None
    subsets = {}
    for svc in services:
        selector = dict((svc.get("spec") or {}).get("selector") or {})
        if gw.VERSION_LABEL in selector:
            subsets[str(selector[gw.VERSION_LABEL])] = {k: str(v) for k, v in selector.items() if k != "app"}
    return subsets, {v: w * 100 // total for v, w in relative.items()}
