"""Step 2's Gateway API part (``--routing gateway-api``): the Gateway API CRDs of the pinned release, standard
channel, applied with ``kubectl apply -f <release manifest URL>`` unless the cluster already serves that release or
a newer one (the ``gateway.networking.k8s.io/bundle-version`` annotation every CRD of a release carries), then
checked. Istio reads HTTPRoutes once the CRDs exist (mesh support for HTTPRoute bound to a Service: GAMMA).
References: https://gateway-api.sigs.k8s.io/guides/ (install), https://istio.io/latest/docs/tasks/traffic-management/
(Gateway API tasks install the same release manifest).
"""

from __future__ import annotations

from splitproof.setup.cluster.context import Ctx, lines, report
from splitproof.setup.cluster.kube import UNCHANGED
from splitproof.setup.cluster.runner import CHANGE, READ
from splitproof.setup.errors import SetupError
from splitproof.verifier.gatewayapi import BUNDLE_VERSION_ANNOTATION, CRD_HTTPROUTES, CRDS_URL, CRDS_VERSION, GROUP

# The CRDs of the standard channel that the mesh routing needs (the release holds a few more).
NEEDED_CRDS = (CRD_HTTPROUTES, f"gateways.{GROUP}", f"gatewayclasses.{GROUP}", f"referencegrants.{GROUP}")


def release_tuple(version: str | None) -> tuple[int, ...] | None:
    """``v1.4.0`` -> (1, 4, 0); None for anything else (a pre-release, a missing annotation)."""
    parts = (version or "").removeprefix("v").split(".")
    return tuple(int(p) for p in parts) if len(parts) == 3 and all(p.isdigit() for p in parts) else None


def installed_release(ctx: Ctx) -> str | None:
    """The Gateway API release the cluster's HTTPRoute CRD comes from; "" when the CRD has no bundle annotation;
    None when there is no HTTPRoute CRD."""
    crd = ctx.kube.get("CustomResourceDefinition", CRD_HTTPROUTES)
    if crd is None:
        return None
    return str(((crd.get("metadata") or {}).get("annotations") or {}).get(BUNDLE_VERSION_ANNOTATION) or "")


def ensure_crds(ctx: Ctx) -> None:
    """Apply the pinned release's standard-channel CRDs unless that release (or a newer one) is installed."""
    live = installed_release(ctx)
    have, want = release_tuple(live), release_tuple(CRDS_VERSION)
    if have is not None and want is not None and have >= want:
        report(ctx, UNCHANGED, f"Gateway API CRDs {live} (standard channel; pinned {CRDS_VERSION})")
    else:
        ctx.runner.run(ctx.kube.kubectl("apply", "-f", CRDS_URL), kind=CHANGE, timeout=180,
                       what=f"installing the Gateway API CRDs {CRDS_VERSION} (standard channel)")
        report(ctx, "installed" if live is None else "upgraded",
               f"Gateway API CRDs {CRDS_VERSION} (standard channel" + (f", was {live or 'unversioned'})" if live
                                                                        is not None else ")"))
    crds = ctx.runner.run(ctx.kube.kubectl("get", "crds", "-o", "name"), kind=READ, check=False, timeout=60)
    if ctx.dry:
        return
    names = {line.rsplit("/", 1)[-1] for line in lines(crds)}
    missing = [c for c in NEEDED_CRDS if c not in names]
    if not crds.ok or missing:
        raise SetupError("Gateway API CRDs missing after install: " + (", ".join(missing) or crds.stderr.strip()))
