"""``canary-setup status``: what exists, declared vs served weights, sidecar coverage, ``istioctl analyze``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from splitproof.setup.cluster import resources
from splitproof.setup.cluster.options import (
    CANARY_DEPLOYMENT,
    FRONTEND_SELECTOR,
    INGRESS_SELECTOR,
    ISTIO_NAMESPACE,
    PRODUCTION_DEPLOYMENT,
    SERVICE,
)
from splitproof.setup.cluster.proxy import fmt, fqdn, normalize, route_weights, virtual_service_weights
from splitproof.setup.cluster.runner import READ
from splitproof.setup.cluster.ui import Ui

if TYPE_CHECKING:
    from splitproof.setup.cluster.steps import Ctx


@dataclass
class StatusReport:
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # (what, state, ok|warn|bad)
    analyze: list[str] = field(default_factory=list)

    def add(self, what: str, state: str, verdict: str = "ok") -> None:
        self.rows.append((what, state, verdict))

    @property
    def healthy(self) -> bool:
        return all(v != "bad" for _, _, v in self.rows)


def _ready(deployment: dict[str, Any] | None) -> tuple[str, str]:
    if deployment is None:
        return "absent", "bad"
    want = int(deployment.get("spec", {}).get("replicas", 1))
    ready = int(deployment.get("status", {}).get("readyReplicas", 0) or 0)
    return f"{ready}/{want} ready", "ok" if ready >= want and want > 0 else "bad"


def collect_status(ctx: Ctx) -> StatusReport:
    from splitproof.setup.cluster.steps import ProxyTarget, pods_without_sidecar, routes_argv, running_pod

    kube, ns, out = ctx.kube, ctx.ns, StatusReport()
    namespace = kube.get("Namespace", ns)
    if namespace is None:
        out.add(f"namespace {ns}", "absent", "bad")
        return out
    injection = (namespace.get("metadata", {}).get("labels") or {}).get("istio-injection")
    out.add(f"namespace {ns}", f"istio-injection={injection or '(unset)'}", "ok" if injection == "enabled" else "bad")
    for name in (PRODUCTION_DEPLOYMENT, CANARY_DEPLOYMENT):
        out.add(f"deployment/{name}", *_ready(kube.get("Deployment", name, ns)))

    rule = kube.get("DestinationRule", SERVICE, ns)
    subsets = [str(s.get("name")) for s in (rule or {}).get("spec", {}).get("subsets") or []]
    out.add(f"DestinationRule/{SERVICE}", ", ".join(subsets) if rule else "absent", "ok" if rule else "bad")

    vs = kube.get("VirtualService", SERVICE, ns)
    declared = virtual_service_weights(vs, SERVICE) if vs else None
    out.add(f"VirtualService/{SERVICE}", fmt(declared) if vs else "absent", "ok" if declared else "bad")
    undefined = [s for s, w in (declared or {}).items() if w and s not in subsets]
    if undefined:
        out.add("routed subsets", f"not in the DestinationRule: {', '.join(undefined)}", "bad")

    targets: list[ProxyTarget] = []
    frontend = running_pod(kube.list("Pod", ns, FRONTEND_SELECTOR))
    if frontend:
        targets.append(ProxyTarget("frontend sidecar", frontend, ns, [fqdn(SERVICE, ns)]))
    grpc_vs = kube.get("VirtualService", resources.GRPC_VS_NAME, ns)
    if grpc_vs is not None:
        gateway_weights = virtual_service_weights(grpc_vs, SERVICE)
        same = gateway_weights is not None and declared is not None and \
            normalize(gateway_weights) == normalize(declared)
        out.add(f"VirtualService/{resources.GRPC_VS_NAME}", fmt(gateway_weights), "ok" if same else "bad")
        gateway = running_pod(kube.list("Pod", ISTIO_NAMESPACE, INGRESS_SELECTOR))
        if gateway:
            targets.append(ProxyTarget("ingress gateway", gateway, ISTIO_NAMESPACE,
                                       list(grpc_vs.get("spec", {}).get("hosts") or [])))
    for target in targets:
        result = ctx.runner.run(routes_argv(ctx, target), kind=READ, check=False, timeout=60)
        held = route_weights(result.stdout, target.hosts) if result.ok else None
        same = held is not None and declared is not None and normalize(held) == normalize(declared)
        state = fmt(held) if result.ok else f"error: {result.stderr.strip()[-120:]}"
        out.add(f"proxy {target.label} {target.pod}", state + ("" if same else f"  (declared {fmt(declared)})"),
                "ok" if same else "bad")
    if not frontend:
        out.add("proxy frontend sidecar", "no running frontend pod", "bad")

    pods = kube.list("Pod", ns)
    missing = pods_without_sidecar(pods)
    live = len([p for p in pods if p.get("status", {}).get("phase") not in ("Succeeded", "Failed")])
    out.add("sidecar coverage", f"{live - len(missing)}/{live} pods with istio-proxy"
            + (f"; without: {', '.join(missing)}" if missing else ""), "bad" if missing else "ok")

    analyze = ctx.runner.run(ctx.kube.istioctl("analyze", "-n", ns), kind=READ, check=False, timeout=120)
    out.analyze = [line for line in (analyze.stdout + analyze.stderr).splitlines() if line.strip()]
    errors = [line for line in out.analyze if line.lstrip().startswith("Error")]
    warnings = [line for line in out.analyze if line.lstrip().startswith("Warn")]
    out.add("istioctl analyze", f"{len(errors)} error(s), {len(warnings)} warning(s)",
            "bad" if errors else ("warn" if warnings else "ok"))
    return out


def print_status(ui: Ui, report: StatusReport) -> None:
    marks = {"ok": "✓", "warn": "!", "bad": "✗"}
    ui.table("canary status", ("", "what", "state"), [(marks[v], w, s) for w, s, v in report.rows])
    if report.analyze:
        ui.line("istioctl analyze:", style="bold")
        for line in report.analyze:
            ui.line(f"  {line}")
    ui.line("healthy" if report.healthy else "NOT healthy: see the ✗ rows above",
            style="green" if report.healthy else "red")
