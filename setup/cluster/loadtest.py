"""``canary-setup loadtest``: loadtest/boutique.py inside the mesh, then ``verify-split`` on what it recorded.

A client outside the mesh bypasses the VirtualService (the split happens in the client's sidecar), so the Locust
master and workers run as pods of the sidecar-injected namespace: product pages through the frontend (whose
sidecar splits its recommendation calls) and direct gRPC calls through the Locust pod's own sidecar.

Sequence: ConfigMap with the locustfile + master Service + master Job + worker Deployment; wait for the master's
status file (written by setup.cluster.podrun when Locust exits); copy the results file out with ``kubectl exec
cat``; tell podrun it was collected (it then stops the sidecar so the Job completes); delete the resources; run
``verify-split --results FILE`` and return its exit code (0 PASS, 1 FAIL, 3 INCONCLUSIVE). Step 8.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from splitproof.setup.cluster.context import Ctx, report
from splitproof.setup.cluster.images import build_project, docker_usable, project_image, pull_policy
from splitproof.setup.cluster.kube import ref
from splitproof.setup.cluster.live import running_pod
from splitproof.setup.cluster.options import SERVICE, SERVICE_PORT, LoadtestOptions, repo_root
from splitproof.setup.cluster.runner import CHANGE, READ, WAIT, CommandFailed, which
from splitproof.setup.errors import MissingBinaryError, SetupError, WaitTimeoutError
from splitproof.setup.manifests import documents
from splitproof.setup.proc import python_argv, wait_until
from splitproof.setup.router import describe
from splitproof.verifier.errors import InputError

PREFIX = "locust"
RESULTS_DIR = "/results"
STATUS_FILE = f"{RESULTS_DIR}/status.json"
RESULTS_FILE = f"{RESULTS_DIR}/results.jsonl"
COLLECTED_FILE = f"{RESULTS_DIR}/collected"
LOCUSTFILE_MOUNT = "/mnt/locust"
POLL_S = 2.0  # between `kubectl exec ... cat status.json` checks


def duration_seconds(text: str) -> float:
    """Locust's -t syntax (e.g. 90, 90s, 2m, 1h30m) in seconds; InputError when malformed."""
    total, number = 0.0, ""
    units = {"h": 3600, "m": 60, "s": 1}
    for ch in text.strip():
        if ch.isdigit():
            number += ch
        elif ch in units and number:
            total += int(number) * units[ch]
            number = ""
        else:
            raise InputError(f"--duration must look like 60s, 2m or 1h30m, got {text!r}")
    if number:
        total += int(number)
    if total <= 0:
        raise InputError(f"--duration must be positive, got {text!r}")
    return total


def verdict_args(weights: dict[str, int]) -> list[str]:
    """How the expected split is given to Locust and to verify-split."""
    if set(weights) == {"production", "canary"}:
        return ["--expected", str(weights["canary"])]
    return ["--weights", describe(weights)]


def locustfile_path(lt: LoadtestOptions) -> Path:
    path = Path(lt.locustfile).expanduser() if lt.locustfile else repo_root() / "loadtest" / "boutique.py"
    if not path.is_file():
        raise InputError(f"locustfile {path} not found")
    return path


def locust_documents(ctx: Ctx, lt: LoadtestOptions, image: str, pull_policy: str, run_id: str) -> list[dict[str, Any]]:
    ns = ctx.ns
    master_command = python_argv("-m", "splitproof.setup.cluster.podrun", "--status", STATUS_FILE,
                                 "--collected", COLLECTED_FILE, "--collect-timeout", "900", "--", python="python")
    locustfile = f"{LOCUSTFILE_MOUNT}/boutique.py"
    master_args = ["locust", "-f", locustfile, "--master", "--headless", "--expect-workers", str(lt.workers),
                   "--expect-workers-max-wait", f"{lt.startup_timeout:g}", "-u", str(lt.users),
                   "-r", f"{lt.spawn_rate:g}", "-t", lt.duration, "--stop-timeout", "10",
                   "--host", f"http://frontend.{ns}.svc.cluster.local",
                   "--grpc-target", f"{SERVICE}.{ns}.svc.cluster.local:{SERVICE_PORT}",
                   "--split-results", RESULTS_FILE, *verdict_args(dict(ctx.opts.weights)), *lt.classes]
    worker_command = ["locust", "-f", locustfile, "--worker",
                      "--master-host", f"{PREFIX}-master.{ns}.svc.cluster.local"]
    return documents("locust.yaml.j2", ctx.opts.params(), prefix=PREFIX, run_id=run_id, image=image,
                     pull_policy=pull_policy, locustfile_name="boutique.py",
                     locustfile=locustfile_path(lt).read_text(encoding="utf-8"), workers=lt.workers,
                     master_command=master_command, master_args=master_args, worker_command=worker_command,
                     results_dir=RESULTS_DIR)


