"""The Istio manifests of the lab, rendered from the templates in ``setup/templates/`` -- the one source of truth.

The cluster path applies these documents with kubectl; the local mesh translates the *same* documents into
Envoy configuration (setup/mesh). Parameters: namespace, ingress host, service, port, subsets, weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jinja2

from splitproof.setup.errors import ConfigError
from splitproof.setup.safeyaml import YamlInputError, load_documents

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
API_VERSIONS = ("networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3")

# The documents the mesh is made of, in the order they must be applied (DestinationRule before the weighted VS).
MESH_TEMPLATES = (
    "gateway.yaml.j2",
    "frontend-vs.yaml.j2",
    "frontend-internal-vs.yaml.j2",
    "destinationrule.yaml.j2",
    "vs-recommendation.yaml.j2",
)


def _default_subsets() -> dict[str, dict[str, str]]:
    return {"production": {"version": "production"}, "canary": {"version": "canary"}}


def _default_weights() -> dict[str, int]:
    return {"production": 80, "canary": 20}


@dataclass(frozen=True)
class CanaryParams:
    namespace: str = "online-boutique"
    host: str = "*"  # the shop's ingress host (lab: "$STUDENT.cloud-montreal.ca")
    service: str = "recommendationservice"
    port: int = 8080
    subsets: Mapping[str, Mapping[str, str]] = field(default_factory=_default_subsets)
    weights: Mapping[str, int] = field(default_factory=_default_weights)
    api_version: str = "networking.istio.io/v1"
    version_header: str | None = None  # optional: headers.response.set {<header>: <subset>} per destination

    def with_weights(self, weights: Mapping[str, int]) -> CanaryParams:
        return replace(self, weights=dict(weights))

    def validate(self) -> None:
        if self.api_version not in API_VERSIONS:
            raise ConfigError(f"unsupported apiVersion {self.api_version!r} (use one of {', '.join(API_VERSIONS)})")
        validate_weights(self.weights, self.subsets)


def canary_weights(canary_percent: int) -> dict[str, int]:
    """{'production': 100-P, 'canary': P} for the lab's two subsets."""
    if isinstance(canary_percent, bool) or not isinstance(canary_percent, int) or not 0 <= canary_percent <= 100:
        raise ConfigError(f"canary weight must be an integer from 0 to 100, got {canary_percent!r}")
    return {"production": 100 - canary_percent, "canary": canary_percent}


def parse_weights(spec: str) -> dict[str, int]:
    """Parse ``production=80,canary=20`` into an ordered dict (sum/range checked by validate_weights)."""
    out: dict[str, int] = {}
    for part in spec.split(","):
        name, sep, value = part.strip().partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"weights must look like production=80,canary=20, got {spec!r}")
        if name in out:
            raise ConfigError(f"subset {name!r} given twice in {spec!r}")
        try:
            out[name] = int(value)
        except ValueError:
            raise ConfigError(f"weight for {name!r} must be an integer, got {value.strip()!r}") from None
    return out


def validate_weights(weights: Mapping[str, int], subsets: Mapping[str, Any] | None = None) -> None:
    if not weights:
        raise ConfigError("no weights given")
    for name, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= 100:
            raise ConfigError(f"weight for {name!r} must be an integer from 0 to 100, got {w!r}")
    total = sum(weights.values())
    if total != 100:
        raise ConfigError(f"weights must sum to 100, got {total} ({format_weights(weights)})")
    if subsets is not None:
        unknown = [name for name in weights if name not in subsets]
        if unknown:
            raise ConfigError(f"weights name subsets the DestinationRule does not define: {', '.join(unknown)}")


def format_weights(weights: Mapping[str, int]) -> str:
    """``production=80,canary=20`` -- the one spelling of weights in messages and tables."""
    return ",".join(f"{k}={v}" for k, v in weights.items())



def weighted_route(vs: Mapping[str, Any]) -> dict[str, int]:
    """The split a VirtualService document configures, as {subset: weight} -- the one reading of it that the
    verifier (expected split), the local mesh and cluster status share.

    Takes the route that catches the remaining traffic: the last ``http`` entry without ``match`` (a canary VS
    often routes testers by header first), or the only entry. A destination without a subset is named by its
    host's short name. A single destination without ``weight`` gets 100 (Istio's rule); with several, a missing
    weight is an error. Raises ConfigError with a one-line reason.
    """
    meta = vs.get("metadata")
    name = str(meta.get("name", "?")) if isinstance(meta, Mapping) else "?"
    spec = vs.get("spec")
    if not isinstance(spec, Mapping):
        raise ConfigError(f"VirtualService {name}: no spec")
    http = spec.get("http")
    if not isinstance(http, list) or not http:
        raise ConfigError(f"VirtualService {name}: no http routes (only http/gRPC routes are supported)")
    unmatched = [r for r in http if isinstance(r, Mapping) and not r.get("match")]
    if unmatched:
        rule = unmatched[-1]
    elif len(http) == 1 and isinstance(http[0], Mapping):
        rule = http[0]
    else:
        raise ConfigError(f"VirtualService {name}: every http route has a match condition; "
                          "cannot tell which one carries the split")
    route = rule.get("route")
    if not isinstance(route, list) or not route:
        raise ConfigError(f"VirtualService {name}: the http route has no destinations")
    weights: dict[str, int] = {}
    for entry in route:
        dest = entry.get("destination") if isinstance(entry, Mapping) else None
        if not isinstance(dest, Mapping) or not isinstance(dest.get("host"), str):
            raise ConfigError(f"VirtualService {name}: a route destination has no host")
        version = str(dest.get("subset") or dest["host"].split(".")[0])
        weight = entry.get("weight")
        if weight is None:
            if len(route) != 1:
                raise ConfigError(f"VirtualService {name}: destination {version!r} has no weight")
            weight = 100
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise ConfigError(f"VirtualService {name}: weight of {version!r} must be an integer, got {weight!r}")
        if version in weights:
            raise ConfigError(f"VirtualService {name}: subset {version!r} appears twice in the route")
        weights[version] = weight
    return weights


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,  # noqa: S701 -- YAML, not HTML
)


def render(template: str, params: CanaryParams, **extra: Any) -> str:
    """Render one template to YAML text."""
    params.validate()
    context = {
        "namespace": params.namespace,
        "host": params.host,
        "service": params.service,
        "port": params.port,
        "subsets": {k: dict(v) for k, v in params.subsets.items()},
        "weights": dict(params.weights),
        "api_version": params.api_version,
        "version_header": params.version_header,
        **extra,
    }
    try:
        return _ENV.get_template(template).render(**context)
    except jinja2.TemplateNotFound:
        raise ConfigError(f"no such template: {template}") from None


def documents(template: str, params: CanaryParams, **extra: Any) -> list[dict[str, Any]]:
    """Render one template and parse it (setup.safeyaml: the values come from the user) into its documents."""
    try:
        return [doc for doc in load_documents(render(template, params, **extra), f"template {template}") if doc]
    except YamlInputError as exc:
        raise ConfigError(str(exc)) from None


def mesh_documents(params: CanaryParams) -> list[dict[str, Any]]:
    """Gateway, frontend VirtualServices, DestinationRule and the weighted VirtualService, in apply order."""
    docs: list[dict[str, Any]] = []
    for name in MESH_TEMPLATES:
        docs.extend(documents(name, params))
    return docs


def mesh_yaml(params: CanaryParams) -> str:
    """All mesh documents as one multi-document YAML stream."""
    return "---\n".join(render(name, params) for name in MESH_TEMPLATES)
