"""kubectl and istioctl through the Runner: read live state as JSON, apply only what differs (idempotent)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from splitproof.setup.cluster.runner import CHANGE, READ, WAIT, CommandFailed, Result, Runner
from splitproof.setup.errors import SetupError
from splitproof.verifier.exitcodes import ExitCode

# kind -> the fully qualified resource name kubectl is given (never the bare "gateway": Gateway API has one too).
RESOURCES = {
    "Gateway": "gateways.networking.istio.io",
    "VirtualService": "virtualservices.networking.istio.io",
    "DestinationRule": "destinationrules.networking.istio.io",
    "ServiceEntry": "serviceentries.networking.istio.io",
    "Deployment": "deployments.apps",
    "Job": "jobs.batch",
    "Service": "services",
    "ConfigMap": "configmaps",
    "Namespace": "namespaces",
    "Pod": "pods",
    "HTTPRoute": "httproutes.gateway.networking.k8s.io",
    "CustomResourceDefinition": "customresourcedefinitions.apiextensions.k8s.io",
}
CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition"}
# The parts of a document we own and compare with the live object (the server adds status, defaults, metadata).
COMPARED = ("spec", "data")
GET_TIMEOUT = 30.0
APPLY_TIMEOUT = 120.0

CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"


def resource_of(kind: str) -> str:
    try:
        return RESOURCES[kind]
    except KeyError:
        raise SetupError(f"no resource mapping for kind {kind!r}") from None


def ref(doc: Mapping[str, Any]) -> str:
    """'Kind/name' of a document, for messages."""
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def covers(live: Any, want: Any) -> bool:
    """True when every field of ``want`` is present in ``live`` with the same value.

    Maps may have extra keys in ``live`` (server defaults); lists must have the same length and match item by item.
    """
    if isinstance(want, Mapping):
        return isinstance(live, Mapping) and all(k in live and covers(live[k], v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(live, list) and len(live) == len(want) and all(map(covers, live, want))
    return bool(live == want)


def desired_fields(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What of ``doc`` must be live for it to count as applied: spec/data plus our labels and annotations."""
    out: dict[str, Any] = {k: doc[k] for k in COMPARED if k in doc}
    meta = {k: doc["metadata"][k] for k in ("labels", "annotations") if doc.get("metadata", {}).get(k)}
    if meta:
        out["metadata"] = meta
    return out


def is_not_found(result: Result) -> bool:
    text = result.stderr.lower()
    return "notfound" in text or "not found" in text


def to_yaml(docs: Sequence[Mapping[str, Any]]) -> str:
    return "---\n".join(yaml.safe_dump(dict(d), sort_keys=False, default_flow_style=False) for d in docs)


@dataclass
class Kube:
    runner: Runner
    context: str | None = None

    # ------------------------------------------------------------------ argv builders
    def kubectl(self, *args: str) -> list[str]:
        return ["kubectl", *(["--context", self.context] if self.context else []), *args]

    def istioctl(self, *args: str) -> list[str]:
        return ["istioctl", *(["--context", self.context] if self.context else []), *args]

    # ------------------------------------------------------------------ reads
    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The live object as JSON, or None when it does not exist (any other failure raises)."""
        argv = self.kubectl("get", resource_of(kind), name, *self._ns(kind, namespace), "-o", "json",
                            f"--request-timeout={GET_TIMEOUT:g}s")
        result = self.runner.run(argv, kind=READ, check=False, timeout=GET_TIMEOUT + 10)
        if result.ok:
            return _json(result)
        if self.runner.dry_run or is_not_found(result):
            return None
        if "doesn't have a resource type" in result.stderr and ".istio.io" in resource_of(kind):
            raise CommandFailed(result, f"reading {kind}/{name} (Istio's CRDs are not installed: run "
                                        "`canary-setup istio` first)")
        raise CommandFailed(result, f"reading {kind}/{name}")

    def list(self, kind: str, namespace: str | None = None, selector: str | None = None) -> list[dict[str, Any]]:
        argv = self.kubectl("get", resource_of(kind), *self._ns(kind, namespace),
                            *(["-l", selector] if selector else []), "-o", "json",
                            f"--request-timeout={GET_TIMEOUT:g}s")
        result = self.runner.run(argv, kind=READ, check=False, timeout=GET_TIMEOUT + 10)
        if self.runner.dry_run and not result.ok:
            return []
        if not result.ok:
            raise CommandFailed(result, f"listing {kind}")
        items = _json(result).get("items")
        return list(items) if isinstance(items, list) else []

    # ------------------------------------------------------------------ writes
    def apply(self, docs: Sequence[Mapping[str, Any]], namespace: str | None = None, what: str | None = None) -> None:
        """``kubectl apply -f -`` with the documents as YAML on stdin."""
        argv = self.kubectl("apply", "-f", "-", *(["-n", namespace] if namespace else []))
        self.runner.run(argv, kind=CHANGE, stdin=to_yaml(docs), timeout=APPLY_TIMEOUT, what=what)

    def ensure(self, doc: Mapping[str, Any]) -> str:
        """Apply ``doc`` unless the live object already matches it; returns created/updated/unchanged."""
        meta = doc.get("metadata", {})
        live = self.get(str(doc["kind"]), str(meta["name"]), meta.get("namespace"))
        if live is not None and covers(live, desired_fields(doc)):
            return UNCHANGED
        self.apply([doc], what=f"applying {ref(doc)}")
        return CREATED if live is None else UPDATED

    def delete(self, kind: str, name: str, namespace: str | None = None, timeout: float = APPLY_TIMEOUT) -> Result:
        argv = self.kubectl("delete", resource_of(kind), name, *self._ns(kind, namespace), "--ignore-not-found",
                            f"--timeout={timeout:g}s")
        return self.runner.run(argv, kind=CHANGE, timeout=timeout + 30, what=f"deleting {kind}/{name}")

    def rollout_status(self, deployment: str, namespace: str, timeout: float) -> None:
        argv = self.kubectl("rollout", "status", f"deployment/{deployment}", "-n", namespace,
                            f"--timeout={timeout:g}s")
        result = self.runner.run(argv, kind=WAIT, check=False, timeout=timeout + 30)
        if not result.ok:
            timed_out = "timed out" in (result.stderr + result.stdout).lower()
            raise CommandFailed(result, f"deployment/{deployment} did not become ready",
                                ExitCode.TIMEOUT if timed_out else ExitCode.FAIL)

    @staticmethod
    def _ns(kind: str, namespace: str | None) -> list[str]:
        return [] if kind in CLUSTER_SCOPED or not namespace else ["-n", namespace]


def _json(result: Result) -> dict[str, Any]:
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise SetupError(f"`{' '.join(result.argv)}` did not print JSON: {result.stdout[:200]!r}") from None
    if not isinstance(data, dict):
        raise SetupError(f"`{' '.join(result.argv)}` printed JSON that is not an object")
    return data
