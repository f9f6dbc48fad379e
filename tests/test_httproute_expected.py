"""The expected split from the Gateway API (issue 17): an HTTPRoute's weighted rule and its backend Services, from a
file and from the live API (the real kubernetes client against a tiny fake API server on 127.0.0.1), through the
verify-split command line (exit 2 for bad input, 4 for an unreachable API)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest
import yaml
from conftest import free_port
from helpers import http_server, send_json
from test_expected import write_kubeconfig
from test_verifier_cli import write_results

from splitproof.setup.manifests import CanaryParams, mesh_yaml
from splitproof.verifier import gatewayapi as gw
from splitproof.verifier.cli import main
from splitproof.verifier.errors import InputError, Unreachable
from splitproof.verifier.inputs.httproute import expected_from_documents, from_httproute_file, from_httproute_live

NS = "online-boutique"


def service(name: str, version: str | None, ns: str = NS) -> dict:
    selector = {"app": "recommendationservice", **({"version": version} if version else {})}
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": selector, "ports": [{"name": "grpc", "port": 8080}]}}


def route(*rules: dict, parent: str = "recommendationservice", name: str = "recommendationservice") -> dict:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": parent, "port": 8080}],
                     "rules": list(rules)}}


def refs(**weights: int | None) -> list[dict]:
    out = []
    for version, weight in weights.items():
        ref: dict = {"name": f"recommendationservice-{version}", "port": 8080}
        if weight is not None:
            ref["weight"] = weight
        out.append(ref)
    return out


SERVICES = [service("recommendationservice-production", "production"),
            service("recommendationservice-canary", "canary")]


def expected(*rules: dict) -> dict[str, float]:
    return dict(expected_from_documents([route(*rules), *SERVICES]))


# --------------------------------------------------------------------------------------------------- the rules


def test_weights_are_relative_and_normalised():
    assert expected({"backendRefs": refs(production=80, canary=20)}) == {"production": 0.8, "canary": 0.2}
    assert expected({"backendRefs": refs(production=4, canary=1)}) == {"production": 0.8, "canary": 0.2}
    assert expected({"backendRefs": refs(production=800_000, canary=200_000)}) == {"production": 0.8,
                                                                                   "canary": 0.2}
    e = expected_from_documents([route({"backendRefs": refs(production=3, canary=1)}), *SERVICES])
    assert e.weights is None and e.percent("canary") == 25.0   # not percentages: no integer weights claimed


def test_weight_defaults_to_one_and_zero_sends_nothing():
    assert expected({"backendRefs": refs(production=None, canary=None)}) == {"production": 0.5, "canary": 0.5}
    assert expected({"backendRefs": refs(production=1, canary=0)}) == {"production": 1.0, "canary": 0.0}
    with pytest.raises(InputError, match=r"spec.rules\[0\].backendRefs: every weight is 0"):
        expected({"backendRefs": refs(production=0, canary=0)})


def test_the_catch_all_rule_carries_the_split_and_a_tester_rule_is_skipped():
    tester = {"matches": [{"headers": [{"name": "x-canary", "value": "1"}]}], "backendRefs": refs(canary=1)}
    main_rule = {"backendRefs": refs(production=90, canary=10)}
    assert expected(tester, main_rule) == {"production": 0.9, "canary": 0.1}
    slash = {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": refs(production=70,
                                                                                             canary=30)}
    assert expected(tester, slash) == {"production": 0.7, "canary": 0.3}
    only = {"matches": [{"path": {"type": "PathPrefix", "value": "/hipstershop"}}],
            "backendRefs": refs(production=60, canary=40)}
    assert expected(only) == {"production": 0.6, "canary": 0.4}          # the only rule
    with pytest.raises(InputError, match="every rule has a match condition"):
        expected(tester, only)


def test_two_services_selecting_one_version_add_up():
    docs = [route({"backendRefs": [*refs(production=50, canary=25), {"name": "blue", "weight": 25}]}),
            *SERVICES, service("blue", "production")]
    assert dict(expected_from_documents(docs)) == {"production": 0.75, "canary": 0.25}


@pytest.mark.parametrize(("rule", "message"), [
    ({"backendRefs": refs(production=80, canary=-1)}, r"backendRefs\[1\].weight must be an integer from 0 to"),
    ({"backendRefs": refs(production=80, canary=1_000_001)}, r"backendRefs\[1\].weight"),
    ({"backendRefs": refs(production=80, canary=True)}, r"backendRefs\[1\].weight"),
    ({"backendRefs": [{"name": "x", "kind": "ServiceImport", "group": "multicluster.x-k8s.io"}]}, "not a Service"),
    ({"backendRefs": [{"port": 8080}]}, r"backendRefs\[0\].name is required"),
    ({"backendRefs": []}, "is empty"),
    ({"backendRefs": [{"name": "recommendationservice-shadow"}]}, "has no 'version' label"),
])
def test_bad_rules_are_one_line_errors(rule, message):
    with pytest.raises(InputError, match=message) as info:
        expected(rule)
    assert "\n" not in str(info.value)


def test_which_route_and_which_version():
    other = route({"backendRefs": refs(production=1)}, parent="frontend", name="frontend")
    assert dict(expected_from_documents([other, route({"backendRefs": refs(production=3, canary=1)}),
                                         *SERVICES])) == {"production": 0.75, "canary": 0.25}
    with pytest.raises(InputError, match="no HTTPRoute for Service 'recommendationservice'"):
        expected_from_documents([other, other, *SERVICES])
    unlabelled = [route({"backendRefs": refs(production=1, canary=1)}), SERVICES[0],
                  service("recommendationservice-canary", None)]
    with pytest.raises(InputError, match="recommendationservice-canary has no 'version' label"):
        expected_from_documents(unlabelled)
    old = {**route({"backendRefs": refs(production=1)}), "apiVersion": "gateway.networking.k8s.io/v1alpha2"}
    with pytest.raises(InputError, match="unsupported apiVersion"):
        expected_from_documents([old])


def test_the_project_templates_read_back(tmp_path):
    path = tmp_path / "mesh.yaml"
    path.write_text(mesh_yaml(CanaryParams(routing="gateway-api", weights={"production": 70, "canary": 30})))
    e = from_httproute_file(path)
    assert dict(e) == {"production": 0.7, "canary": 0.3} and e.weights == {"production": 70, "canary": 30}
    assert e.source.startswith("HTTPRoute recommendationservice")
    listed = tmp_path / "list.yaml"   # kubectl get httproute,svc -o yaml
    listed.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": list(
        yaml.safe_load_all(path.read_text()))}))
    assert dict(from_httproute_file(listed)) == {"production": 0.7, "canary": 0.3}
    with pytest.raises(InputError, match="add -n NAMESPACE"):
        from_httproute_file(tmp_path / "recommendationservice")


# ------------------------------------------------------------------------------------------- live: fake API


LIVE_ROUTE = {**route({"backendRefs": refs(production=9, canary=1)}),
              "metadata": {"name": "recommendationservice", "namespace": NS, "generation": 2,
                           "resourceVersion": "20211", "uid": "0d4f2a9e-5a55-4f7e-9a52-8b0e4f1c2a10"},
              "status": {"parents": [{"controllerName": "istio.io/gateway-controller",
                                      "parentRef": {"group": "", "kind": "Service", "name": "recommendationservice"},
                                      "conditions": [{"type": "Accepted", "status": "True"}]}]}}


class FakeApi(BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 -- http.server's naming
        FakeApi.requests.append(self.path)
        path = self.path.split("?", 1)[0]
        if self.headers.get("Authorization") != "Bearer recorded-token":
            self._send(401, {"kind": "Status", "code": 401, "reason": "Unauthorized", "message": "Unauthorized"})
        elif path == f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes/recommendationservice":
            self._send(200, LIVE_ROUTE)
        elif path.startswith(f"/api/v1/namespaces/{NS}/services/recommendationservice-"):
            name = path.rsplit("/", 1)[1]
            version = name.removeprefix("recommendationservice-")
            if version in ("production", "canary"):
                self._send(200, service(name, version))
            else:
                self._send(404, {"kind": "Status", "code": 404, "reason": "NotFound", "message": "not found"})
        else:
            self._send(404, {"kind": "Status", "code": 404, "reason": "NotFound", "message": "not found"})

    def _send(self, code: int, body: dict) -> None:
        send_json(self, code, body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_api() -> Iterator[str]:
    with http_server(FakeApi) as url:
        yield url


def test_live_httproute_and_services_with_the_real_client(fake_api, tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path, fake_api)))
    FakeApi.requests.clear()
    e = from_httproute_live("recommendationservice", NS)
    assert dict(e) == {"production": 0.9, "canary": 0.1}
    assert [r.split("?")[0] for r in FakeApi.requests] == [
        f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes/recommendationservice",
        f"/api/v1/namespaces/{NS}/services/recommendationservice-production",
        f"/api/v1/namespaces/{NS}/services/recommendationservice-canary"]
    with pytest.raises(InputError, match="not found"):
        from_httproute_live("recommendationservice", "other")
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path, fake_api, token="wrong")))
    with pytest.raises(InputError, match="refused access"):
        from_httproute_live("recommendationservice", NS)
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path, f"http://127.0.0.1:{free_port()}")))
    with pytest.raises(Unreachable, match="cannot reach the Kubernetes API"):
        from_httproute_live("recommendationservice", NS)


def test_the_command_line(fake_api, tmp_path, monkeypatch, capsys):
    results = write_results(tmp_path / "r.jsonl", {"production": 0.9, "canary": 0.1}, 3000)
    manifest = tmp_path / "mesh.yaml"
    manifest.write_text(mesh_yaml(CanaryParams(routing="gateway-api", weights={"production": 90, "canary": 10})))
    assert main(["--from-httproute", str(manifest), "--results", str(results), "--json", "-"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["expected"] == {"production": 0.9, "canary": 0.1}
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path, fake_api)))
    assert main(["--from-httproute", "recommendationservice", "-n", NS, "--results", str(results)]) == 0
    capsys.readouterr()
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(route({"backendRefs": refs(production=0, canary=0)})))
    for argv in (["--from-httproute", str(bad)], ["--from-httproute", str(tmp_path / "missing.yaml")],
                 ["--from-httproute", "nope", "-n", NS]):
        assert main([*argv, "--results", str(results)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "Traceback" not in err, err
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path, f"http://127.0.0.1:{free_port()}")))
    assert main(["--from-httproute", "recommendationservice", "-n", NS, "--results", str(results)]) == 4
    assert "cannot reach the Kubernetes API" in capsys.readouterr().err


def test_pinned_release():
    assert gw.CRDS_URL == ("https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.4.0/"
                           "standard-install.yaml")
