"""The single steps against the recorded fakes, starting from a cluster a real `up` (against the fakes) left behind
(the session's ``finished_world``, tests/conftest.py):
the proxy wait and its timeout, the gRPC gateway route, refusals, sidecar verification, status, down, loadtest,
preflight and usage errors."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakes.harness import RECORDED, FakeCluster
from helpers import in_process

from splitproof.setup.cli import main
from splitproof.verifier.exitcodes import ExitCode

KIND = ["--provider", "kind"]
NS = "online-boutique"
REPO = Path(__file__).resolve().parent.parent
KUBECTL = REPO / ".venv" / "bin" / "kubectl"


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, finished_world: dict[str, Any],
         capsys: pytest.CaptureFixture[str]) -> FakeCluster:
    capsys.readouterr()
    # the fakes answer at once; no need to pace
    monkeypatch.setattr("splitproof.setup.cluster.router.PROXY_POLL_S", 0.01)
    monkeypatch.setattr("splitproof.setup.cluster.loadtest.POLL_S", 0.01)
    cluster = FakeCluster(tmp_path, monkeypatch)
    cluster.save_world(json.loads(json.dumps(finished_world)))
    return cluster


def polls(fake: FakeCluster) -> list[list[str]]:
    return [c for c in fake.commands() if c[1:3] == ["proxy-config", "routes"]]


def applied(fake: FakeCluster) -> list[dict[str, Any]]:
    return [d for c in fake.calls("kubectl") if "apply" in c["argv"] and c["stdin"]
            for d in yaml.safe_load_all(c["stdin"]) if d]


def route_of(doc: dict[str, Any]) -> list[tuple[str, int]]:
    return [(r["destination"]["subset"], r["weight"]) for r in doc["spec"]["http"][0]["route"]]


# ------------------------------------------------------------------------------------------- weights


def test_weights_returns_only_once_the_proxies_serve_them(fake: FakeCluster, capsys) -> None:
    fake.update(lambda w: w.update(proxy_lag=2))  # the proxies see a change on the 3rd poll
    code, out, err = in_process(main, capsys, "weights", "50", *KIND)
    assert (code, err) == (0, ""), out
    assert fake.mutations() == [["kubectl", "apply", "-f", "-"]]
    assert [route_of(d) for d in applied(fake)] == [[("production", 50), ("canary", 50)]]
    assert len(polls(fake)) == 3
    assert all(p[3].startswith("frontend-") and p[4:] == ["-n", NS, "-o", "json"] for p in polls(fake))
    assert "serving   production=50,canary=50 on frontend sidecar" in out
    live = fake.obj("virtualservices", NS, "recommendationservice")
    assert route_of(live) == [("production", 50), ("canary", 50)]


def test_weights_timeout_is_a_clear_error_with_what_the_proxy_holds(fake: FakeCluster, capsys) -> None:
    fake.update(lambda w: w.update(proxy_lag=10**9))
    code, out, err = in_process(main, capsys, "weights", "--weights", "production=50,canary=50", "--proxy-timeout",
                                "1", *KIND)
    assert code == ExitCode.TIMEOUT
    first, resume = err.strip().splitlines()
    assert first.startswith("canary-setup: error: step 6/9 'weights' failed: the proxies did not serve "
                            "production=50,canary=50 within 1s: frontend sidecar frontend-")
    assert first.endswith("holds production=80,canary=20 (check `istioctl proxy-status`)")
    assert resume == ("  resume with: canary-setup weights --provider kind --weights production=50,canary=50 "
                      "--proxy-timeout 1")
    assert len(polls(fake)) >= 2


def test_grpc_gateway_route_carries_the_same_weights_and_is_waited_for_on_the_gateway(fake, capsys) -> None:
    code, out, _ = in_process(main, capsys, "expose", "--grpc-gateway", "--host", "shop.example.com", *KIND)
    assert code == 0
    gateway = [d for d in applied(fake) if d["kind"] == "Gateway"]
    assert [g["spec"]["servers"][0]["port"] for g in gateway] == [{"number": 80, "name": "grpc", "protocol": "GRPC"}]
    assert gateway[0]["spec"]["servers"][0]["hosts"] == ["recommendations.shop.example.com"]
    assert "VirtualService/recommendationservice-grpc-ingress" not in out  # no weighted route before the weights step

    fake.clear_log()
    code, out, err = in_process(main, capsys, "weights", "30", "--grpc-gateway", "--host", "shop.example.com", *KIND)
    assert (code, err) == (0, ""), out
    docs = applied(fake)
    assert [(d["metadata"]["name"], route_of(d)) for d in docs] == [
        ("recommendationservice", [("production", 70), ("canary", 30)]),
        ("recommendationservice-grpc-ingress", [("production", 70), ("canary", 30)])]
    assert docs[1]["spec"]["gateways"] == ["recommendationservice-grpc-gateway"]
    assert docs[1]["spec"]["hosts"] == ["recommendations.shop.example.com"]
    gateway_polls = [p for p in polls(fake) if p[4:6] == ["-n", "istio-system"]]
    assert gateway_polls and gateway_polls[0][3].startswith("istio-ingressgateway-")
    assert "serving   production=70,canary=30 on ingress gateway" in out

    # Without the flag, a later weights change still moves the gateway route (found live), keeping its host.
    fake.clear_log()
    code, _, _ = in_process(main, capsys, "weights", "40", *KIND)
    assert code == 0
    docs = applied(fake)
    assert [(d["metadata"]["name"], route_of(d)) for d in docs] == [
        ("recommendationservice", [("production", 60), ("canary", 40)]),
        ("recommendationservice-grpc-ingress", [("production", 60), ("canary", 40)])]
    assert docs[1]["spec"]["hosts"] == ["recommendations.shop.example.com"]


def test_weights_refuses_to_route_before_the_destination_rule_exists(fake: FakeCluster, capsys) -> None:
    fake.update(lambda w: w["objects"].pop(f"destinationrules|{NS}|recommendationservice"))
    code, _, err = in_process(main, capsys, "weights", "50", *KIND)
    assert code == ExitCode.FAIL
    assert "DestinationRule recommendationservice not found in online-boutique: run `canary-setup canary` first" in err
    assert fake.mutations() == []


def test_weights_naming_an_undefined_subset_is_a_config_error(fake: FakeCluster, capsys) -> None:
    code, _, err = in_process(main, capsys, "weights", "--weights", "production=50,canary=40,v3=10", *KIND)
    assert code == ExitCode.USAGE
    assert err.startswith("canary-setup: error: weights name subsets the DestinationRule does not define: v3")
    assert fake.calls() == []  # rejected before anything ran


# ------------------------------------------------------------------------------------------- app: sidecars


def test_prometheus_addon_of_the_installed_release_is_applied_once_and_pointed_at(fake: FakeCluster,
                                                                                 capsys) -> None:
    def addon_applies() -> list[list[str]]:
        return [c for c in fake.commands("kubectl") if c[1:3] == ["apply", "-f"] and c[3].endswith("prometheus.yaml")]

    code, out, _err = in_process(main, capsys, "istio", *KIND, "--prometheus-addon", "--dry-run")
    assert code == 0 and addon_applies() == []  # dry run: printed, not run
    assert "release-1.24/samples/addons/prometheus.yaml" in out
    code, out, _err = in_process(main, capsys, "istio", *KIND, "--prometheus-addon")
    assert code == 0 and len(addon_applies()) == 1
    assert addon_applies()[0][3] == "https://raw.githubusercontent.com/istio/istio/release-1.24/samples/addons/" \
                                    "prometheus.yaml"
    assert fake.world()["objects"].get("deployments|istio-system|prometheus")
    assert "http://prometheus.istio-system:9090" in out and "port-forward -n istio-system svc/prometheus" in out
    code, out, _err = in_process(main, capsys, "istio", *KIND, "--prometheus-addon")
    assert code == 0 and len(addon_applies()) == 1 and "unchanged" in out.lower()


def test_app_names_every_pod_without_a_sidecar(fake: FakeCluster, capsys) -> None:
    def strip_sidecar(world: dict[str, Any]) -> None:
        for key, obj in world["objects"].items():
            if key.startswith(f"pods|{NS}|cartservice-") or key.startswith(f"pods|{NS}|adservice-"):
                obj["spec"]["containers"] = [c for c in obj["spec"]["containers"] if c["name"] != "istio-proxy"]

    fake.update(strip_sidecar)
    code, out, err = in_process(main, capsys, "app", *KIND)
    assert code == ExitCode.FAIL
    assert "Traceback" not in err
    message = err.splitlines()[0]
    assert "step 3/9 'app' failed: 2 pod(s) in online-boutique have no istio-proxy sidecar: adservice-" in message
    assert ", cartservice-" in message
    assert "`kubectl rollout restart deployment -n online-boutique`" in message
    assert fake.mutations() == []  # everything else was already in place


def test_app_with_a_local_manifest_file_and_a_missing_one(fake: FakeCluster, capsys, tmp_path: Path) -> None:
    manifests = tmp_path / "ob.yaml"
    manifests.write_text((RECORDED / "kubernetes-manifests.yaml").read_text())
    code, out, _ = in_process(main, capsys, "app", "--manifests", str(manifests), *KIND)
    assert code == 0 and fake.mutations() == [] and f"= unchanged manifests {manifests}" in out
    code, _, err = in_process(main, capsys, "app", "--manifests", str(tmp_path / "nope.yaml"), *KIND)
    assert code == ExitCode.USAGE and "nope.yaml: no such file or directory" in err


# ------------------------------------------------------------------------------------------- status


def test_status_compares_declared_and_served_weights(fake: FakeCluster, capsys) -> None:
    code, out, _ = in_process(main, capsys, "status", *KIND)
    assert code == 0, out
    assert "production=80,canary=20" in out and "13/13 pods with istio-proxy" in out
    assert "No validation issues found" in out and "healthy" in out
    assert fake.mutations() == []

    def declare_50(world: dict[str, Any]) -> None:
        world["proxy_lag"] = 10**9
        vs = world["objects"][f"virtualservices|{NS}|recommendationservice"]
        for route in vs["spec"]["http"][0]["route"]:
            route["weight"] = 50

    fake.update(declare_50)
    code, out, _ = in_process(main, capsys, "status", *KIND)
    assert code == ExitCode.FAIL
    assert "production=80,canary=20  (declared production=50,canary=50)" in out
    assert "NOT healthy" in out


# ------------------------------------------------------------------------------------------- down


def test_down_removes_in_reverse_order_then_has_nothing_left_to_do(fake: FakeCluster, capsys) -> None:
    code, out, err = in_process(main, capsys, "down", *KIND)
    assert (code, err) == (0, ""), out
    deletes = [c[1:] for c in fake.mutations()]
    names = [(c[1].split(".")[0], c[2]) if c[0] == "delete" else (c[0], c[-1]) for c in deletes]
    assert names == [
        ("job,deployment,service,configmap", "-l"),  # loadtest leftovers (app=locust)
        ("virtualservices", "recommendationservice-grpc-ingress"), ("virtualservices", "recommendationservice"),
        ("deployments", "recommendationservice-canary"), ("destinationrules", "recommendationservice"),
        ("patch", '[{"op": "remove", "path": "/spec/template/metadata/labels/version"}]'),
        ("gateways", "recommendationservice-grpc-gateway"),
        ("serviceentries", "allow-egress-google-metadata"), ("serviceentries", "allow-egress-googleapis"),
        ("virtualservices", "frontend"), ("virtualservices", "frontend-ingress"), ("gateways", "frontend-gateway"),
        ("namespaces", NS)]
    assert "Istio (kept; --uninstall-istio removes it)" in out and "cluster (kept;" in out
    assert fake.obj("namespaces", None, NS) is None and fake.world()["istio"] is True

    fake.clear_log()
    code, out, _ = in_process(main, capsys, "down", *KIND)
    assert code == 0 and fake.mutations() == [] and "nothing of the app to remove" in out

    fake.clear_log()
    code, out, _ = in_process(main, capsys, "down", "--delete-cluster", *KIND)
    assert code == 0
    assert fake.mutations() == [["istioctl", "uninstall", "--purge", "-y"],
                                ["kubectl", "delete", "namespaces", "istio-system", "--ignore-not-found",
                                 "--timeout=120s"],
                                ["kind", "delete", "cluster", "--name", "istio-traffic-lab"]]
    assert fake.world()["kind"] == []


def test_down_never_deletes_a_cluster_it_did_not_create(fake: FakeCluster, capsys) -> None:
    code, _, err = in_process(main, capsys, "down", "--delete-cluster", "--context", "kind-istio-traffic-lab")
    assert code == ExitCode.USAGE and "--delete-cluster deletes only clusters canary-setup creates" in err
    assert fake.mutations() == []


# ------------------------------------------------------------------------------------------- loadtest


def test_loadtest_runs_locust_in_the_mesh_collects_the_results_and_gates_on_verify_split(
        fake: FakeCluster, capsys, tmp_path: Path) -> None:
    records = tmp_path / "recorded-results.jsonl"
    records.write_text("".join(json.dumps({"v": 1, "t": 1.0 + i, "channel": "grpc", "items": 2 if i % 5 else 5,
                                           "version": "canary" if i % 5 else "production", "status": "ok",
                                           "latency_ms": 1.5}) + "\n" for i in range(10)))
    fake.rule("*exec locust-master-* cat /results/status.json", tool="kubectl", rc=1,
              stderr="cat: /results/status.json: No such file or directory\n", times=2)
    fake.rule("*exec locust-master-* cat /results/status.json", tool="kubectl", stdout='{"exit_code": 1}\n')
    fake.rule("*exec locust-master-* cat /results/results.jsonl", tool="kubectl", stdout_file=str(records))
    fake.rule("*exec locust-master-* touch /results/collected", tool="kubectl")
    fake.rule("--results * --expected 20", tool="verify-split", rc=1, stdout="FAIL: canary share 80.0%\n")
    results = tmp_path / "out" / "cluster.jsonl"
    code, out, err = in_process(main, capsys, "loadtest", *KIND, "--loadtest-image", "registry.example/splitproof:1",
                         "--results", str(results), "--duration", "30s", "--workers", "3")
    assert code == 1, out + err  # verify-split's verdict is the exit code
    assert results.read_text() == records.read_text()
    assert "FAIL: canary share 80.0%" in out

    commands = fake.commands()
    kinds = [" ".join(c[1:4]) for c in commands if c[0] in ("kubectl", "verify-split")]
    start = kinds.index("delete job,deployment,service,configmap -l")
    assert kinds[start + 1] == "apply -f -"
    execs = [c[-2:] for c in commands if c[1:2] == ["exec"]]
    assert execs == [["cat", "/results/status.json"]] * 3 + [["cat", "/results/results.jsonl"],
                                                            ["touch", "/results/collected"]]
    assert commands[-2][1:3] == ["delete", "job,deployment,service,configmap"]  # cleaned up afterwards
    assert commands[-1] == ["verify-split", "--results", str(results), "--expected", "20"]
    assert fake.world()["objects"].get(f"jobs|{NS}|locust-master") is None

    docs = applied(fake)
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("ConfigMap", "locust-locustfile"), ("Service", "locust-master"), ("Job", "locust-master"),
        ("Deployment", "locust-worker")]
    configmap, _, job, workers = docs
    master = job["spec"]["template"]["spec"]["containers"][0]
    assert master["image"] == "registry.example/splitproof:1"
    assert master["command"][:4] == ["python", "-P", "-m", "splitproof.setup.cluster.podrun"]
    args = master["args"]
    assert args[:3] == ["locust", "-f", "/mnt/locust/boutique.py"]
    for flag, value in (("--host", f"http://frontend.{NS}.svc.cluster.local"),
                        ("--grpc-target", f"recommendationservice.{NS}.svc.cluster.local:8080"),
                        ("--split-results", "/results/results.jsonl"), ("--expected", "20"), ("-t", "30s"),
                        ("--expect-workers", "3")):
        assert args[args.index(flag) + 1] == value
    assert args[-2:] == ["ShopperUser", "RecommendationUser"]
    assert workers["spec"]["replicas"] == 3
    assert "--worker" in workers["spec"]["template"]["spec"]["containers"][0]["command"]

    # The real verify-split accepts exactly that command line (a verdict, not a usage error, on the records).
    real_verifier = subprocess.run([str(REPO / ".venv" / "bin" / "verify-split"), *commands[-1][1:]],
                                   capture_output=True, text=True, timeout=120, check=False)
    assert real_verifier.returncode in (0, 1, 3), real_verifier.stderr

    # The ConfigMap is what `kubectl create configmap --from-file` makes of loadtest/boutique.py (real kubectl).
    real = subprocess.run([str(KUBECTL), "create", "configmap", "locust-locustfile", "-n", NS,
                           f"--from-file=boutique.py={REPO / 'loadtest' / 'boutique.py'}", "--dry-run=client",
                           "-o", "json"], capture_output=True, text=True, timeout=60, check=True,
                          env={**os.environ, "KUBECONFIG": os.devnull})
    assert configmap["data"] == json.loads(real.stdout)["data"]


# ------------------------------------------------------------------------------------------- preflight, errors


def test_preflight_names_every_missing_binary(fake: FakeCluster, capsys, monkeypatch) -> None:
    (fake.bin / "istioctl").unlink()
    (fake.bin / "kind").unlink()
    monkeypatch.setenv("PATH", str(fake.bin))
    code, out, err = in_process(main, capsys, "up", *KIND)
    assert code == ExitCode.MISSING_BINARY
    assert err.startswith("canary-setup: error: missing kind, istioctl (kind: https://kind.sigs.k8s.io")
    assert "istioctl: curl -L https://istio.io/downloadIstio" in err
    assert "MISSING" in out and "v1.37.1" in out  # the present ones with their versions
    assert fake.mutations() == []


def test_expose_before_istio_says_to_install_istio_first(fake: FakeCluster, capsys) -> None:
    fake.update(lambda w: w.update(istio=False))
    code, _, err = in_process(main, capsys, "expose", *KIND)
    assert code == ExitCode.FAIL
    assert "step 4/9 'expose' failed: reading Gateway/frontend-gateway (Istio's CRDs are not installed: run " \
           "`canary-setup istio` first)" in err


def test_a_docker_client_without_daemon_is_reported_before_anything_runs(fake: FakeCluster, capsys) -> None:
    fake.rule("version --format {{.Server.Version}}", tool="docker", rc=1,
              stderr="Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon "
                     "running?\n")
    code, out, err = in_process(main, capsys, "up", *KIND)
    assert code == ExitCode.MISSING_BINARY
    assert "missing docker (docker: the docker daemon does not answer" in err and "no daemon" in out
    assert fake.mutations() == []


def test_unreachable_context_and_unknown_context(fake: FakeCluster, capsys) -> None:
    fake.update(lambda w: w.update(unreachable=["kind-istio-traffic-lab"]))
    code, _, err = in_process(main, capsys, "status", *KIND)
    assert code == ExitCode.UNREACHABLE
    assert "cannot reach the cluster of kind-istio-traffic-lab: Unable to connect to the server" in err
    code, _, err = in_process(main, capsys, "up", "--context", "nope", "--to-step", "cluster")
    assert code == ExitCode.USAGE
    assert "no kube context named 'nope' (known: fake-ctx, kind-istio-traffic-lab)" in err


@pytest.mark.parametrize(("argv", "message"), [
    (["weights", "150"], "canary weight must be an integer from 0 to 100, got 150"),
    (["up", "--weights", "production=70,canary=20"], "weights must sum to 100, got 90"),
    (["up", "--dry-run", "--api-version", "networking.istio.io/v2"], "unsupported apiVersion"),
    (["up", "--dry-run"], "the canary step needs an image: pass --canary-image IMAGE, or --image-repo REPO"),
])
def test_user_mistakes_are_one_line_without_traceback(fake: FakeCluster, capsys, argv, message) -> None:
    code, out, err = in_process(main, capsys, *argv)
    assert code == ExitCode.USAGE
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert fake.calls() == []


def test_plan_lists_the_nine_steps_and_what_each_changes(fake: FakeCluster, capsys) -> None:
    code, out, _ = in_process(main, capsys, "plan", "--provider", "gke")
    assert code == 0 and fake.calls() == []
    for name in ("cluster", "istio", "app", "expose", "canary", "weights", "status", "loadtest", "down"):
        assert f" {name} " in out
    assert "istioctl install --set profile=demo" in out and "nothing (read-only)" in out
