"""canary-setup up against recorded fakes of kubectl/istioctl/gcloud/kind/docker on PATH.

The fakes log argv + stdin (tests/fakes/fakebin.py); these tests assert the whole command sequence, the waits,
idempotency, resuming after a failure, and that a dry run touches nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fakes.harness import FakeCluster
from helpers import in_process

from splitproof.setup.cli import main
from splitproof.setup.cluster.lint import lint_documents
from splitproof.setup.cluster.options import OB_MANIFESTS_URL, Options
from splitproof.setup.manifests import mesh_documents
from splitproof.verifier.exitcodes import ExitCode

KIND = ["--provider", "kind", "--host", "shop.example.com"]


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    return FakeCluster(tmp_path, monkeypatch)


def index(commands: list[list[str]], *words: str, stdin: str | None = None, calls: list | None = None) -> int:
    """Position of the first command containing ``words`` in order (and ``stdin`` in its stdin)."""
    for i, command in enumerate(commands):
        text = " ".join(command)
        if all(w in command for w in words) or " ".join(words) in text:
            if stdin is None or (calls is not None and stdin in calls[i]["stdin"]):
                return i
    raise AssertionError(f"no command with {words} (stdin {stdin!r}) in:\n" + "\n".join(map(" ".join, commands)))


def applied_documents(fake: FakeCluster) -> list[dict]:
    return [doc for call in fake.calls("kubectl") if call["argv"][-4:-2] == ["-f", "-"] or "-" in call["argv"]
            for doc in yaml.safe_load_all(call["stdin"]) if doc]


def test_up_runs_the_lab_sequence_then_a_second_up_changes_nothing(fake: FakeCluster, capsys) -> None:
    code, out, err = in_process(main, capsys, "up", *KIND)
    assert (code, err) == (0, ""), out

    ctx = ["--context", "kind-istio-traffic-lab"]
    every = fake.calls()
    assert all(c["argv"][:2] == ctx for c in every if c["tool"] in ("kubectl", "istioctl")
               and c["argv"][:1] not in (["version"], ["config"]) and "--client" not in c["argv"]
               and c["argv"] != ["version", "--remote=false"])
    # The lab's changes, in the lab's order (the fake's log, with --context stripped):
    assert fake.mutations() == [
        ["kind", "create", "cluster", "--name", "istio-traffic-lab", "--wait", "300s"],
        ["istioctl", "install", "--set", "profile=demo", "-y"],
        ["kubectl", "create", "namespace", "online-boutique"],
        ["kubectl", "label", "namespace", "online-boutique", "istio-injection=enabled", "--overwrite"],
        ["kubectl", "apply", "-f", OB_MANIFESTS_URL, "-n", "online-boutique"],
        ["kubectl", "apply", "-f", "-"],  # Gateway
        ["kubectl", "apply", "-f", "-"],  # frontend VirtualService (--host)
        ["kubectl", "apply", "-f", "-"],  # internal frontend VirtualService
        ["kubectl", "apply", "-f", "-"],  # ServiceEntry googleapis
        ["kubectl", "apply", "-f", "-"],  # ServiceEntry metadata
        ["kubectl", "patch", "deployment", "recommendationservice", "-n", "online-boutique", "--type=json", "-p",
         '[{"op": "add", "path": "/spec/template/metadata/labels/version", "value": "production"}]'],
        ["kubectl", "apply", "-f", "-"],  # DestinationRule
        ["docker", "build", "-f", str(Path.cwd() / "setup/docker/Dockerfile"), "-t",
         "splitproof.local/splitproof:0.1.0", str(Path.cwd())],
        ["kind", "load", "docker-image", "splitproof.local/splitproof:0.1.0", "--name", "istio-traffic-lab"],
        ["kubectl", "apply", "-f", "-"],  # canary Deployment
        ["kubectl", "apply", "-f", "-"],  # weighted VirtualService
    ]
    docs = applied_documents(fake)
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("Gateway", "frontend-gateway"), ("VirtualService", "frontend-ingress"), ("VirtualService", "frontend"),
        ("ServiceEntry", "allow-egress-googleapis"), ("ServiceEntry", "allow-egress-google-metadata"),
        ("DestinationRule", "recommendationservice"), ("Deployment", "recommendationservice-canary"),
        ("VirtualService", "recommendationservice")]
    # The Istio documents applied are exactly the local mesh's (same templates, same parameters).
    mesh = mesh_documents(Options(host="shop.example.com").params())
    assert [d for d in docs if d["kind"] in ("Gateway", "VirtualService", "DestinationRule")] == mesh
    # Linted with the production Deployment as the cluster now holds it (patched): subsets match real labels.
    production = fake.obj("deployments", "online-boutique", "recommendationservice")
    assert production["spec"]["template"]["metadata"]["labels"] == {"app": "recommendationservice",
                                                                   "version": "production"}
    assert lint_documents(docs + [production], "online-boutique") == []

    # The waits: each after what it waits for, the proxy poll after the weighted route.
    commands, calls = fake.commands(), fake.calls()
    install = index(commands, "istioctl", "install")
    assert install < index(commands, "rollout", "status", "deployment/istiod") \
        < index(commands, "rollout", "status", "deployment/istio-ingressgateway") < index(commands, "crds")
    manifests = index(commands, "apply", "-f", OB_MANIFESTS_URL)
    for deployment in ("frontend", "recommendationservice", "redis-cart", "loadgenerator"):
        assert index(commands, "rollout", "status", f"deployment/{deployment}") > manifests
    sidecars = index(commands, "kubectl", "get", "pods", "-n", "online-boutique", "-o", "json")
    assert sidecars > index(commands, "rollout", "status", "deployment/shippingservice")
    patch = index(commands, "patch", "deployment", "recommendationservice")
    rule = index(commands, "apply", "-f", "-", stdin="kind: DestinationRule", calls=calls)
    canary = index(commands, "apply", "-f", "-", stdin="name: recommendationservice-canary", calls=calls)
    route = index(commands, "apply", "-f", "-", stdin="weight: 80", calls=calls)
    assert patch < rule < canary < route  # the DestinationRule before anything routes to its subsets
    assert canary < index(commands, "rollout", "status", "deployment/recommendationservice-canary") < route
    poll = index(commands, "istioctl", "proxy-config", "routes")
    assert poll > route and commands[poll][3].startswith("frontend-") and commands[poll][-2:] == ["-o", "json"]
    assert "✓ serving   production=80,canary=20 on frontend sidecar" in out
    assert "up: done, 16 change(s) made" in out

    # Second run: reads the live state, changes nothing, says so.
    fake.clear_log()
    code, out, err = in_process(main, capsys, "up", *KIND)
    assert (code, err) == (0, "")
    assert fake.mutations() == []
    assert "up: nothing changed" in out
    assert out.count("= unchanged") == 14
    assert any(c[:3] == ["istioctl", "proxy-config", "routes"] for c in fake.commands())  # still verified


def test_failure_in_step_5_names_step_command_stderr_and_resume_works(fake: FakeCluster, capsys) -> None:
    denied = 'admission webhook "validation.example" denied the request: image not allowed'
    fake.rule("*apply -f -", tool="kubectl", stdin_contains="name: recommendationservice-canary", rc=1,
              stderr=f"Error from server: {denied}\n", times=1)
    argv = ["up", *KIND, "--canary-image", "registry.example/reco:canary"]
    code, out, err = in_process(main, capsys, *argv)
    assert code == ExitCode.FAIL
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert lines[0].startswith("canary-setup: error: step 5/9 'canary' failed: applying "
                               "Deployment/recommendationservice-canary: `kubectl --context kind-istio-traffic-lab "
                               "apply -f -` exited 1: ")
    assert denied in lines[0]
    assert lines[1] == ("  resume with: canary-setup up --from-step canary --provider kind --host shop.example.com "
                        "--canary-image registry.example/reco:canary")
    assert fake.obj("virtualservices", "online-boutique", "recommendationservice") is None  # never routed

    fake.clear_log()
    code, out, err = in_process(main, capsys, *lines[1].split("resume with: canary-setup ")[1].split())
    assert (code, err) == (0, "")
    assert "resuming at step 5 (canary)" in out
    tools = {c[0] for c in fake.commands()}
    assert "kind" not in tools  # steps 1-4 were not run again
    assert not any(c[:2] == ["istioctl", "install"] for c in fake.commands())
    assert fake.mutations() == [["kubectl", "apply", "-f", "-"], ["kubectl", "apply", "-f", "-"]]
    assert [d["kind"] for d in applied_documents(fake)] == ["Deployment", "VirtualService"]
    assert "= unchanged DestinationRule/recommendationservice" in out  # applied before the failure
    canary = fake.obj("deployments", "online-boutique", "recommendationservice-canary")
    assert canary["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/reco:canary"


def test_dry_run_prints_the_lab_sequence_and_touches_nothing(fake: FakeCluster, capsys) -> None:
    world = fake.world()
    code, out, err = in_process(main, capsys, "up", "--dry-run", "--provider", "gke", "--static-ip", "203.0.113.10",
                         "--host", "shop.example.com")
    assert (code, err) == (0, "")
    assert fake.calls() == []  # not even a version check
    assert fake.world() == world
    markers = [
        "$ gcloud services enable container.googleapis.com",
        "$ gcloud compute networks create default --subnet-mode=auto --bgp-routing-mode=regional --mtu=1460",
        "$ gcloud container clusters create istio-traffic-lab --region us-central1 --network default "
        "--enable-ip-alias --enable-network-policy --num-nodes 1 --machine-type e2-standard-2 --release-channel stable",
        "$ gcloud container clusters get-credentials istio-traffic-lab --region us-central1",
        "install --set profile=demo --set values.gateways.istio-ingressgateway.loadBalancerIP=203.0.113.10 -y",
        "rollout status deployment/istiod -n istio-system",
        "create namespace online-boutique",
        "label namespace online-boutique istio-injection=enabled --overwrite",
        f"apply -f {OB_MANIFESTS_URL} -n online-boutique",
        "kind: Gateway",
        "name: frontend-ingress",
        "- shop.example.com",
        "name: frontend\n",
        "kind: ServiceEntry",
        "name: allow-egress-google-metadata",
        'patch deployment recommendationservice -n online-boutique --type=json -p \'[{"op": "add", '
        '"path": "/spec/template/metadata/labels/version", "value": "production"}]\'',
        "kind: DestinationRule",
        "name: recommendationservice-canary",
        "rollout status deployment/recommendationservice-canary",
        "weight: 80",
        "weight: 20",
        "proxy-config routes '<frontend-pod>' -n online-boutique -o json",
    ]
    positions = [out.find(m) for m in markers]
    missing = [m for m, p in zip(markers, positions, strict=True) if p < 0]
    assert not missing, out
    assert positions == sorted(positions), out
    assert "--context gke_PROJECT_ID_us-central1_istio-traffic-lab" in out
    assert "dry run: 19 command(s) above would change the cluster; nothing was touched" in out

    # The other commands' dry runs touch nothing either.
    for argv in (["down", "--provider", "gke", "--uninstall-istio", "--delete-cluster"], ["loadtest", *KIND],
                 ["weights", "50", *KIND], ["status", *KIND]):
        code, out, err = in_process(main, capsys, *argv, "--dry-run")
        assert (code, err) == (0, ""), out
        assert fake.calls() == [] and fake.world() == world
    assert "$ gcloud container clusters delete istio-traffic-lab --region us-central1 --quiet" in \
        in_process(main, capsys, "down", "--dry-run", "--provider", "gke", "--delete-cluster")[1]


def test_gke_provider_creates_network_cluster_and_uses_the_credentials_context(fake: FakeCluster, capsys) -> None:
    code, out, err = in_process(main, capsys, "up", "--provider", "gke", "--project", "fake-project", "--static-ip",
                         "203.0.113.10", "--to-step", "istio")
    assert (code, err) == (0, ""), out
    assert fake.mutations() == [
        ["gcloud", "services", "enable", "container.googleapis.com", "--project", "fake-project"],
        ["gcloud", "compute", "networks", "create", "default", "--subnet-mode=auto", "--bgp-routing-mode=regional",
         "--mtu=1460", "--project", "fake-project"],
        ["gcloud", "container", "clusters", "create", "istio-traffic-lab", "--region", "us-central1", "--network",
         "default", "--enable-ip-alias", "--enable-network-policy", "--num-nodes", "1", "--machine-type",
         "e2-standard-2", "--release-channel", "stable", "--project", "fake-project"],
        ["gcloud", "container", "clusters", "get-credentials", "istio-traffic-lab", "--region", "us-central1",
         "--project", "fake-project"],
        ["istioctl", "install", "--set", "profile=demo", "--set",
         "values.gateways.istio-ingressgateway.loadBalancerIP=203.0.113.10", "-y"],
    ]
    install = next(c for c in fake.calls("istioctl") if "install" in c["argv"])
    assert install["argv"][:2] == ["--context", "gke_fake-project_us-central1_istio-traffic-lab"]
    assert "ingress address: 203.0.113.10" in out

    # Same command again: the cluster exists, Istio holds the static IP -> nothing to change.
    fake.clear_log()
    code, out, _ = in_process(main, capsys, "up", "--provider", "gke", "--project", "fake-project", "--static-ip",
                       "203.0.113.10", "--to-step", "istio")
    assert code == 0 and fake.mutations() == [] and "nothing changed" in out
    # A different static IP re-runs istioctl install (the ingress Service holds the old one).
    fake.clear_log()
    code, out, _ = in_process(main, capsys, "up", "--provider", "gke", "--project", "fake-project", "--static-ip",
                       "203.0.113.99", "--from-step", "istio", "--to-step", "istio")
    assert code == 0
    assert fake.mutations() == [["istioctl", "install", "--set", "profile=demo", "--set",
                                 "values.gateways.istio-ingressgateway.loadBalancerIP=203.0.113.99", "-y"]]
