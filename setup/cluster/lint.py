"""Offline checks of Istio routing documents, the mistakes ``istioctl analyze`` (or a silent 503) would show later.

- weights of a route sum to 100, none negative;
- every routed subset is defined by a DestinationRule for that host;
- every subset's labels are carried by the pod template of some workload behind the service (else 503s);
- subsets whose selectors match the same pod template (e.g. one selecting only ``app``) inflate each other;
- VirtualService and DestinationRule live in the service's namespace;
- a VirtualService names gateways that exist; two VirtualServices do not claim the same host.

Documents without ``metadata.namespace`` are taken to be in the default namespace (what ``kubectl apply -n``
would do). With no Service document for a host, its pods are assumed to carry ``app: <service>`` (the Online
Boutique convention), and the finding says so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splitproof.verifier.errors import InputError
from splitproof.verifier.inputfile import InputFileError
from splitproof.verifier.safeyaml import YamlInputError, read_documents

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")
ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Finding:
    severity: str
    code: str
    resource: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity.upper():7} {self.code} {self.resource}: {self.message}"


@dataclass(frozen=True)
class Template:
    """A pod template: where it is and which labels its pods carry."""

    namespace: str
    workload: str
    labels: Mapping[str, str]


def load_documents(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in paths:
        try:
            loaded = [d for d in read_documents(str(path), "manifest") if d]
        except (InputFileError, YamlInputError) as exc:
            raise InputError(str(exc)) from None
        for doc in loaded:
            if not isinstance(doc, dict) or "kind" not in doc:
                raise InputError(f"{path}: a document without a kind")
            if doc["kind"] == "List":
                docs.extend(i for i in doc.get("items") or [] if isinstance(i, dict))
            else:
                docs.append(doc)
    return docs


def _ns(doc: Mapping[str, Any], default: str) -> str:
    return str(doc.get("metadata", {}).get("namespace") or default)


def _name(doc: Mapping[str, Any]) -> str:
    return str(doc.get("metadata", {}).get("name", "?"))


def _ref(doc: Mapping[str, Any], default: str) -> str:
    return f"{doc.get('kind')}/{_name(doc)}.{_ns(doc, default)}"


def resolve_host(host: str, namespace: str) -> tuple[str, str] | None:
    """(service, namespace) for a Kubernetes service host, short or qualified; None for other hosts."""
    parts = str(host).split(".")
    if "*" in host:
        return None
    if len(parts) == 1:
        return parts[0], namespace
    if len(parts) == 2:
        return parts[0], parts[1]
    if parts[2:] in (["svc"], ["svc", "cluster", "local"]):
        return parts[0], parts[1]
    return None


def pod_templates(docs: Sequence[Mapping[str, Any]], default_ns: str) -> list[Template]:
    out = []
    for doc in docs:
        if doc.get("kind") in WORKLOAD_KINDS:
            labels = doc.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {}
        elif doc.get("kind") == "Pod":
            labels = doc.get("metadata", {}).get("labels") or {}
        else:
            continue
        out.append(Template(_ns(doc, default_ns), f"{doc['kind']}/{_name(doc)}", {str(k): str(v)
                                                                                    for k, v in labels.items()}))
    return out


def production_template(params_namespace: str, service: str, production_labels: Mapping[str, str]) -> dict[str, Any]:
    """The upstream production Deployment as the canary step leaves it: ``app`` plus the patched labels."""
    labels = {"app": service, **production_labels}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": service, "namespace": params_namespace},
            "spec": {"template": {"metadata": {"labels": labels}}}}


def _matches(labels: Mapping[str, str], selector: Mapping[str, Any]) -> bool:
    return all(labels.get(str(k)) == str(v) for k, v in selector.items())


def lint_documents(docs: Sequence[Mapping[str, Any]], default_namespace: str) -> list[Finding]:
    findings: list[Finding] = []
    add = lambda sev, code, doc, msg: findings.append(Finding(sev, code, _ref(doc, default_namespace), msg))  # noqa: E731
    services = {(_name(d), _ns(d, default_namespace)): d for d in docs if d.get("kind") == "Service"}
    templates = pod_templates(docs, default_namespace)
    rules: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for doc in docs:
        if doc.get("kind") == "DestinationRule":
            target = resolve_host(str(doc.get("spec", {}).get("host", "")), _ns(doc, default_namespace))
            if target:
                rules[target].append(doc)
    gateways = {(_name(d), _ns(d, default_namespace)) for d in docs if d.get("kind") == "Gateway"}
    claimed: dict[tuple[str, str, str], str] = {}

    for doc in docs:
        kind, ns = doc.get("kind"), _ns(doc, default_namespace)
        if kind == "VirtualService":
            spec = doc.get("spec", {})
            bound = tuple(sorted(str(g) for g in spec.get("gateways") or ["mesh"]))
            for host in spec.get("hosts") or []:
                target = resolve_host(str(host), ns)
                if "mesh" in bound and target and target[1] != ns and "." in str(host):
                    add(WARNING, "L004", doc, f"host {host} is a service of namespace {target[1]}, not {ns}: "
                                              "this VirtualService does not route that service's own traffic")
                for gw in bound:
                    key = (str(host), gw, ns)
                    if key in claimed:
                        add(WARNING, "L007", doc, f"host {host} on {gw} is also claimed by {claimed[key]}: Istio "
                                                  "merges them in an unspecified order")
                    claimed[key] = _name(doc)
            for gw in spec.get("gateways") or []:
                if gw == "mesh":
                    continue
                gw_ns, _, gw_name = str(gw).rpartition("/")
                if (gw_name, gw_ns or ns) not in gateways:
                    add(WARNING, "L005", doc, f"gateway {gw} is not among the checked documents")
            for i, http in enumerate(spec.get("http") or []):
                _check_route(doc, ns, i, http.get("route") or [], rules, add)
        elif kind == "DestinationRule":
            target = resolve_host(str(doc.get("spec", {}).get("host", "")), ns)
            if target is None:
                continue
            service, service_ns = target
            if service_ns != ns:
                add(ERROR, "L004", doc, f"in namespace {ns} but its host {service} is in {service_ns}: keep the "
                                        "DestinationRule in the service's namespace")
            _check_subsets(doc, service, service_ns, services, templates, add)
    return findings


def _check_route(doc: Mapping[str, Any], ns: str, index: int, route: Sequence[Mapping[str, Any]],
                 rules: Mapping[tuple[str, str], list[Mapping[str, Any]]], add: Any) -> None:
    where = f"http[{index}]"
    weighted = [r for r in route if "weight" in r]
    if weighted or len(route) > 1:
        weights = [r.get("weight", 0) for r in route]
        bad = [w for w in weights if isinstance(w, bool) or not isinstance(w, int) or w < 0]
        if bad:
            add(ERROR, "L001", doc, f"{where}: weights must be non-negative integers, got {bad}")
        elif sum(weights) != 100:
            add(ERROR, "L001", doc, f"{where}: weights sum to {sum(weights)}, not 100 ({weights})")
    for r in route:
        dest = r.get("destination") or {}
        target = resolve_host(str(dest.get("host", "")), ns)
        if target is None:
            continue
        service, service_ns = target
        if service_ns != ns and dest.get("subset"):
            add(ERROR, "L004", doc, f"{where}: routes to {service}.{service_ns} from namespace {ns}: keep the "
                                    "VirtualService in the service's namespace")
        subset = dest.get("subset")
        if not subset:
            continue
        defined = rules.get(target, [])
        if not defined:
            add(ERROR, "L002", doc, f"{where}: subset {subset} of {service}: no DestinationRule for {service} in "
                                    f"{service_ns} (Istio answers 503)")
        elif not any(s.get("name") == subset for rule in defined for s in rule.get("spec", {}).get("subsets") or []):
            add(ERROR, "L002", doc, f"{where}: subset {subset} is not defined by DestinationRule "
                                    f"{_name(defined[0])} (Istio answers 503)")


def _check_subsets(doc: Mapping[str, Any], service: str, ns: str, services: Mapping[tuple[str, str], Any],
                   templates: Sequence[Template], add: Any) -> None:
    svc = services.get((service, ns))
    selector = (svc or {}).get("spec", {}).get("selector") or {"app": service}
    assumed = "" if svc else f" (no Service {service} given: assuming its pods carry app={service})"
    behind = [t for t in templates if t.namespace == ns and _matches(t.labels, selector)]
    if not behind:
        add(WARNING, "L003", doc, f"no pod template of {service} among the documents: subset labels not checked"
                                  + assumed)
        return
    selected: dict[str, list[str]] = {}
    for subset in doc.get("spec", {}).get("subsets") or []:
        labels = subset.get("labels") or {}
        matching = [t.workload for t in behind if _matches(t.labels, labels)]
        selected[str(subset.get("name"))] = matching
        if not matching:
            wanted = ",".join(f"{k}={v}" for k, v in labels.items()) or "(none)"
            add(ERROR, "L003", doc, f"subset {subset.get('name')} selects {wanted} but no pod template of "
                                    f"{service} carries it (traffic to it gets 503){assumed}")
    by_workload: dict[str, list[str]] = defaultdict(list)
    for name, workloads in selected.items():
        for workload in workloads:
            by_workload[workload].append(name)
    for workload, names in sorted(by_workload.items()):
        if len(names) > 1:
            add(WARNING, "L006", doc, f"subsets {', '.join(names)} all select the pods of {workload}: their "
                                      "shares mix (a subset selecting only app includes the canary)")
