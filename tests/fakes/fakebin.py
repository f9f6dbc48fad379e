"""Recorded fakes of kubectl, istioctl, gcloud, kind, docker and verify-split for the cluster tests.

``install(bin_dir)`` writes one tiny wrapper per tool into ``bin_dir`` (put first on PATH); every wrapper runs
``main(tool, argv)`` here. State lives in the directory named by ``$FAKE_STATE_DIR``:

- ``log.jsonl``   one line per call: ``{"tool", "argv", "stdin"}`` -- what the tests assert on;
- ``rules.json``  recorded answers keyed by argv (fnmatch on the joined argv, optionally on stdin), consumed in
                  order when ``times`` is set; they win over everything else (failures, exec outputs, ...);
- ``world.json``  what the cluster holds: objects applied by kubectl/istioctl, contexts, GKE/kind resources, the
                  routes the proxies were last pushed. Outputs are shaped like the real tools' (NotFound errors,
                  ``-o json`` objects with server-added fields, istioctl proxy-config's RouteConfiguration list).

Pods are derived from Deployments like a ReplicaSet would: one per replica, with an istio-proxy container only if
the namespace had ``istio-injection=enabled`` when the pod was created. Proxies serve a changed VirtualService
after ``world["proxy_lag"]`` polls of ``istioctl proxy-config routes``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RECORDED = HERE / "recorded"
TOOLS = ("kubectl", "istioctl", "gcloud", "kind", "docker", "verify-split")
PROJECT = "fake-project"
PLURAL = {
    "Deployment": "deployments", "Service": "services", "ConfigMap": "configmaps", "Job": "jobs", "Pod": "pods",
    "Namespace": "namespaces", "ServiceAccount": "serviceaccounts", "VirtualService": "virtualservices",
    "DestinationRule": "destinationrules", "Gateway": "gateways", "ServiceEntry": "serviceentries",
    "HTTPRoute": "httproutes", "CustomResourceDefinition": "customresourcedefinitions",
}
SINGULAR = {v: k for k, v in PLURAL.items()}
GROUPS = {"deployments": "apps", "jobs": "batch", "virtualservices": "networking.istio.io",
          "destinationrules": "networking.istio.io", "gateways": "networking.istio.io",
          "serviceentries": "networking.istio.io", "httproutes": "gateway.networking.k8s.io",
          "customresourcedefinitions": "apiextensions.k8s.io"}
ALIASES = {"deployment": "deployments", "job": "jobs", "service": "services", "configmap": "configmaps",
           "namespace": "namespaces", "ns": "namespaces", "pod": "pods", "crds": "customresourcedefinitions",
           "crd": "customresourcedefinitions", "httproute": "httproutes"}
GATEWAY_API_RESOURCES = {"httproutes"}  # served only once the Gateway API CRDs are applied
ISTIO_RESOURCES = {"virtualservices", "destinationrules", "gateways", "serviceentries"}
ISTIO_CRDS = [f"{r}.networking.istio.io" for r in sorted(ISTIO_RESOURCES)] + ["sidecars.networking.istio.io"]
VALUE_FLAGS = {"--context", "-n", "--namespace", "-o", "-f", "-l", "-p", "-c", "--type", "--name", "--region",
               "--project", "--format", "--filter", "--set", "--wait", "-t", "--timeout", "--results", "--expected",
               "--weights"}


# ----------------------------------------------------------------------------------------------- state files


def state_dir() -> Path:
    return Path(os.environ["FAKE_STATE_DIR"])


def load(name: str, default: Any) -> Any:
    path = state_dir() / name
    return json.loads(path.read_text()) if path.exists() else default


def save(name: str, data: Any) -> None:
    path = state_dir() / name
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":")))
    os.replace(tmp, path)


def new_world() -> dict[str, Any]:
    return {"objects": {}, "contexts": ["fake-ctx"], "current": "fake-ctx", "unreachable": [],
            "gcloud": {"services": [], "networks": [], "clusters": []}, "kind": [], "istio": False,
            "urls": {}, "served": {}, "pending": 0, "proxy_lag": 0, "counter": 0}


class Out:
    def __init__(self, rc: int = 0, stdout: str = "", stderr: str = "") -> None:
        self.rc, self.stdout, self.stderr = rc, stdout, stderr


# ----------------------------------------------------------------------------------------------- argv parsing


def parse(argv: list[str]) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """(positionals, flags -> values, after '--')."""
    pos: list[str] = []
    flags: dict[str, list[str]] = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            rest = argv[i + 1:]
            break
        if a.startswith("-") and "=" in a and a.startswith("--"):
            k, v = a.split("=", 1)
            flags.setdefault(k, []).append(v)
        elif a in VALUE_FLAGS and i + 1 < len(argv):
            flags.setdefault(a, []).append(argv[i + 1])
            i += 1
        elif a.startswith("-"):
            flags.setdefault(a, []).append("")
        else:
            pos.append(a)
        i += 1
    return pos, flags, rest


def flag(flags: dict[str, list[str]], *names: str, default: str | None = None) -> str | None:
    for n in names:
        if n in flags:
            return flags[n][-1]
    return default


# ----------------------------------------------------------------------------------------------- object store


def resource_name(text: str) -> str:
    base = text.split(".")[0].lower()
    return ALIASES.get(base, base)


def key(resource: str, ns: str | None, name: str) -> str:
    return f"{resource}|{ns or ''}|{name}"


def namespaced(resource: str) -> bool:
    return resource not in ("namespaces", "customresourcedefinitions")


def gateway_api(world: dict[str, Any]) -> bool:
    """The Gateway API CRDs are installed (applied from the release manifest)."""
    return key("customresourcedefinitions", None, "httproutes.gateway.networking.k8s.io") in world["objects"]


def missing_crd(doc: dict[str, Any]) -> Out:
    return Out(1, "", f'error: resource mapping not found for name: "{doc["metadata"]["name"]}" namespace: "" from '
                      f'"-": no matches for kind "{doc["kind"]}" in version "{doc["apiVersion"]}"\n'
                      "ensure CRDs are installed first\n")


def labels_match(labels: dict[str, str], selector: str | None) -> bool:
    if not selector:
        return True
    for part in selector.split(","):
        k, _, v = part.partition("=")
        if labels.get(k) != v:
            return False
    return True


def obj_labels(obj: dict[str, Any]) -> dict[str, str]:
    return obj.get("metadata", {}).get("labels") or {}


def find(world: dict[str, Any], resource: str, ns: str | None, name: str) -> dict[str, Any] | None:
    return world["objects"].get(key(resource, ns if namespaced(resource) else None, name))


def items(world: dict[str, Any], resource: str, ns: str | None, selector: str | None = None) -> list[dict[str, Any]]:
    out = []
    for k, obj in sorted(world["objects"].items()):
        res, obj_ns, _ = k.split("|")
        if res == resource and (ns is None or obj_ns == ns) and labels_match(obj_labels(obj), selector):
            out.append(obj)
    return out


def not_found(resource: str, name: str) -> Out:
    group = GROUPS.get(resource)
    full = f"{resource}.{group}" if group else resource
    return Out(1, "", f'Error from server (NotFound): {full} "{name}" not found\n')


def template_hash(deployment: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(deployment["spec"]["template"], sort_keys=True).encode()).hexdigest()[:9]


def sync_pods(world: dict[str, Any], deployment: dict[str, Any]) -> None:
    """Recreate the Deployment's pods when its template changed (like a rollout)."""
    ns, name = deployment["metadata"]["namespace"], deployment["metadata"]["name"]
    digest = template_hash(deployment)
    mine = [o for o in items(world, "pods", ns) if o["metadata"].get("ownerDeployment") == name]
    if mine and all(p["metadata"]["labels"].get("pod-template-hash") == digest for p in mine):
        return
    for pod in mine:
        del world["objects"][key("pods", ns, pod["metadata"]["name"])]
    namespace = find(world, "namespaces", None, ns) or {}
    template = deployment["spec"]["template"]
    inject = obj_labels(namespace).get("istio-injection") == "enabled" and \
        (template.get("metadata", {}).get("annotations") or {}).get("sidecar.istio.io/inject") != "false"
    for _ in range(int(deployment["spec"].get("replicas", 1))):
        world["counter"] += 1
        pod_name = f"{name}-{digest[:6]}-p{world['counter']}"
        containers = [dict(c) for c in template["spec"]["containers"]]
        if inject:
            containers.append({"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.24.2"})
        world["objects"][key("pods", ns, pod_name)] = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": ns, "ownerDeployment": name,
                         "labels": {**(template.get("metadata", {}).get("labels") or {}), "pod-template-hash": digest}},
            "spec": {"containers": containers},
            "status": {"phase": "Running",
                       "containerStatuses": [{"name": c["name"], "ready": True} for c in containers]},
        }


