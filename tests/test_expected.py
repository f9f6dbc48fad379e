"""The expected split: --expected, --weights, VirtualService files and a live VirtualService (real kubernetes
client against a small recorded fake API server on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from helpers import http_server, send_json

from splitproof.setup.manifests import CanaryParams, mesh_yaml, render
from splitproof.verifier.errors import InputError, Unreachable
from splitproof.verifier.expected import Expected, check_attributable, from_canary_percent, from_weights_spec
from splitproof.verifier.inputs.virtualservice import from_virtualservice_file, from_virtualservice_live


def test_canary_percent():
    e = from_canary_percent("20")
    assert list(e.items()) == [("production", 0.8), ("canary", 0.2)]
    assert e.weights == {"production": 80, "canary": 20} and e.describe() == "production=80%,canary=20%"
    assert from_canary_percent(0)["canary"] == 0.0
    for bad in ("150", "-5", "abc", "12.5", ""):
        with pytest.raises(InputError, match="--expected"):
            from_canary_percent(bad)


def test_weights_spec():
    e = from_weights_spec("production=60,canary=30,shadow=10")
    assert list(e) == ["production", "canary", "shadow"] and e["shadow"] == pytest.approx(0.1)
    for bad, message in [("production=80,canary=30", "sum to 100"), ("production=80,canary", "look like"),
                         ("production=-20,canary=120", "0 to 100"), ("production=80,production=20", "twice"),
                         ("production=eighty,canary=20", "integer")]:
        with pytest.raises(InputError, match=message):
            from_weights_spec(bad)


def test_expected_is_a_validated_mapping():
    e = Expected({"a": 0.5, "b": 0.5})
    assert dict(e) == {"a": 0.5, "b": 0.5} and len(e) == 2
    for bad in ({}, {"a": 0.5}, {"a": 1.2, "b": -0.2}, {"": 1.0}, {"a": float("nan")}):
        with pytest.raises(InputError):
            Expected(bad)


@pytest.mark.parametrize("api_version", ["networking.istio.io/v1", "networking.istio.io/v1beta1",
                                         "networking.istio.io/v1alpha3"])
def test_virtualservice_file_from_the_project_templates(tmp_path, api_version):
    params = CanaryParams(api_version=api_version, weights={"production": 70, "canary": 30})
    path = tmp_path / "mesh.yaml"
    path.write_text(mesh_yaml(params))  # Gateway, frontend VSs, DestinationRule, weighted VS: multi-document
    e = from_virtualservice_file(path)
    assert dict(e) == {"production": 0.7, "canary": 0.3}
    assert "VirtualService recommendationservice" in e.source


def test_virtualservice_with_a_header_route_first_and_fqdn_hosts(tmp_path):
    path = tmp_path / "vs.yaml"
    path.write_text("""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reco, namespace: shop}
spec:
  hosts: [recommendationservice.shop.svc.cluster.local]
  http:
  - match: [{headers: {end-user: {exact: tester}}}]
    route: [{destination: {host: recommendationservice, subset: canary}}]
  - route:
    - destination: {host: recommendationservice.shop.svc.cluster.local, subset: production}
      weight: 90
    - destination: {host: recommendationservice.shop.svc.cluster.local, subset: canary}
      weight: 10
""")
    assert dict(from_virtualservice_file(path)) == {"production": 0.9, "canary": 0.1}


def test_single_destination_without_weight_is_100(tmp_path):
    path = tmp_path / "vs.yaml"
    path.write_text(render("vs-recommendation.yaml.j2", CanaryParams(weights={"production": 100})))
    assert dict(from_virtualservice_file(path)) == {"production": 1.0}


@pytest.mark.parametrize(("text", "message"), [
    ("kind: [unclosed", "not valid YAML"),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n", "no VirtualService for host 'recommendationservice'"),
    ("""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [recommendationservice]
  http:
  - route:
    - {destination: {host: recommendationservice, subset: production}, weight: 80}
    - {destination: {host: recommendationservice, subset: canary}, weight: 30}
""", "sum to 100"),
    ("""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [recommendationservice]
  http:
  - route:
    - {destination: {host: recommendationservice, subset: production}, weight: 120}
    - {destination: {host: recommendationservice, subset: canary}, weight: -20}
""", "0 to 100"),
    ("""apiVersion: networking.istio.io/v2
kind: VirtualService
metadata: {name: r}
spec: {hosts: [recommendationservice], http: [{route: [{destination: {host: recommendationservice}}]}]}
""", "unsupported apiVersion"),
    ("""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec: {hosts: [recommendationservice], tcp: []}
