"""Pure readings of live Kubernetes objects (``kubectl get -o json``): pods without a sidecar, a running pod to
ask, the LoadBalancer address of a Service."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

SIDECAR = "istio-proxy"


def pods_without_sidecar(pods: Sequence[Mapping[str, Any]]) -> list[str]:
    """Names of live pods (not finished, not terminating) that have no istio-proxy container."""
    missing = []
    for pod in pods:
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            continue
        if pod.get("metadata", {}).get("deletionTimestamp"):
            continue
        spec = pod.get("spec", {})
        names = {c.get("name") for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])}
        if SIDECAR not in names:
            missing.append(str(pod.get("metadata", {}).get("name")))
    return sorted(missing)


def running_pod(pods: Sequence[Mapping[str, Any]]) -> str | None:
    """The first (by name) running, not terminating pod whose containers are all ready (its proxy answers)."""
    ready = [p for p in pods if p.get("status", {}).get("phase") == "Running"
             and not p.get("metadata", {}).get("deletionTimestamp")
             and all(c.get("ready", True) for c in p.get("status", {}).get("containerStatuses") or [])]
    names = sorted(str(p["metadata"]["name"]) for p in ready)
    return names[0] if names else None


def ingress_address(service: Mapping[str, Any] | None) -> str | None:
    for entry in (service or {}).get("status", {}).get("loadBalancer", {}).get("ingress") or []:
        address = entry.get("ip") or entry.get("hostname")
        if address:
            return str(address)
    return None
