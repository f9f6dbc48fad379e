"""Where the canary (and the Locust pods') image comes from, and building it: ``--canary-image``, an upstream
checkout with the lab's ``max_responses`` patch, or this project's Dockerfile; pushed, or loaded into kind."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from splitproof.setup.cluster.context import Ctx, report
from splitproof.setup.cluster.options import Options, repo_root
from splitproof.setup.cluster.preflight import project_version
from splitproof.setup.cluster.provider import gcp_project
from splitproof.setup.cluster.runner import CHANGE, READ
from splitproof.verifier.errors import InputError

LAB_PATCH = ("max_responses = 5", "max_responses = 2")  # the lab's sed patch of recommendation_server.py
DOCKERFILE = "setup/docker/Dockerfile"


@dataclass(frozen=True)
class ImagePlan:
    image: str
    pull_policy: str
    env: dict[str, str]
    source: str
    build: Callable[[Ctx], None] | None = None


def image_repo(ctx: Ctx) -> str:
    opts = ctx.opts
    if opts.image_repo:
        return opts.image_repo.rstrip("/")
    if opts.provider == "kind":
        return "splitproof.local"
    if opts.provider == "gke":
        return f"gcr.io/{gcp_project(ctx)}/microservices_demo"
    raise InputError("building an image for an existing cluster needs --image-repo REGISTRY/PATH (where "
                      "`docker push` can push and the cluster can pull), or pass --canary-image IMAGE")


def project_image(ctx: Ctx) -> str:
    return f"{image_repo(ctx)}/splitproof:{project_version()}"


def pull_policy(opts: Options) -> str:
    return "IfNotPresent" if opts.provider == "kind" else "Always"


def docker_usable(ctx: Ctx) -> bool:
    if ctx.dry:
        return True
    if "docker" not in ctx.facts:
        if not ctx.runner.available("docker"):
            ctx.facts["docker"] = False
        else:
            probe = ctx.runner.run(["docker", "version", "--format", "{{.Server.Version}}"], kind=READ, check=False,
                                   timeout=30)
            ctx.facts["docker"] = probe.ok
    return bool(ctx.facts["docker"])


def canary_image_plan(ctx: Ctx) -> ImagePlan:
    """Where the canary image comes from: --canary-image, an upstream checkout + the lab's patch, or this project."""
    opts = ctx.opts
    if opts.canary_image:
        return ImagePlan(opts.canary_image, pull_policy(opts), {}, "--canary-image")
    if opts.boutique_src:
        if not docker_usable(ctx):
            raise InputError("--boutique-src needs a working docker to build the patched recommendationservice "
                              "(or pass --canary-image IMAGE)")
        return ImagePlan(f"{image_repo(ctx)}/recommendationservice:canary", pull_policy(opts), {},
                         f"{opts.boutique_src} with the lab's max_responses patch", build=build_upstream)
    if not docker_usable(ctx):
        raise InputError("no canary image: pass --canary-image IMAGE (recommendationservice answering 2 "
                          "recommendations), or install docker so canary-setup can build this project's image "
                          f"({DOCKERFILE}, MAX_RESPONSES=2)")
    return ImagePlan(project_image(ctx), pull_policy(opts), {"MAX_RESPONSES": "2"},
                     f"this project's image ({DOCKERFILE})", build=build_project)


def distribute(ctx: Ctx, image: str) -> None:
    """Make a locally built image pullable: `kind load` into a kind cluster, else `docker push`."""
    if ctx.opts.provider == "kind":
        ctx.runner.run(["kind", "load", "docker-image", image, "--name", ctx.opts.cluster_name], kind=CHANGE,
                       timeout=600, what=f"loading {image} into kind")
        report(ctx, "loaded", f"{image} into kind cluster {ctx.opts.cluster_name}")
    else:
        ctx.runner.run(["docker", "push", image], kind=CHANGE, timeout=900,
                       what=f"pushing {image} (for gcr.io run `gcloud auth configure-docker` once)")
        report(ctx, "pushed", image)


def build_project(ctx: Ctx, image: str | None = None) -> None:
    image = image or project_image(ctx)
    root = repo_root()
    if not (root / DOCKERFILE).is_file():
        raise InputError(f"building the project's image needs a source checkout ({root / DOCKERFILE} is missing)")
    ctx.runner.run(["docker", "build", "-f", str(root / DOCKERFILE), "-t", image, str(root)], kind=CHANGE,
                   timeout=1800, what=f"building {image}")
    report(ctx, "built", image)
    distribute(ctx, image)


def patch_recommendation_server(directory: Path) -> int:
    """The lab's `sed -i 's/max_responses = 5/max_responses = 2/g' recommendation_server.py`; returns replacements."""
    target = directory / "recommendation_server.py"
    if not target.is_file():
        raise InputError(f"{target} not found: --boutique-src must be an Online Boutique checkout")
    text = target.read_text(encoding="utf-8")
    count = text.count(LAB_PATCH[0])
    if count == 0:
        raise InputError(f"the lab's patch does not apply: no {LAB_PATCH[0]!r} in {target}")
    target.write_text(text.replace(*LAB_PATCH), encoding="utf-8")
    return count


def build_upstream(ctx: Ctx) -> None:
    image = f"{image_repo(ctx)}/recommendationservice:canary"
    source = Path(str(ctx.opts.boutique_src)).expanduser() / "src" / "recommendationservice"
    if ctx.dry:
        ctx.ui.command(f"# copy {source} to a temporary directory, then apply the lab's patch there:\n"
                       f"# sed -i 's/{LAB_PATCH[0]}/{LAB_PATCH[1]}/g' recommendation_server.py")
        ctx.runner.run(["docker", "build", "-t", image, "<temporary copy>"], kind=CHANGE)
        distribute(ctx, image)
        return
    if not source.is_dir():
        raise InputError(f"{source} not found: --boutique-src must be an Online Boutique checkout")
    with tempfile.TemporaryDirectory(prefix="splitproof-canary-") as tmp:
        work = Path(tmp) / "recommendationservice"
        shutil.copytree(source, work)
        patch_recommendation_server(work)
        ctx.runner.run(["docker", "build", "-t", image, str(work)], kind=CHANGE, timeout=1800,
                       what=f"building {image}")
    report(ctx, "built", f"{image} (max_responses = 2)")
    distribute(ctx, image)