def cleanup(ctx: Ctx) -> None:
    ctx.runner.run(ctx.kube.kubectl("delete", "job,deployment,service,configmap", "-l", f"app={PREFIX}", "-n", ctx.ns,
                                    "--ignore-not-found", "--wait=false"), kind=CHANGE, timeout=120,
                   what="deleting the Locust resources")


def step_loadtest(ctx: Ctx) -> int:
    lt = ctx.loadtest
    seconds = duration_seconds(lt.duration)
    verifier = which("verify-split")
    if verifier is None and not ctx.dry:
        raise MissingBinaryError("verify-split not found (pip install -e . in this repository installs it)")
    namespace = ctx.kube.get("Namespace", ctx.ns)
    if namespace is None and not ctx.dry:
        raise SetupError(f"namespace {ctx.ns} not found: run `canary-setup up` first")

    image = lt.image
    if image is None:
        if not docker_usable(ctx):
            raise InputError("the Locust pods need this project's image: pass --loadtest-image IMAGE (built from "
                              "setup/docker/Dockerfile and pushed), or install docker so canary-setup can build it")
        image = project_image(ctx)
        build_project(ctx, image)
    run_id = time.strftime("%Y%m%d-%H%M%S")
    docs = locust_documents(ctx, lt, image, pull_policy(ctx.opts), run_id)
    cleanup(ctx)  # a previous run's Job would keep its old pod template
    ctx.kube.apply(docs, what="creating the Locust master and workers")
    for doc in docs:
        report(ctx, "created", ref(doc))

    master = f"{PREFIX}-master"
    try:
        pod = _wait_master_pod(ctx, master, lt.startup_timeout)
        status = _wait_status(ctx, pod, seconds + lt.startup_timeout)
        results = Path(lt.results)
        _collect(ctx, pod, results)
    finally:
        if not lt.keep:
            cleanup(ctx)
    if ctx.dry:
        ctx.runner.run(["verify-split", "--results", lt.results, *verdict_args(dict(ctx.opts.weights))], kind=WAIT)
        return 0
    report(ctx, "ok", f"Locust exited {status.get('exit_code')}; results in {results}")
    verify = ctx.runner.run([str(verifier), "--results", str(results), *verdict_args(dict(ctx.opts.weights))],
                            kind=READ, check=False, timeout=600)
    ctx.ui.line(verify.stdout.rstrip())
    if verify.stderr.strip():
        ctx.ui.line(verify.stderr.rstrip(), style="yellow")
    return verify.returncode


def _wait_master_pod(ctx: Ctx, job: str, timeout: float) -> str:
    if ctx.dry:
        return "<locust-master-pod>"
    with ctx.ui.waiting("waiting for the Locust master pod"):
        return wait_until(lambda: running_pod(ctx.kube.list("Pod", ctx.ns, f"job-name={job}")), timeout,
                          f"the {job} pod to run", POLL_S, max_interval=POLL_S)


def _exec(ctx: Ctx, pod: str, *command: str) -> list[str]:
    return ctx.kube.kubectl("exec", pod, "-n", ctx.ns, "-c", "locust", "--", *command)


def _wait_status(ctx: Ctx, pod: str, timeout: float) -> dict[str, Any]:
    argv = _exec(ctx, pod, "cat", STATUS_FILE)
    if ctx.dry:
        ctx.runner.run(argv, kind=WAIT)
        return {}

    def finished() -> list[dict[str, Any]]:
        """[the status podrun wrote] once it is there (a list: an empty status is still an answer)."""
        result = ctx.runner.run(argv, kind=WAIT, check=False, timeout=60)
        try:
            return [json.loads(result.stdout)] if result.ok else []
        except json.JSONDecodeError:
            return []

    try:
        with ctx.ui.waiting("Locust is running in the mesh"):
            return wait_until(finished, timeout, "Locust to finish", POLL_S, max_interval=POLL_S)[0]
    except WaitTimeoutError:
        raise WaitTimeoutError(f"Locust did not finish within {timeout:g}s "
                               f"(`kubectl logs -n {ctx.ns} {pod} -c locust`)") from None


def _collect(ctx: Ctx, pod: str, results: Path) -> None:
    data = ctx.runner.run(_exec(ctx, pod, "cat", RESULTS_FILE), kind=READ, check=False, timeout=600)
    if not ctx.dry:
        if not data.ok:
            raise CommandFailed(data, "copying the results file out of the Locust master")
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(data.stdout, encoding="utf-8")
    ctx.runner.run(_exec(ctx, pod, "touch", COLLECTED_FILE), kind=CHANGE, check=False, timeout=60)
