"""``canary-setup rollout --context`` through the ClusterRouter against the recorded kubectl/istioctl fakes
(tests/fakes, starting from the cluster a real ``up`` left): every call in order for a promotion and a rollback,
proxies that lag, and the dry run. The source is scripted here (the step's evidence is not what these tests are
about); the real source is tested on the local mesh (tests/test_rollout_mesh.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakes.harness import FakeCluster
from helpers import in_process

from splitproof.setup.cli import main
from splitproof.setup.rollout import targets
from splitproof.setup.rollout.driver import NoCanaryCheck, StepVerdict
from splitproof.verifier.exitcodes import ExitCode

CTX = "kind-istio-traffic-lab"
NS = "online-boutique"


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, finished_world: dict[str, Any],
         capsys: pytest.CaptureFixture[str]) -> FakeCluster:
    capsys.readouterr()
    monkeypatch.setattr("splitproof.setup.cluster.router.PROXY_POLL_S", 0.01)
    cluster = FakeCluster(tmp_path, monkeypatch)
    cluster.save_world(json.loads(json.dumps(finished_world)))
    cluster.clear_log()
    return cluster


class Scripted:
    """The step source, scripted: an outcome per canary percent; records what was judged."""

    def __init__(self, outcomes: dict[int, str]) -> None:
        self.outcomes, self.judged, self.checks = outcomes, [], 0

    def __call__(self, target: Any, *, health: bool) -> Scripted:
        self.target, self.health = target, health
        return self

    def judge(self, plan: Any, step: Any, timeout: float) -> StepVerdict:
        self.judged.append(step.percent)
        outcome = self.outcomes.get(step.percent, "PASS")
        return StepVerdict(outcome, f"scripted {outcome}", samples=10, split=outcome)

    def confirm_no_canary(self) -> NoCanaryCheck:
        self.checks += 1
        return NoCanaryCheck(200, 0)


def weighted(fake: FakeCluster) -> list[list[tuple[str, int]]]:
    """The weights of every VirtualService applied, in order."""
    out = []
    for call in fake.calls("kubectl"):
        if "apply" in call["argv"] and call["stdin"]:
            for doc in yaml.safe_load_all(call["stdin"]):
                if doc and doc.get("kind") == "VirtualService" and doc["metadata"]["name"] == "recommendationservice":
                    out.append([(r["destination"]["subset"], r["weight"]) for r in doc["spec"]["http"][0]["route"]])
    return out


def kinds(fake: FakeCluster) -> list[str]:
    """Each call as a short word, in order: apply (the weighted VirtualService), poll (proxy-config routes on a
    frontend pod), and the reads in between."""
    words = []
    for c in fake.commands():
        if c[0] == "istioctl" and c[1:3] == ["proxy-config", "routes"]:
            assert c[3].startswith("frontend-") and c[4:] == ["-n", NS, "-o", "json"], c
            words.append("poll")
        elif c[0] == "kubectl" and "apply" in c:
            words.append("apply")
        elif c[0] == "kubectl" and c[1] == "get":
            words.append(f"get {c[2]}")
        else:
            words.append(" ".join(c))
    return words


def test_a_promotion_applies_each_step_and_polls_the_proxies_before_judging(fake, monkeypatch, capsys,
                                                                            tmp_path) -> None:
    fake.update(lambda w: w.update(proxy_lag=1))  # each change is seen by the proxy on the 2nd poll
    source = Scripted({})
    monkeypatch.setattr(targets, "SampleSource", source)
    log = tmp_path / "log.jsonl"
    code, out, err = in_process(main, capsys, "rollout", "--context", CTX, "--steps", "5,50,100", "--url",
                                "http://127.0.0.1:9", "--json-log", str(log))
    assert code == ExitCode.OK, out + err
    assert weighted(fake) == [[("production", 95), ("canary", 5)], [("production", 50), ("canary", 50)],
                              [("production", 0), ("canary", 100)]]
    # first the DestinationRule (both subsets defined?) and the gateway-bound route (does one carry the split?);
    # then per step: the live VirtualService, apply it, the frontend pod, its routes polled until served (the lag:
    # twice) -- and only then the step is judged
    vs, step = "get virtualservices.networking.istio.io", ["apply", "get pods", "poll", "poll"]
    assert kinds(fake) == ["get destinationrules.networking.istio.io", vs, *([vs, *step] * 3)]
    assert len(fake.mutations()) == 3
    assert source.judged == [5, 50, 100] and source.target.url == "http://127.0.0.1:9"
    assert f"kubectl --context {CTX} -n {NS} set image deployment/recommendationservice" in out
    got = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert got.count("weights_served") == 3 and got[-1] == "promoted"


def test_a_failed_step_rolls_the_cluster_back_to_production_and_reads_it_back(fake, monkeypatch, capsys) -> None:
    source = Scripted({50: "FAIL"})
    monkeypatch.setattr(targets, "SampleSource", source)
    code, out, err = in_process(main, capsys, "rollout", "--context", CTX, "--steps", "20,50,100", "--target",
                                "127.0.0.1:9")
    assert code == ExitCode.FAIL
    assert "rolled back at step 2/3 (canary 50%): scripted FAIL" in err
    # 80/20 is what the cluster already declares (no apply: unchanged), then 50/50, then the rollback
    assert weighted(fake) == [[("production", 50), ("canary", 50)], [("production", 100), ("canary", 0)]]
    assert kinds(fake)[-1] == "poll" and source.checks == 1 and source.judged == [20, 50]
    live = fake.obj("virtualservices", NS, "recommendationservice")
    assert [r["weight"] for r in live["spec"]["http"][0]["route"]] == [100, 0]


def test_proxies_that_never_serve_a_step_fail_it_and_the_rollout_says_which(fake, monkeypatch, capsys) -> None:
    source = Scripted({})
    monkeypatch.setattr(targets, "SampleSource", source)
    fake.update(lambda w: w.update(proxy_lag=10**9))
    code, _, err = in_process(main, capsys, "rollout", "--context", CTX, "--steps", "30,100", "--target",
                              "127.0.0.1:9", "--proxy-timeout", "0.2")
    assert code == ExitCode.FAIL and source.judged == []
    assert "step 1/2 (canary 30%)" in err and "never served" in err and "NOT confirmed" in err


def test_dry_run_prints_every_kubectl_and_istioctl_call_in_order_and_changes_nothing(fake, capsys) -> None:
    code, out, err = in_process(main, capsys, "rollout", "--context", CTX, "--steps", "50,100", "--dry-run")
    assert code == ExitCode.OK, err
    assert fake.mutations() == []
    lines = out.splitlines()
    applies = [i for i, line in enumerate(lines) if "kubectl" in line and "apply" in line]
    routes = [i for i, line in enumerate(lines) if "istioctl" in line and "proxy-config routes" in line]
    samples = [i for i, line in enumerate(lines) if "[dry-run] sample" in line]
    assert len(applies) == len(routes) == len(samples) == 2
    assert applies[0] < routes[0] < samples[0] < applies[1] < routes[1] < samples[1]
    assert "production=50,canary=50" in out and "<--target or --url>" in out


def test_the_cluster_needs_a_target_to_sample_and_a_header_for_health(fake, capsys) -> None:
    code, _, err = in_process(main, capsys, "rollout", "--context", CTX)
    assert code == ExitCode.USAGE and "--context needs --target HOST:PORT" in err
    code, _, err = in_process(main, capsys, "rollout", "--context", CTX, "--url", "http://x", "--health")
    assert code == ExitCode.USAGE and "--health needs errors attributed to a version" in err