""", "no http routes"),
])
def test_bad_virtualservice_files(tmp_path, text, message):
    path = tmp_path / "vs.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as info:
        from_virtualservice_file(path)
    assert "\n" not in str(info.value)


def test_unknown_subsets_against_the_destinationrule(tmp_path):
    params = CanaryParams(weights={"production": 80, "canary": 20})
    rule = render("destinationrule.yaml.j2", params)
    vs = render("vs-recommendation.yaml.j2", params).replace("subset: canary", "subset: canary-v2")
    path = tmp_path / "both.yaml"
    path.write_text(rule + "\n---\n" + vs)
    with pytest.raises(InputError, match="canary-v2"):
        from_virtualservice_file(path)


def test_missing_file_suggests_the_live_form(tmp_path):
    with pytest.raises(InputError, match="-n NAMESPACE"):
        from_virtualservice_file(tmp_path / "nope.yaml")


def test_check_attributable():
    check_attributable(from_canary_percent(20), ["production", "canary"])
    check_attributable({"production": 1.0, "blue": 0.0}, ["production", "canary"])  # 0% needs no attribution
    with pytest.raises(InputError, match="blue"):
        check_attributable(from_weights_spec("production=80,blue=20"), ["production", "canary"])


# ------------------------------------------------------------------------------------------ live: fake API server

RECORDED_VS = {  # what `kubectl get virtualservice recommendationservice -n online-boutique -o json` returns
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {
        "name": "recommendationservice", "namespace": "online-boutique", "generation": 3,
        "resourceVersion": "184467", "uid": "5f0c8a8e-3f7e-4a53-9d49-0b1c2f0e7a11",
        "creationTimestamp": "2026-11-20T10:00:00Z",
    },
    "spec": {
        "hosts": ["recommendationservice"],
        "http": [{"route": [
            {"destination": {"host": "recommendationservice", "port": {"number": 8080}, "subset": "production"},
             "weight": 80},
            {"destination": {"host": "recommendationservice", "port": {"number": 8080}, "subset": "canary"},
             "weight": 20},
        ]}],
    },
}


def _status(code: int, reason: str, message: str) -> dict[str, object]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


class FakeApiHandler(BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 -- http.server's naming
        FakeApiHandler.requests.append(self.path)
        path = self.path.split("?", 1)[0]
        if self.headers.get("Authorization") != "Bearer recorded-token":
            self._send(401, _status(401, "Unauthorized", "Unauthorized"))
        elif path == "/apis/networking.istio.io/v1/namespaces/online-boutique/virtualservices/recommendationservice":
            self._send(200, RECORDED_VS)
        elif path.endswith("/virtualservices/forbidden"):
            self._send(403, _status(403, "Forbidden", "virtualservices is forbidden"))
        else:
            self._send(404, _status(404, "NotFound", "virtualservices.networking.istio.io not found"))

    def _send(self, code: int, body: dict[str, object]) -> None:
        send_json(self, code, body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_api() -> Iterator[str]:
    with http_server(FakeApiHandler) as url:
        yield url


def write_kubeconfig(tmp_path: Path, server: str, token: str = "recorded-token") -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster: {{server: "{server}"}}
users:
- name: tester
  user: {{token: {token}}}
contexts:
- name: fake
  context: {{cluster: fake, user: tester, namespace: online-boutique}}
current-context: fake
""")
    return path


def test_live_virtualservice_with_the_real_client(fake_api, tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path, fake_api)))
    FakeApiHandler.requests.clear()
    e = from_virtualservice_live("recommendationservice", "online-boutique")
    assert dict(e) == {"production": 0.8, "canary": 0.2}
    assert FakeApiHandler.requests[0].startswith(
        "/apis/networking.istio.io/v1/namespaces/online-boutique/virtualservices/recommendationservice")
    with pytest.raises(InputError, match="not found in namespace 'other'"):
        from_virtualservice_live("recommendationservice", "other")
    with pytest.raises(InputError, match="refused access"):
        from_virtualservice_live("forbidden", "online-boutique")


def test_live_errors(fake_api, tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path, fake_api, token="wrong")))
    with pytest.raises(InputError, match="refused access"):
        from_virtualservice_live("recommendationservice", "online-boutique")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    with pytest.raises(InputError, match="kube context"):
        from_virtualservice_live("recommendationservice", "online-boutique")
    from conftest import free_port

    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path, f"http://127.0.0.1:{free_port()}")))
    with pytest.raises(Unreachable, match="cannot reach the Kubernetes API"):
        from_virtualservice_live("recommendationservice", "online-boutique")
