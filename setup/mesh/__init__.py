"""The local mesh: the lab's Istio YAML enforced by a real Envoy on 127.0.0.1 (no cluster needed).

The Gateway, VirtualServices and DestinationRule come from setup.manifests (the same templates the cluster path
applies) and are translated into Envoy configuration the way istiod does (setup/mesh/translate.py). Topology:

- ingress listener (Gateway port 80 -> a local port) -> frontend instances;
- one outbound ("sidecar") listener per service: the frontend reaches recommendationservice and the catalog
  through them, so the weighted VirtualService decides every product page (4 items = production, 2 = canary);
- the recommendationservice outbound listener is also the mesh gRPC entry for in-mesh clients (verify-split
  --target, the Locust gRPC user): Envoy draws the split per call;
- instances with pod labels: productcatalogservice, recommendationservice ``version: production``
  (MAX_RESPONSES 5) and ``version: canary`` (2), frontend -- replicas configurable.

Python API (what the verifier/loadtest tests and the demo use)::

    from splitproof.setup.manifests import CanaryParams
    from splitproof.setup.mesh import LocalMesh

    with LocalMesh(CanaryParams(), replicas={"production": 1, "canary": 1}) as mesh:  # starts in the foreground
        mesh.ingress_url      # "http://127.0.0.1:PORT"  -- product pages through the ingress gateway
        mesh.grpc_entry       # "127.0.0.1:PORT"         -- gRPC RecommendationService, split per call
        mesh.admin_url        # "http://127.0.0.1:PORT"  -- Envoy admin
        mesh.mesh_address("productcatalogservice")       # any service's outbound listener
        mesh.set_weights(50)  # or {"production": 50, "canary": 50}; returns once Envoy serves them (seconds)
        mesh.router           # the Router (setup.router): set_weights / served_weights() / wait_served()
        mesh.apply(CanaryParams(subsets=...))            # any params change (re-rendered from the templates)
        mesh.status()         # MeshStatus: weights read back from Envoy's config_dump, subsets, processes, warnings
    # leaving the block stops every process it started

Keyword arguments: ``replicas`` (production/canary 0-8, frontend/productcatalogservice 1-8), ``state_dir`` (default:
a fresh temporary directory, removed on stop -- give one to use ``canary-setup local status --state-dir``),
``documents`` (Istio documents to enforce instead of the rendered templates), ``ingress_port``, ``grpc_port``,
``admin_port`` (0 = ephemeral, the default), ``envoy`` (binary path), ``concurrency`` (Envoy worker threads),
``faults`` (version -> setup.mesh.faults.InstanceFaults: a bad canary, e.g.
``{"canary": parse_instance_faults(error_rate=5, delay_ms=40)}``; kept in the state, restarts keep it),
``prometheus`` (also run a real Prometheus scraping the mesh every 1 s: ``mesh.prometheus_url``; the Istio metrics
are at ``mesh.exporter_url``, the TEXT access logs in ``mesh.access_log_dir``).
Errors are verifier.errors.SplitproofError subclasses (InputError for an unsupported Istio field, PortInUseError,
MissingBinaryError, WaitTimeoutError). Envoy and the instances are children of an internal supervisor thread
and get SIGTERM if this process dies, so nothing is orphaned even without ``stop()``.

Command line: ``canary-setup local up|status|weights|down`` (setup/mesh/cli.py).

Modules, bottom up: ``faults`` (injected faults per version, pure) -> ``topology`` (services and instances,
pure) -> ``fields``, ``hosts``, ``istio_model`` (Istio documents parsed and validated) -> ``envoy_build``
(Envoy resources), ``inbound`` (the telemetry hops: an inbound listener per instance, Istio's access logs on every
HCM) -> ``translate`` (the two together) ->
``xds`` (file-based xDS), ``envoy`` (binary, bootstrap), ``admin`` (Envoy's admin API, config_dump) -> ``state``,
``statedir`` (the typed state and its directory) -> ``reconfigure`` (state -> files -> served), ``edit`` (user
documents reweighted) -> ``router`` (LocalRouter), ``status`` (MeshStatus) -> ``exporter`` (Istio's standard
metrics from the access logs), ``prometheus`` (the exporter and a real Prometheus) -> ``supervise`` (the children) ->
``local`` (LocalMesh) -> ``daemon`` (the detached supervisor), ``cli`` (``canary-setup local``).
"""

from __future__ import annotations

from splitproof.setup.mesh.local import LocalMesh
from splitproof.setup.mesh.router import LocalRouter
from splitproof.setup.mesh.status import MeshStatus, mesh_status

__all__ = ["LocalMesh", "LocalRouter", "MeshStatus", "mesh_status"]
