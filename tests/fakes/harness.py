"""Test harness around fakebin: installs the fakes on PATH, reads the call log, adds recorded answers."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fakes import fakebin

from splitproof.setup.cluster.options import OB_MANIFESTS_URL
from splitproof.setup.cluster.promaddon import addon_url

PROMETHEUS_ADDON_URL = addon_url("1.24.2")  # the fake istiod's version

RECORDED = fakebin.RECORDED
MUTATING = {
    "kubectl": ("apply", "create", "label", "patch", "delete"),
    "istioctl": ("install", "uninstall"),
    "gcloud": ("enable", "create", "get-credentials", "delete"),
    "kind": ("create", "delete", "load"),
    "docker": ("build", "push"),
}


class FakeCluster:
    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.state = root / "fake-state"
        self.bin = root / "fake-bin"
        self.state.mkdir(parents=True)
        fakebin.install(self.bin)
        monkeypatch.setenv("FAKE_STATE_DIR", str(self.state))
        monkeypatch.setenv("PATH", f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}")
        world = fakebin.new_world()
        world["urls"][OB_MANIFESTS_URL] = str(RECORDED / "kubernetes-manifests.yaml")
        world["urls"][PROMETHEUS_ADDON_URL] = str(RECORDED / "istio-prometheus-addon.yaml")
        self.save_world(world)

    # ------------------------------------------------------------------ log
    def calls(self, tool: str | None = None) -> list[dict[str, Any]]:
        path = self.state / "log.jsonl"
        if not path.exists():
            return []
        entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [e for e in entries if tool is None or e["tool"] == tool]

    def commands(self, tool: str | None = None) -> list[list[str]]:
        """Every call as [tool, *argv] with --context NAME removed (for readable sequence assertions)."""
        out = []
        for e in self.calls(tool):
            argv = list(e["argv"])
            if "--context" in argv:
                i = argv.index("--context")
                del argv[i:i + 2]
            out.append([e["tool"], *argv])
        return out

    def mutations(self) -> list[list[str]]:
        return [c for c in self.commands() if any(word in c[1:3] or (c[0] == "gcloud" and word in c)
                                                  for word in MUTATING.get(c[0], ()))]

    def clear_log(self) -> None:
        (self.state / "log.jsonl").unlink(missing_ok=True)

    # ------------------------------------------------------------------ recorded answers
    def rule(self, argv: str, *, tool: str | None = None, rc: int = 0, stdout: str = "", stderr: str = "",
             times: int | None = None, stdin_contains: str | None = None, stdout_file: str | None = None) -> None:
        rules = json.loads((self.state / "rules.json").read_text()) if (self.state / "rules.json").exists() else []
        rule: dict[str, Any] = {"argv": argv, "rc": rc, "stdout": stdout, "stderr": stderr}
        for k, v in (("tool", tool), ("times", times), ("stdin_contains", stdin_contains),
                     ("stdout_file", stdout_file)):
            if v is not None:
                rule[k] = v
        rules.append(rule)
        (self.state / "rules.json").write_text(json.dumps(rules))

    def clear_rules(self) -> None:
        (self.state / "rules.json").unlink(missing_ok=True)

    # ------------------------------------------------------------------ world
    def world(self) -> dict[str, Any]:
        return json.loads((self.state / "world.json").read_text())

    def save_world(self, world: dict[str, Any]) -> None:
        (self.state / "world.json").write_text(json.dumps(world))

    def update(self, change: Callable[[dict[str, Any]], None]) -> None:
        world = self.world()
        change(world)
        self.save_world(world)

    def obj(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.world()["objects"].get(fakebin.key(resource, namespace, name))