def server_defaults(obj: dict[str, Any], world: dict[str, Any]) -> None:
    """Fields the API server adds, so that comparisons with live objects meet reality."""
    meta = obj.setdefault("metadata", {})
    world["counter"] += 1
    meta.setdefault("uid", f"uid-{world['counter']}")
    meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
    meta["resourceVersion"] = str(world["counter"])
    meta["generation"] = int(meta.get("generation", 0)) + 1
    if obj["kind"] in ("Deployment", "Job"):
        spec = obj["spec"]
        if obj["kind"] == "Deployment":
            spec.setdefault("replicas", 1)
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("strategy", {"type": "RollingUpdate"})
        for c in spec["template"]["spec"].get("containers", []):
            c.setdefault("imagePullPolicy", "IfNotPresent")
            c.setdefault("terminationMessagePath", "/dev/termination-log")
        spec["template"]["spec"].setdefault("restartPolicy", "Always")
        spec["template"]["spec"].setdefault("dnsPolicy", "ClusterFirst")
        if obj["kind"] == "Deployment":
            obj["status"] = {"replicas": spec["replicas"], "readyReplicas": spec["replicas"],
                             "updatedReplicas": spec["replicas"]}
    if obj["kind"] == "Service":
        obj["spec"].setdefault("clusterIP", f"10.0.0.{world['counter'] % 250}")
        obj["spec"].setdefault("type", "ClusterIP")


