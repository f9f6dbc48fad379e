"""Preflight: the binaries the chosen steps need (present? which version?), with one clear message per gap."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata

from splitproof.setup.cluster.options import Options
from splitproof.setup.cluster.runner import READ, CommandTimeout, Runner, which
from splitproof.setup.cluster.ui import Ui
from splitproof.setup.errors import MissingBinaryError

VERSION_ARGV = {
    "kubectl": ["kubectl", "version", "--client", "-o", "json"],
    "istioctl": ["istioctl", "version", "--remote=false"],
    "gcloud": ["gcloud", "version", "--format=json"],
    "kind": ["kind", "version"],
    "docker": ["docker", "version", "--format", "{{.Client.Version}}"],
}


def project_version() -> str:
    try:
        return metadata.version("splitproof")
    except metadata.PackageNotFoundError:
        return "dev"


@dataclass(frozen=True)
class Need:
    binary: str
    why: str
    required: bool = True


def needs(opts: Options, steps: Iterable[str], *, uninstall_istio: bool = False,
          delete_cluster: bool = False, loadtest_image: str | None = None) -> list[Need]:
    """What the given steps need, in a stable order, one entry per binary."""
    names = set(steps)
    out: dict[str, Need] = {"kubectl": Need("kubectl", "every step")}
    if opts.provider == "gke" and ("cluster" in names or ("down" in names and delete_cluster)
                                   or ("canary" in names and not opts.project and not opts.image_repo)):
        out["gcloud"] = Need("gcloud", "GKE cluster, credentials, project")
    if opts.provider == "kind" and ("cluster" in names or ("down" in names and delete_cluster)):
        out["kind"] = Need("kind", "kind cluster")
    if names & {"istio", "weights", "status"} or ("down" in names and (uninstall_istio or delete_cluster)):
        out["istioctl"] = Need("istioctl", "install, proxy-config routes, analyze")
    if ("canary" in names and not opts.canary_image) or ("loadtest" in names and not loadtest_image):
        # Required when `up` may have to build; a single step that finds its Deployment in place builds nothing.
        out["docker"] = Need("docker", "building the canary/Locust image (or pass --canary-image)",
                             required=bool(opts.boutique_src) or "up" in names)
    if "loadtest" in names:
        out["verify-split"] = Need("verify-split", "judging the loadtest results")
    return list(out.values())


def _version(runner: Runner, binary: str) -> str:
    argv = VERSION_ARGV.get(binary)
    if argv is None:
        return "-"
    try:
        result = runner.run(argv, kind=READ, check=False, timeout=20)
    except CommandTimeout:
        return "? (no answer within 20s)"
    text = result.stdout.strip()
    if binary == "kubectl":
        try:
            return str(json.loads(text)["clientVersion"]["gitVersion"])
        except (ValueError, KeyError, TypeError):
            pass
    if binary == "gcloud":
        try:
            return str(json.loads(text)["Google Cloud SDK"])
        except (ValueError, KeyError, TypeError):
            pass
    first = text.splitlines()[0] if text else ""
    if not result.ok and not first:
        reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}"
        return f"? ({reason})"
    return first.removeprefix("client version: ") or "?"


def _docker_daemon(runner: Runner) -> bool:
    """docker's client exists without a daemon on many machines; building needs the daemon."""
    try:
        return runner.run(["docker", "version", "--format", "{{.Server.Version}}"], kind=READ, check=False,
                          timeout=20).ok
    except CommandTimeout:
        return False


def preflight(runner: Runner, ui: Ui, wanted: Sequence[Need], versions: bool = True) -> None:
    """Print each binary with its version; raise MissingBinaryError naming every missing required one.

    With ``versions=False`` (a single step) only presence is checked, silently unless something is missing.
    """
    if not versions:
        absent = [n.binary for n in wanted if n.required and which(n.binary) is None]
        if not absent:
            return
    rows, missing = [], []
    for need in wanted:
        path = which(need.binary)
        if path is None:
            state = "MISSING" if need.required else "missing (optional)"
            rows.append((need.binary, state, "", need.why))
            if need.required:
                missing.append(need.binary)
            continue
        version = "(not run in dry-run)" if runner.dry_run else _version(runner, need.binary)
        state = "ok"
        if need.binary == "docker" and not runner.dry_run and not _docker_daemon(runner):
            state = "no daemon" if need.required else "no daemon (optional)"
            if need.required:
                missing.append("docker")
        rows.append((need.binary, state, version, need.why))
    ui.table("preflight", ("binary", "found", "version", "needed for"), rows)
    if missing and not runner.dry_run:
        from splitproof.setup.cluster.runner import INSTALL_HINTS

        hints = "; ".join(f"{b}: {INSTALL_HINTS.get(b, 'install it')}" if which(b) is None else
                          f"{b}: the docker daemon does not answer (`docker version`)" for b in missing)
        raise MissingBinaryError(f"missing {', '.join(missing)} ({hints})")
    if missing:
        ui.warn(f"a real run needs {', '.join(missing)} on PATH")
