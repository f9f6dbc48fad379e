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

from splitproof.verifier.errors import InputError
from splitproof.verifier.istio import API_VERSIONS, validate_weights
from splitproof.verifier.safeyaml import YamlInputError, load_documents

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"

# The documents the mesh is made of, in the order they must be applied (DestinationRule before the weighted VS).
MESH_TEMPLATES = (
    "gateway.yaml.j2",
    "frontend-vs.yaml.j2",
    "frontend-internal-vs.yaml.j2",
    "destinationrule.yaml.j2",
    "vs-recommendation.yaml.j2",
)
# Routing flavours (``--routing``): Istio's VirtualService + DestinationRule subsets, or the Gateway API's
# per-version Services + an HTTPRoute bound to the Service (GAMMA). The ingress (Istio Gateway + the frontend
# VirtualServices) is the same in both: the lab's static-IP istio-ingressgateway stays.
ISTIO_ROUTING = "istio"
GATEWAY_API_ROUTING = "gateway-api"
ROUTINGS = (ISTIO_ROUTING, GATEWAY_API_ROUTING)
GATEWAY_API_TEMPLATES = (
    "gateway.yaml.j2",
    "frontend-vs.yaml.j2",
    "frontend-internal-vs.yaml.j2",
    "services-versions.yaml.j2",
    "httproute-recommendation.yaml.j2",
)


def templates(routing: str) -> tuple[str, ...]:
    """The mesh templates of a routing flavour, in apply order (backends before the route that sends to them)."""
    return GATEWAY_API_TEMPLATES if routing == GATEWAY_API_ROUTING else MESH_TEMPLATES


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
    routing: str = ISTIO_ROUTING       # or GATEWAY_API_ROUTING: per-version Services + HTTPRoute

    def version_service(self, version: str) -> str:
        """The per-version Service of the Gateway API routing (``recommendationservice-canary``)."""
        return f"{self.service}-{version}"

    def with_weights(self, weights: Mapping[str, int]) -> CanaryParams:
        return replace(self, weights=dict(weights))

    def validate(self) -> None:
        if self.api_version not in API_VERSIONS:
            raise InputError(f"unsupported apiVersion {self.api_version!r} (use one of {', '.join(API_VERSIONS)})")
        if self.routing not in ROUTINGS:
            raise InputError(f"unknown routing {self.routing!r} (use one of {', '.join(ROUTINGS)})")
        validate_weights(self.weights, self.subsets)


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
        raise InputError(f"no such template: {template}") from None


def documents(template: str, params: CanaryParams, **extra: Any) -> list[dict[str, Any]]:
    """Render one template and parse it (verifier.safeyaml: the values come from the user) into its documents."""
    try:
        return [doc for doc in load_documents(render(template, params, **extra), f"template {template}") if doc]
    except YamlInputError as exc:
        raise InputError(str(exc)) from None


def mesh_documents(params: CanaryParams) -> list[dict[str, Any]]:
    """Gateway, frontend VirtualServices, then DestinationRule + weighted VirtualService (Istio routing) or the
    per-version Services + HTTPRoute (Gateway API routing), in apply order."""
    docs: list[dict[str, Any]] = []
    for name in templates(params.routing):
        docs.extend(documents(name, params))
    return docs


def mesh_yaml(params: CanaryParams) -> str:
    """All mesh documents as one multi-document YAML stream."""
    return "---\n".join(render(name, params) for name in templates(params.routing))
