"""Step 7, ``canary-setup status``: what exists, declared vs served weights (served: read through the
ClusterRouter), sidecar coverage, ``istioctl analyze``. Read-only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from splitproof.setup.cluster import resources
from splitproof.setup.cluster.context import Ctx
from splitproof.setup.cluster.declared import http_route_weights, virtual_service_weights
from splitproof.setup.cluster.live import pods_without_sidecar
from splitproof.setup.cluster.options import CANARY_DEPLOYMENT, PRODUCTION_DEPLOYMENT, SERVICE
from splitproof.setup.cluster.router import ClusterRouter, cluster_routing
from splitproof.setup.cluster.runner import READ
from splitproof.setup.cluster.ui import Ui
from splitproof.setup.router import Routing, describe, normalize


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
    kube, ns, out = ctx.kube, ctx.ns, StatusReport()
    namespace = kube.get("Namespace", ns)
    if namespace is None:
        out.add(f"namespace {ns}", "absent", "bad")
        return out
    injection = (namespace.get("metadata", {}).get("labels") or {}).get("istio-injection")
    out.add(f"namespace {ns}", f"istio-injection={injection or '(unset)'}", "ok" if injection == "enabled" else "bad")
    for name in (PRODUCTION_DEPLOYMENT, CANARY_DEPLOYMENT):
        out.add(f"deployment/{name}", *_ready(kube.get("Deployment", name, ns)))

    if ctx.opts.gateway_api:
        declared = _http_route_rows(ctx, out)
        _proxy_rows(ctx, out, cluster_routing(ctx), declared)
        _sidecars_and_analyze(ctx, out)
        return out

    rule = kube.get("DestinationRule", SERVICE, ns)
    subsets = [str(s.get("name")) for s in (rule or {}).get("spec", {}).get("subsets") or []]
    out.add(f"DestinationRule/{SERVICE}", ", ".join(subsets) if rule else "absent", "ok" if rule else "bad")

    vs = kube.get("VirtualService", SERVICE, ns)
    declared = virtual_service_weights(vs, SERVICE) if vs else None
    out.add(f"VirtualService/{SERVICE}", describe(declared) if vs else "absent", "ok" if declared else "bad")
    undefined = [s for s, w in (declared or {}).items() if w and s not in subsets]
    if undefined:
        out.add("routed subsets", f"not in the DestinationRule: {', '.join(undefined)}", "bad")

    grpc_vs = kube.get("VirtualService", resources.GRPC_VS_NAME, ns)
    gateway_hosts: tuple[str, ...] = ()
    if grpc_vs is not None:
        gateway_weights = virtual_service_weights(grpc_vs, SERVICE)
        same = gateway_weights is not None and declared is not None and \
            normalize(gateway_weights) == normalize(declared)
        out.add(f"VirtualService/{resources.GRPC_VS_NAME}", describe(gateway_weights), "ok" if same else "bad")
        gateway_hosts = tuple(grpc_vs.get("spec", {}).get("hosts") or ())
    _proxy_rows(ctx, out, Routing(SERVICE, ns, gateway_hosts=gateway_hosts), declared)
    _sidecars_and_analyze(ctx, out)
    return out


def _http_route_rows(ctx: Ctx, out: StatusReport) -> dict[str, int] | None:
    """Gateway API routing: the per-version Services (and the version each selects), the HTTPRoute's split."""
    kube, ns, params = ctx.kube, ctx.ns, ctx.opts.params()
    services = []
    for version in params.subsets:
        name = params.version_service(version)
        svc = kube.get("Service", name, ns)
        selector = (svc or {}).get("spec", {}).get("selector") or {}
        out.add(f"Service/{name}", ",".join(f"{k}={v}" for k, v in selector.items()) if svc else "absent",
                "ok" if svc and selector.get("version") == params.subsets[version].get("version") else "bad")
        if svc:
            services.append(svc)
    route = kube.get("HTTPRoute", SERVICE, ns)
    declared = http_route_weights(route, services, ns) if route else None
    accepted = _accepted(route)
    out.add(f"HTTPRoute/{SERVICE}", (describe(declared) + ("" if accepted is None else f" (Accepted={accepted})"))
            if route else "absent", "ok" if declared and accepted in (None, "True") else "bad")
    return declared


def _accepted(route: dict[str, Any] | None) -> str | None:
    """The ``Accepted`` condition istiod sets on the route's parent status, when it has set one."""
    for parent in ((route or {}).get("status") or {}).get("parents") or []:
        for cond in parent.get("conditions") or []:
            if cond.get("type") == "Accepted":
                return str(cond.get("status"))
    return None


def _proxy_rows(ctx: Ctx, out: StatusReport, routing: Routing, declared: dict[str, int] | None) -> None:
    router = ClusterRouter(ctx, routing)
    targets = router.targets(required=False)
    for proxy in router.served_weights(targets).proxies:
        same = declared is not None and proxy.serves(declared)
        out.add(f"proxy {proxy.proxy}", proxy.holds(120) + ("" if same else f"  (declared {describe(declared)})"),
                "ok" if same else "bad")
    if not any(t.label == "frontend sidecar" for t in targets):
        out.add("proxy frontend sidecar", "no running frontend pod", "bad")


def _sidecars_and_analyze(ctx: Ctx, out: StatusReport) -> None:
    kube, ns = ctx.kube, ctx.ns
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


def print_status(ui: Ui, report: StatusReport) -> None:
    marks = {"ok": "✓", "warn": "!", "bad": "✗"}
    ui.table("canary status", ("", "what", "state"), [(marks[v], w, s) for w, s, v in report.rows])
    if report.analyze:
        ui.line("istioctl analyze:", style="bold")
        for line in report.analyze:
            ui.line(f"  {line}")
    ui.line("healthy" if report.healthy else "NOT healthy: see the ✗ rows above",
            style="green" if report.healthy else "red")


def step_status(ctx: Ctx) -> int:
    """What exists, declared vs held weights, sidecar coverage, `istioctl analyze`. Returns 0 when all is well."""
    if ctx.dry:
        ctx.ui.info("status only reads the cluster; nothing to show in a dry run")
        return 0
    report_ = collect_status(ctx)
    print_status(ctx.ui, report_)
    return 0 if report_.healthy else 1