def store(world: dict[str, Any], doc: dict[str, Any], default_ns: str) -> str:
    resource = PLURAL.get(doc["kind"])
    if resource is None:
        raise ValueError(f"fake kubectl does not know kind {doc['kind']}")
    ns = doc.get("metadata", {}).get("namespace") or default_ns
    name = doc["metadata"]["name"]
    if namespaced(resource):
        doc["metadata"]["namespace"] = ns
    k = key(resource, ns if namespaced(resource) else None, name)
    old = world["objects"].get(k)
    new = json.loads(json.dumps(doc))
    if old is not None:
        new["metadata"] = {**old["metadata"], **new["metadata"]}
        if old.get("status"):
            new.setdefault("status", old["status"])
    server_defaults(new, world)
    world["objects"][k] = new
    if doc["kind"] == "Deployment":
        sync_pods(world, new)
    if doc["kind"] == "Job" and old is None:
        template = new["spec"]["template"]
        world["objects"][key("pods", ns, f"{name}-j{world['counter']}")] = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{name}-j{world['counter']}", "namespace": ns,
                         "labels": {**(template["metadata"].get("labels") or {}), "job-name": name}},
            "spec": {"containers": template["spec"]["containers"] + [{"name": "istio-proxy"}]},
            "status": {"phase": "Running"}}
    group = GROUPS.get(resource)
    verb = "created" if old is None else "configured"
    return f"{doc['kind'].lower()}.{group}/{name} {verb}" if group else f"{doc['kind'].lower()}/{name} {verb}"


def read_docs(source: str, stdin: str, world: dict[str, Any]) -> list[dict[str, Any]] | Out:
    if source == "-":
        text = stdin
    elif source.startswith(("http://", "https://")):
        local = world["urls"].get(source)
        if local is None:
            return Out(1, "", f'error: unable to read URL "{source}", server reported 404 Not Found\n')
        text = Path(local).read_text()
    else:
        if not Path(source).exists():
            return Out(1, "", f'error: the path "{source}" does not exist\n')
        text = Path(source).read_text()
    import yaml  # only here: most calls need no YAML, and every call is a fresh process

    return [d for d in yaml.safe_load_all(text) if d]


# ----------------------------------------------------------------------------------------------- kubectl


