"""The Kubernetes Gateway API's routing vocabulary, shared by verify-split and canary-setup: the weighted rule of an
HTTPRoute, its relative backend weights, and the version each backend Service selects.

A canary in the Gateway API is an ``HTTPRoute`` whose ``parentRefs`` name the Service (GAMMA: mesh traffic to it) or
a Gateway (ingress), and whose rule sends to one Service per version with relative ``weight``s. The rules here are
the spec's (https://github.com/kubernetes-sigs/gateway-api, ``apis/v1/httproute_types.go`` and ``shared_types.go``,
standard channel) and Istio's reading of them (istio/istio ``pilot/pkg/config/kube/gateway/conversion.go``):

- ``weight`` defaults to 1, is from 0 to 1,000,000, "is not a percentage and the sum of weights does not need to
  equal 100": a backend receives weight / sum. Weight 0 sends it nothing; every weight 0 answers 500 (Istio: a
  direct response).
- a rule without ``matches`` matches everything (the default is a ``PathPrefix`` ``/`` match): the rule that carries
  the split is :func:`verifier.istio.split_carrier`'s -- the last catch-all rule, else the only rule -- so a tester
  header rule before it is skipped, as for a VirtualService.
- a ``backendRef`` is a core Service by default (``group: ""``, ``kind: Service``); the version it carries is its
  selector's ``version`` label (the lab's pod label).

Every bad input raises :class:`~splitproof.verifier.errors.InputError` with a one-line reason naming the field path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from splitproof.verifier.errors import InputError
from splitproof.verifier.istio import split_carrier

GROUP = "gateway.networking.k8s.io"
API_VERSIONS = (f"{GROUP}/v1", f"{GROUP}/v1beta1")   # HTTPRoute: v1 (GA since v1.0), v1beta1 still served
HTTPROUTE = "HTTPRoute"
# The pinned release (standard channel) canary-setup installs; Istio's Gateway API docs install the same one.
CRDS_VERSION = "v1.4.0"
CRDS_URL = f"https://github.com/kubernetes-sigs/gateway-api/releases/download/{CRDS_VERSION}/standard-install.yaml"
CRD_HTTPROUTES = f"httproutes.{GROUP}"
BUNDLE_VERSION_ANNOTATION = f"{GROUP}/bundle-version"
MAX_WEIGHT = 1_000_000
DEFAULT_WEIGHT = 1
VERSION_LABEL = "version"


@dataclass(frozen=True)
class Backend:
    """One ``backendRefs`` entry: the Service (name, namespace), its port, its relative weight."""

    name: str
    namespace: str
    port: int | None
    weight: int


def _name(route: Mapping[str, Any]) -> str:
    meta = route.get("metadata")
    if not isinstance(meta, Mapping):
        return "?"
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name', '?')}" if ns else str(meta.get("name", "?"))


def catches_all(rule: Mapping[str, Any]) -> bool:
    """A rule that matches every request: no ``matches``, or only ``path: PathPrefix /`` (the spec's default)
    matches with no header, query or method condition."""
    matches = rule.get("matches")
    if not matches:
        return True
    if not isinstance(matches, list):
        return False
    for m in matches:
        if not isinstance(m, Mapping) or any(m.get(k) for k in ("headers", "queryParams", "method")):
            continue
        path = m.get("path") or {}
        if isinstance(path, Mapping) and path.get("type", "PathPrefix") == "PathPrefix" and \
                path.get("value", "/") == "/":
            return True
    return False


def weighted_rule(route: Mapping[str, Any]) -> tuple[int, Mapping[str, Any]]:
    """(index, rule) of the rule that carries the split (:func:`split_carrier` over ``spec.rules``)."""
    spec = route.get("spec")
    if not isinstance(spec, Mapping):
        raise InputError(f"HTTPRoute {_name(route)}: no spec")
    rules = spec.get("rules")
    if not isinstance(rules, list) or not rules:
        raise InputError(f"HTTPRoute {_name(route)}: spec.rules is empty")
    indexed = [(i, r) for i, r in enumerate(rules) if isinstance(r, Mapping)]
    carrier = split_carrier(indexed, lambda ir: catches_all(ir[1]))
    if carrier is None:
        raise InputError(f"HTTPRoute {_name(route)}: every rule has a match condition; cannot tell which one "
                         "carries the split")
    return carrier


def backends(route: Mapping[str, Any], default_namespace: str = "") -> list[Backend]:
    """The backends of the weighted rule, weights defaulted (1) and checked (integers from 0 to 1,000,000)."""
    index, rule = weighted_rule(route)
    meta = route.get("metadata") if isinstance(route.get("metadata"), Mapping) else {}
    route_ns = str(meta.get("namespace") or default_namespace)
    refs = rule.get("backendRefs")
    where = f"HTTPRoute {_name(route)}: spec.rules[{index}].backendRefs"
    if not isinstance(refs, list) or not refs:
        raise InputError(f"{where} is empty (the rule forwards nowhere)")
    out: list[Backend] = []
    for j, ref in enumerate(refs):
        path = f"{where}[{j}]"
        if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str) or not ref["name"]:
            raise InputError(f"{path}.name is required")
        group, kind = ref.get("group", ""), ref.get("kind", "Service")
        if group not in ("", None) or kind != "Service":
            raise InputError(f"{path}: {kind} of group {group!r} is not a Service (only Service backends carry a "
                             "version)")
        weight = ref.get("weight", DEFAULT_WEIGHT)
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= MAX_WEIGHT:
            raise InputError(f"{path}.weight must be an integer from 0 to {MAX_WEIGHT:,}, got {weight!r}")
        port = ref.get("port")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
            raise InputError(f"{path}.port must be a port number, got {port!r}")
        out.append(Backend(ref["name"], str(ref.get("namespace") or route_ns), port, weight))
    if not any(b.weight for b in out):
        raise InputError(f"{where}: every weight is 0 (Istio answers 500 to every request of this rule)")
    return out


def service_versions(services: Iterable[Mapping[str, Any]], default_namespace: str = "") -> dict[tuple[str, str], str]:
    """{(namespace, Service name): version} for every Service whose selector has a ``version`` label."""
    out: dict[tuple[str, str], str] = {}
    for svc in services:
        meta = svc.get("metadata") if isinstance(svc.get("metadata"), Mapping) else {}
        spec = svc.get("spec") if isinstance(svc.get("spec"), Mapping) else {}
        selector = spec.get("selector") if isinstance(spec.get("selector"), Mapping) else {}
        if isinstance(meta.get("name"), str) and isinstance(selector.get(VERSION_LABEL), str):
            out[(str(meta.get("namespace") or default_namespace), meta["name"])] = selector[VERSION_LABEL]
    return out


def version_weights(backend_list: Sequence[Backend], versions: Mapping[tuple[str, str], str],
                    what: str = "") -> dict[str, int]:
    """{version: relative weight}: each backend named by the version its Service selects (two Services selecting
    one version add up: they send to the same pods). InputError naming a backend with no known version."""
    out: dict[str, int] = {}
    for b in backend_list:
        version = versions.get((b.namespace, b.name))
        if version is None:
            raise InputError(f"{what or 'HTTPRoute'}: backend Service {b.namespace}/{b.name} has no "
                             f"{VERSION_LABEL!r} label in its selector (or its manifest is missing): cannot tell "
                             "which version it carries")
        out[version] = out.get(version, 0) + b.weight
    return out


def normalized(weights: Mapping[str, int]) -> dict[str, float]:
    """Relative weights -> fractions summing to 1 (weight / sum, the spec's rule)."""
    total = sum(weights.values())
    if total <= 0:
        raise InputError("every weight is 0")
    return {k: v / total for k, v in weights.items()}


def as_percentages(weights: Mapping[str, int]) -> dict[str, int] | None:
    """The weights as integer percentages when they are exactly that (sum 100), else None."""
    return dict(weights) if sum(weights.values()) == 100 else None


def parent_services(route: Mapping[str, Any], default_namespace: str = "") -> list[tuple[str, str]]:
    """(namespace, name) of every Service among the route's ``parentRefs`` (GAMMA mesh routing)."""
    meta = route.get("metadata") if isinstance(route.get("metadata"), Mapping) else {}
    route_ns = str(meta.get("namespace") or default_namespace)
    spec = route.get("spec") if isinstance(route.get("spec"), Mapping) else {}
    out = []
    for ref in spec.get("parentRefs") or []:
        if isinstance(ref, Mapping) and ref.get("kind") == "Service" and ref.get("group", "") in ("", None) \
                and isinstance(ref.get("name"), str):
            out.append((str(ref.get("namespace") or route_ns), ref["name"]))
    return out
