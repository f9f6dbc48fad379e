"""Every document the cluster workflow applies, rendered from setup/templates (the mesh ones via setup.manifests).

The Gateway, the frontend VirtualServices, the DestinationRule and the weighted VirtualService are the very
documents the local mesh translates (``setup.manifests.documents`` on ``MESH_TEMPLATES``); the cluster-only ones
(egress ServiceEntries, canary Deployment, production label patch, gRPC gateway, Locust) have templates of their
own beside them. The gateway-bound gRPC VirtualService is derived from the mesh one, so its weights cannot drift.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

from splitproof.setup.cluster.options import CANARY_DEPLOYMENT, SERVICE, Options
from splitproof.setup.manifests import GATEWAY_API_TEMPLATES, MESH_TEMPLATES, documents, render
from splitproof.verifier.errors import InputError

GATEWAY_T, FRONTEND_VS_T, FRONTEND_INTERNAL_VS_T, DESTINATION_RULE_T, WEIGHTED_VS_T = MESH_TEMPLATES
VERSION_SERVICES_T, HTTPROUTE_T = GATEWAY_API_TEMPLATES[3:]
SERVICE_ENTRIES_T = "serviceentries.yaml.j2"
CANARY_T = "canary-deployment.yaml.j2"
PATCH_T = "production-label-patch.json.j2"
GRPC_GATEWAY_T = "grpc-gateway.yaml.j2"
LOCUST_T = "locust.yaml.j2"

GRPC_GATEWAY_NAME = f"{SERVICE}-grpc-gateway"
GRPC_VS_NAME = f"{SERVICE}-grpc-ingress"
GRPC_GATEWAY_PORT = 80

Doc = dict[str, Any]


def _one(docs: list[Doc], template: str) -> Doc:
    if len(docs) != 1:
        raise InputError(f"{template} rendered {len(docs)} documents, expected 1")
    return docs[0]


def ingress_documents(opts: Options) -> list[Doc]:
    """Lab 3.1/3.2: the frontend Gateway, the frontend VirtualService for --host, the internal frontend VS."""
    params = opts.params()
    return [_one(documents(t, params), t) for t in (GATEWAY_T, FRONTEND_VS_T, FRONTEND_INTERNAL_VS_T)]


def egress_documents(opts: Options) -> list[Doc]:
    """Lab 4 (outside the mesh): the two ServiceEntries."""
    return documents(SERVICE_ENTRIES_T, opts.params())


def grpc_gateway_documents(opts: Options) -> list[Doc]:
    return documents(GRPC_GATEWAY_T, opts.params(), gateway_name=GRPC_GATEWAY_NAME, grpc_port=GRPC_GATEWAY_PORT,
                     grpc_host=opts.grpc_authority)


def destination_rule(opts: Options) -> Doc:
    return _one(documents(DESTINATION_RULE_T, opts.params()), DESTINATION_RULE_T)


def version_services(opts: Options) -> list[Doc]:
    """Gateway API routing: one Service per version (``recommendationservice-canary``), selecting its pods."""
    return documents(VERSION_SERVICES_T, opts.params())


def http_route(opts: Options) -> Doc:
    """Gateway API routing: the weighted HTTPRoute bound to the Service, sending to the per-version Services."""
    return _one(documents(HTTPROUTE_T, opts.params()), HTTPROUTE_T)


def weighted_virtual_service(opts: Options) -> Doc:
    return _one(documents(WEIGHTED_VS_T, opts.params()), WEIGHTED_VS_T)


def grpc_virtual_service(opts: Options) -> Doc:
    """The weighted VirtualService bound to the gRPC gateway: the mesh one with another name, host and gateway."""
    doc = copy.deepcopy(weighted_virtual_service(opts))
    doc["metadata"]["name"] = GRPC_VS_NAME
    spec = doc["spec"]
    doc["spec"] = {"hosts": [opts.grpc_authority], "gateways": [GRPC_GATEWAY_NAME],
                   **{k: v for k, v in spec.items() if k != "hosts"}}
    return doc


def routing_documents(opts: Options, gateway_hosts: Sequence[str] | None = None) -> list[Doc]:
    """What the weights step applies: the mesh route, and the gateway-bound one answering ``gateway_hosts``
    (default: the gRPC gateway's host when --grpc-gateway is on, else none) -- same weights in both."""
    if gateway_hosts is None:
        gateway_hosts = [opts.grpc_authority] if opts.grpc_gateway else []
    docs = [weighted_virtual_service(opts)]
    if gateway_hosts:
        grpc = grpc_virtual_service(opts)
        grpc["spec"]["hosts"] = list(gateway_hosts)
        docs.append(grpc)
    return docs


def subset_labels(opts: Options, subset: str) -> dict[str, str]:
    params = opts.params()
    if subset not in params.subsets:
        raise InputError(f"the DestinationRule defines no subset {subset!r}")
    return dict(params.subsets[subset])


def production_patch(opts: Options) -> str:
    """Lab 4 step 1: the JSON patch adding the production subset's labels to the Deployment's pod template."""
    text = render(PATCH_T, opts.params(), labels=subset_labels(opts, "production")).strip()
    json.loads(text)  # a template mistake must fail here, not in kubectl
    return text


def production_patch_ops(opts: Options) -> list[dict[str, Any]]:
    ops = json.loads(production_patch(opts))
    assert isinstance(ops, list)
    return ops


def unpatch(opts: Options, live_labels: dict[str, str]) -> str | None:
    """The reverse JSON patch for ``down`` (remove the production labels we added), or None if none is present."""
    ops = [{"op": "remove", "path": op["path"]} for op in production_patch_ops(opts)
           if op["path"].rsplit("/", 1)[1].replace("~1", "/").replace("~0", "~") in live_labels]
    return json.dumps(ops) if ops else None


def canary_deployment(opts: Options, image: str, pull_policy: str, env: dict[str, str] | None = None,
                      replicas: int = 1) -> Doc:
    """Lab 4 step 7: the canary Deployment, labelled with the canary subset's labels."""
    labels = {k: v for k, v in subset_labels(opts, "canary").items() if k != "app"}
    doc = _one(documents(CANARY_T, opts.params(), name=CANARY_DEPLOYMENT, app=SERVICE, labels=labels, image=image,
                         pull_policy=pull_policy, env=env or {}, replicas=replicas), CANARY_T)
    return doc