def kubectl(argv: list[str], stdin: str, world: dict[str, Any]) -> Out:
    pos, flags, rest = parse(argv)
    context = flag(flags, "--context", default=world["current"])
    ns = flag(flags, "-n", "--namespace")
    if pos[:1] == ["config"]:
        if pos[1:2] == ["get-contexts"]:
            return Out(0, "".join(f"{c}\n" for c in world["contexts"]))
        if pos[1:2] == ["current-context"]:
            return Out(0, f"{world['current']}\n") if world["current"] else \
                Out(1, "", "error: current-context is not set\n")
    if "--client" in flags:
        return Out(0, (RECORDED / "kubectl-version.json").read_text())
    if context not in world["contexts"]:
        return Out(1, "", f'error: context "{context}" does not exist\n')
    if context in world["unreachable"]:
        return Out(1, "", "Unable to connect to the server: dial tcp 10.0.0.1:443: i/o timeout\n")
    verb = pos[0] if pos else ""
    if verb == "version":
        client = json.loads((RECORDED / "kubectl-version.json").read_text())
        client["serverVersion"] = {"major": "1", "minor": "31", "gitVersion": "v1.31.4"}
        return Out(0, json.dumps(client))
    if verb == "get":
        return kubectl_get(pos, flags, ns, world)
    if verb in ("apply", "diff"):
        docs = read_docs(flag(flags, "-f") or "-", stdin, world)
        if isinstance(docs, Out):
            return docs
        if verb == "diff":
            return kubectl_diff(docs, ns, world)
        lines = []
        for doc in docs:
            resource = PLURAL.get(doc["kind"], "")
            if (resource in ISTIO_RESOURCES and not world["istio"]) or (
                    resource in GATEWAY_API_RESOURCES and not gateway_api(world)):
                return missing_crd(doc)
            target_ns = doc.get("metadata", {}).get("namespace") or ns or "default"
            if namespaced(resource) and find(world, "namespaces", None, target_ns) is None:
                return Out(1, "", f'Error from server (NotFound): namespaces "{target_ns}" not found\n')
            lines.append(store(world, doc, target_ns))
        return Out(0, "\n".join(lines) + "\n")
    if verb == "create" and pos[1:2] in (["namespace"], ["ns"]):
        name = pos[2]
        if find(world, "namespaces", None, name):
            return Out(1, "", f'Error from server (AlreadyExists): namespaces "{name}" already exists\n')
        store(world, {"apiVersion": "v1", "kind": "Namespace",
                      "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}}, "")
        world["objects"][key("namespaces", None, name)]["status"] = {"phase": "Active"}
        return Out(0, f"namespace/{name} created\n")
    if verb == "label":
        resource, name = resource_name(pos[1]), pos[2]
        obj = find(world, resource, ns, name)
        if obj is None:
            return not_found(resource, name)
        for assignment in pos[3:]:
            k, _, v = assignment.partition("=")
            obj["metadata"].setdefault("labels", {})[k] = v
        return Out(0, f"{SINGULAR[resource].lower()}/{name} labeled\n")
    if verb == "patch":
        return kubectl_patch(pos, flags, ns, world)
    if verb == "rollout" and pos[1:2] == ["status"]:
        resource, _, name = pos[2].partition("/")
        if find(world, resource_name(resource), ns, name) is None:
            return not_found(resource_name(resource), name)
        return Out(0, f'deployment "{name}" successfully rolled out\n')
    if verb == "delete":
        return kubectl_delete(pos, flags, ns, world)
    if verb == "exec":
        return Out(1, "", f"fake kubectl: no recorded output for exec {' '.join(rest)}\n")
    if verb == "wait":
        return Out(0, "condition met\n")
    return Out(2, "", f"fake kubectl: unsupported command {argv}\n")


def kubectl_get(pos: list[str], flags: dict[str, list[str]], ns: str | None, world: dict[str, Any]) -> Out:
    resource = resource_name(pos[1])
    output = flag(flags, "-o", default="")
    if resource == "customresourcedefinitions" and len(pos) == 2:
        stored = [k.split("|")[2] for k in world["objects"] if k.startswith("customresourcedefinitions|")]
        names = sorted((ISTIO_CRDS if world["istio"] else []) + stored)
        return Out(0, "".join(f"customresourcedefinition.apiextensions.k8s.io/{n}\n" for n in names))
    if (resource in ISTIO_RESOURCES and not world["istio"]) or (
            resource in GATEWAY_API_RESOURCES and not gateway_api(world)):
        return Out(1, "", f'error: the server doesn\'t have a resource type "{pos[1]}"\n')
    if len(pos) > 2:
        obj = find(world, resource, ns or "default", pos[2])
        if obj is None:
            return not_found(resource, pos[2])
        return Out(0, json.dumps(obj) if output == "json" else f"{pos[2]}\n")
    listed = items(world, resource, (ns or "default") if namespaced(resource) else None, flag(flags, "-l"))
    return Out(0, json.dumps({"apiVersion": "v1", "kind": "List", "items": listed}))


def kubectl_diff(docs: list[dict[str, Any]], ns: str | None, world: dict[str, Any]) -> Out:
    changed = []
    for doc in docs:
        resource = PLURAL[doc["kind"]]
        live = find(world, resource, doc.get("metadata", {}).get("namespace") or ns or "default",
                    doc["metadata"]["name"])
        if live is None or not covers(live, {k: doc[k] for k in ("spec", "data") if k in doc}):
            changed.append(f"{doc['kind']}/{doc['metadata']['name']}")
    if changed:
        return Out(1, "".join(f"diff -u -N /tmp/LIVE/{c} /tmp/MERGED/{c}\n" for c in changed))
    return Out(0, "")


def covers(live: Any, want: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(live, dict) and all(k in live and covers(live[k], v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(live, list) and len(live) == len(want) and all(map(covers, live, want))
    return bool(live == want)


def kubectl_patch(pos: list[str], flags: dict[str, list[str]], ns: str | None, world: dict[str, Any]) -> Out:
    resource, name = resource_name(pos[1]), pos[2]
    obj = find(world, resource, ns or "default", name)
    if obj is None:
        return not_found(resource, name)
    for op in json.loads(flag(flags, "-p") or "[]"):
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].strip("/").split("/")]
        target = obj
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        if op["op"] in ("add", "replace"):
            target[parts[-1]] = op["value"]
        elif op["op"] == "remove":
            if parts[-1] not in target:
                return Out(1, "", "The request is invalid: the server rejected our request due to an error in our "
                                  "request\n")
            del target[parts[-1]]
    server_defaults(obj, world)
    if obj["kind"] == "Deployment":
        sync_pods(world, obj)
    return Out(0, f"deployment.apps/{name} patched\n")


def kubectl_delete(pos: list[str], flags: dict[str, list[str]], ns: str | None, world: dict[str, Any]) -> Out:
    lines = []
    resources = [resource_name(r) for r in pos[1].split(",")]
    selector = flag(flags, "-l")
    targets: list[tuple[str, dict[str, Any]]] = []
    for resource in resources:
        if resource in ISTIO_RESOURCES and not world["istio"]:
            return Out(1, "", f'error: the server doesn\'t have a resource type "{pos[1]}"\n')
        if len(pos) > 2:
            obj = find(world, resource, ns or "default", pos[2])
            if obj is None and "--ignore-not-found" not in flags:
                return not_found(resource, pos[2])
            if obj is not None:
                targets.append((resource, obj))
        else:
            targets += [(resource, o) for o in items(world, resource, ns or "default", selector)]
    for resource, obj in targets:
        name, obj_ns = obj["metadata"]["name"], obj["metadata"].get("namespace")
        del world["objects"][key(resource, obj_ns if namespaced(resource) else None, name)]
        if resource == "namespaces":
            for k in [k for k in world["objects"] if k.split("|")[1] == name]:
                del world["objects"][k]
        if resource in ("deployments", "jobs"):
            owned = [p for p in items(world, "pods", obj_ns) if p["metadata"].get("ownerDeployment") == name
                     or (resource == "jobs" and obj_labels(p).get("job-name") == name)]
            for pod in owned:
                del world["objects"][key("pods", obj_ns, pod["metadata"]["name"])]
        group = GROUPS.get(resource)
        lines.append(f'{SINGULAR[resource].lower()}{"." + group if group else ""} "{name}" deleted')
    return Out(0, "".join(f"{line}\n" for line in lines))


# ----------------------------------------------------------------------------------------------- istioctl


def istioctl(argv: list[str], world: dict[str, Any]) -> Out:
    pos, flags, _ = parse(argv)
    context = flag(flags, "--context", default=world["current"])
    if pos[:1] == ["version"]:
        return Out(0, "1.24.2\n")
    if context not in world["contexts"]:
        return Out(1, "", f'Error: context "{context}" does not exist\n')
    if pos[:1] == ["install"]:
        ip = None
        for value in flags.get("--set", []):
            if value.startswith("values.gateways.istio-ingressgateway.loadBalancerIP="):
                ip = value.split("=", 1)[1]
        install_istio(world, ip)
        return Out(0, (RECORDED / "istioctl-install.txt").read_text())
    if pos[:1] == ["uninstall"]:
        world["istio"] = False
        for k in [k for k in world["objects"] if k.split("|")[1] == "istio-system"]:
            del world["objects"][k]
        return Out(0, "✔ Uninstall complete\n")
    if pos[:2] == ["proxy-config", "routes"]:
        ns = flag(flags, "-n", "--namespace", default="default")
        pod = find(world, "pods", ns, pos[2])
        if pod is None:
            return Out(1, "", f'Error: failed to get config dump from pod "{pos[2]}" in namespace "{ns}"\n')
        return Out(0, json.dumps(proxy_routes(world, pod)))
    if pos[:1] == ["analyze"]:
        ns = flag(flags, "-n", "--namespace", default="default")
        return Out(0, f"\n✔ No validation issues found when analyzing namespace: {ns}.\n")
    return Out(2, "", f"fake istioctl: unsupported command {argv}\n")


def install_istio(world: dict[str, Any], ip: str | None) -> None:
    world["istio"] = True
    if find(world, "namespaces", None, "istio-system") is None:
        store(world, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}, "")
    for name, labels in (("istiod", {"app": "istiod"}),
                         ("istio-ingressgateway", {"app": "istio-ingressgateway", "istio": "ingressgateway"}),
                         ("istio-egressgateway", {"app": "istio-egressgateway", "istio": "egressgateway"})):
        store(world, {"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": {"name": name, "namespace": "istio-system"},
                      "spec": {"selector": {"matchLabels": labels}, "template": {
                          "metadata": {"labels": labels},
                          "spec": {"containers": [{"name": "discovery" if name == "istiod" else "istio-proxy",
                                                   "image": "docker.io/istio/pilot:1.24.2"}]}}}}, "istio-system")
    service: dict[str, Any] = {"apiVersion": "v1", "kind": "Service",
                               "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"},
                               "spec": {"type": "LoadBalancer", "selector": {"istio": "ingressgateway"},
                                        "ports": [{"name": "http2", "port": 80, "targetPort": 8080}]}}
    if ip:
        service["spec"]["loadBalancerIP"] = ip
    store(world, service, "istio-system")
    obj = find(world, "services", "istio-system", "istio-ingressgateway")
    assert obj is not None
    obj["status"] = {"loadBalancer": {"ingress": [{"ip": ip or "198.51.100.20"}]}}


def _fqdn(host: str, ns: str) -> str:
    parts = host.split(".")
    if len(parts) == 1:
        return f"{host}.{ns}.svc.cluster.local"
    if len(parts) == 2:
        return f"{host}.svc.cluster.local"
    return host


def proxy_routes(world: dict[str, Any], pod: dict[str, Any]) -> list[dict[str, Any]]:
    """RouteConfigurations as `istioctl proxy-config routes -o json` prints them, from the VirtualServices the
    proxy was last pushed (a change reaches the proxies after ``proxy_lag`` polls)."""
    current = {k: v["spec"] for k, v in world["objects"].items() if k.startswith(("virtualservices|", "httproutes|"))}
    if current != world["served"]:
        world["pending"] += 1
        if world["pending"] > world["proxy_lag"]:
            world["served"], world["pending"] = current, 0
    gateway = obj_labels(pod).get("istio") == "ingressgateway"
    vhosts = []
    for k, spec in sorted(world["served"].items()):
        vs_ns = k.split("|")[1]
        if k.startswith("httproutes|"):
            if not gateway:
                vhosts.extend(httproute_vhosts(spec, vs_ns, k.split("|")[2]))
            continue
        bound = spec.get("gateways") or ["mesh"]
        if gateway == ("mesh" in bound):
            continue
        for host in spec.get("hosts") or []:
            for http in spec.get("http") or []:
                dests = http.get("route") or []
                port = (dests[0].get("destination", {}).get("port") or {}).get("number", 80) if dests else 80
                clusters = [{"name": f"outbound|{port}|{d['destination'].get('subset', '')}|"
                                     f"{_fqdn(d['destination']['host'], vs_ns)}", "weight": d.get("weight", 100)}
                            for d in dests if d.get("weight", 100) != 0]
                action: dict[str, Any] = {"timeout": "0s"}
                if len(clusters) == 1:
                    action["cluster"] = clusters[0]["name"]
                else:
                    action["weightedClusters"] = {"clusters": clusters}
                name = host if gateway else _fqdn(host, vs_ns)
                vhosts.append({"name": f"{name}:{80 if gateway else port}", "domains": [name, f"{name}:*"],
                               "routes": [{"match": {"prefix": "/"}, "route": action,
                                           "decorator": {"operation": f"{host}:{port}/*"}}]})
    vhosts.append({"name": "allow_any", "domains": ["*"],
                   "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "PassthroughCluster"}}]})
    return [{"name": "http.8080" if gateway else "8080", "virtualHosts": vhosts, "validateClusters": False}]


def httproute_vhosts(spec: dict[str, Any], ns: str, name: str) -> list[dict[str, Any]]:
    """What istiod pushes a sidecar for an HTTPRoute bound to a Service (GAMMA): a virtual host for the Service,
    one route per rule named ``<ns>.<name>.<index>``, backendRefs as weighted clusters of the backend Services
    (weight default 1, as written: relative; a 0 weight dropped; a lone backend a plain cluster)."""
    out = []
    for parent in spec.get("parentRefs") or []:
        if parent.get("kind") != "Service" or parent.get("group") != "":
            continue
        host = _fqdn(parent["name"], parent.get("namespace") or ns)
        port = parent.get("port", 80)
        routes = []
        for i, rule in enumerate(spec.get("rules") or []):
            clusters = [{"name": f"outbound|{b.get('port', port)}||{_fqdn(b['name'], b.get('namespace') or ns)}",
                         "weight": b.get("weight", 1)} for b in rule.get("backendRefs") or [] if b.get("weight", 1)]
            action: dict[str, Any] = {"timeout": "0s"}
            if len(clusters) == 1:
                action["cluster"] = clusters[0]["name"]
            else:
                action["weightedClusters"] = {"clusters": clusters}
            headers = [{"name": h["name"].lower(), "stringMatch": {"exact": h["value"]}}
                       for m in rule.get("matches") or [] for h in m.get("headers") or []]
            match: dict[str, Any] = {"prefix": "/", **({"headers": headers} if headers else {})}
            routes.append({"name": f"{ns}.{name}.{i}", "match": match, "route": action,
                           "decorator": {"operation": f"{host}:{port}/*"}})
        routes.sort(key=lambda r: "headers" not in r["match"])   # istiod: the more specific match first
        out.append({"name": f"{host}:{port}", "domains": [host, f"{host}:*"], "routes": routes})
    return out


# ----------------------------------------------------------------------------------------------- gcloud, kind, ...


def gcloud(argv: list[str], world: dict[str, Any]) -> Out:
    pos, flags, _ = parse(argv)
    g = world["gcloud"]
    if pos[:2] == ["config", "get-value"]:
        return Out(0, f"{PROJECT}\n")
    if pos[:1] == ["version"]:
        return Out(0, json.dumps({"Google Cloud SDK": "500.0.0", "core": "2024.11.08"}))
    if pos[:2] == ["services", "list"]:
        wanted = (flag(flags, "--filter") or "").removeprefix("config.name=")
        return Out(0, f"{wanted}\n" if wanted in g["services"] else "")
    if pos[:2] == ["services", "enable"]:
        g["services"].append(pos[2])
        return Out(0, "", "Operation finished successfully.\n")
    if pos[:3] == ["compute", "networks", "describe"]:
        if pos[3] in g["networks"]:
            return Out(0, json.dumps({"name": pos[3], "autoCreateSubnetworks": True}))
        return Out(1, "", f"ERROR: (gcloud.compute.networks.describe) Could not fetch resource:\n - The resource "
                          f"'projects/{PROJECT}/global/networks/{pos[3]}' was not found\n")
    if pos[:3] == ["compute", "networks", "create"]:
        g["networks"].append(pos[3])
        return Out(0, "", f"Created [https://www.googleapis.com/compute/v1/projects/{PROJECT}/global/networks/{pos[3]}].\n")
    region = flag(flags, "--region")
    if pos[:2] == ["container", "clusters"]:
        name = pos[3]
        if pos[2] == "describe":
            if name in g["clusters"]:
                return Out(0, json.dumps({"name": name, "location": region, "status": "RUNNING"}))
            return Out(1, "", f"ERROR: (gcloud.container.clusters.describe) ResponseError: code=404, message=Not "
                              f"found: projects/{PROJECT}/locations/{region}/clusters/{name}.\n")
        if pos[2] == "create":
            g["clusters"].append(name)
            return Out(0, f"NAME  LOCATION  STATUS\n{name}  {region}  RUNNING\n")
        if pos[2] == "get-credentials":
            context = f"gke_{PROJECT}_{region}_{name}"
            if context not in world["contexts"]:
                world["contexts"].append(context)
            world["current"] = context
            return Out(0, "", f"kubeconfig entry generated for {name}.\n")
        if pos[2] == "delete":
            if name not in g["clusters"]:
                return Out(1, "", f"ERROR: (gcloud.container.clusters.delete) Some requests did not succeed: "
                                  f"- Not found: {name}\n")
            g["clusters"].remove(name)
            return Out(0, "", f"Deleted [{name}].\n")
    return Out(2, "", f"fake gcloud: unsupported command {argv}\n")


def kind(argv: list[str], world: dict[str, Any]) -> Out:
    pos, flags, _ = parse(argv)
    name = flag(flags, "--name", default="kind")
    if pos[:1] == ["version"]:
        return Out(0, "kind v0.27.0 go1.23.6 linux/amd64\n")
    if pos[:2] == ["get", "clusters"]:
        return Out(0, "".join(f"{c}\n" for c in world["kind"]), "" if world["kind"] else "No kind clusters found.\n")
    if pos[:2] == ["create", "cluster"]:
        world["kind"].append(name)
        world["contexts"].append(f"kind-{name}")
        world["current"] = f"kind-{name}"
        return Out(0, "", f"Creating cluster \"{name}\" ...\n ✓ Ready after 20s 💚\n")
    if pos[:2] == ["delete", "cluster"]:
        if name in world["kind"]:
            world["kind"].remove(name)
            world["contexts"].remove(f"kind-{name}")
        return Out(0, "", f"Deleting cluster \"{name}\" ...\n")
    if pos[:2] == ["load", "docker-image"]:
        return Out(0, "", f'Image: "{pos[2]}" with ID "sha256:0123" not yet present on node "{name}-control-plane", '
                          "loading...\n")
    return Out(2, "", f"fake kind: unsupported command {argv}\n")


def docker(argv: list[str], world: dict[str, Any]) -> Out:
    if argv[:1] == ["version"]:
        return Out(0, "27.5.1\n")
    if argv[:1] in (["build"], ["push"]):
        return Out(0, "done\n")
    return Out(2, "", f"fake docker: unsupported command {argv}\n")


# ----------------------------------------------------------------------------------------------- entry point


def answer_from_rules(tool: str, argv: list[str], stdin: str) -> Out | None:
    rules = load("rules.json", [])
    joined = " ".join(argv)
    for rule in rules:
        if rule.get("tool", tool) != tool or not fnmatch.fnmatchcase(joined, rule["argv"]):
            continue
        if rule.get("stdin_contains") and rule["stdin_contains"] not in stdin:
            continue
        if rule.get("times") is not None:
            if rule["times"] <= 0:
                continue
            rule["times"] -= 1
            save("rules.json", rules)
        stdout = rule.get("stdout", "")
        if rule.get("stdout_file"):
            stdout = Path(rule["stdout_file"]).read_text()
        return Out(int(rule.get("rc", 0)), stdout, rule.get("stderr", ""))
    return None


def main(tool: str, argv: list[str]) -> int:
    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    with open(state_dir() / "log.jsonl", "a", encoding="utf-8") as log:
        log.write(json.dumps({"tool": tool, "argv": argv, "stdin": stdin}) + "\n")
    out = answer_from_rules(tool, argv, stdin)
    if out is None:
        world = load("world.json", None) or new_world()
        handler = {"kubectl": lambda: kubectl(argv, stdin, world), "istioctl": lambda: istioctl(argv, world),
                   "gcloud": lambda: gcloud(argv, world), "kind": lambda: kind(argv, world),
                   "docker": lambda: docker(argv, world)}.get(tool)
        out = handler() if handler else Out(0, "PASS\n")
        save("world.json", world)
    sys.stdout.write(out.stdout)
    sys.stderr.write(out.stderr)
    return out.rc


def install(bin_dir: Path, tools: tuple[str, ...] = TOOLS) -> None:
    """Write one executable wrapper per tool into ``bin_dir``."""
    import site

    bin_dir.mkdir(parents=True, exist_ok=True)
    paths = [str(HERE), *site.getsitepackages()]  # -S skips site's .pth processing: ~25 ms less per call
    for tool in tools:
        wrapper = bin_dir / tool
        wrapper.write_text(f"#!{sys.executable} -S\nimport sys\nsys.path[:0] = {paths!r}\n"
                           f"from fakebin import main\nsys.exit(main({tool!r}, sys.argv[1:]))\n")
        wrapper.chmod(0o755)
