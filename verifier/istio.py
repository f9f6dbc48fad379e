"""Istio's routing vocabulary, shared by verify-split and canary-setup: weights, the weighted route of a
VirtualService, and istiod's outbound cluster names.

The one reading of "which route carries the split" lives here (:func:`split_carrier`): the last route that matches
everything (a canary VirtualService often routes testers by header first), else the only route. It is applied to
VirtualService ``http`` entries (:func:`weighted_route`) and to Envoy routes read back from proxies alike.
Every bad input raises :class:`~splitproof.verifier.errors.InputError` with a one-line reason.
Reference: https://istio.io/latest/docs/reference/config/networking/virtual-service/ (HTTPRoute, weight).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from splitproof.verifier.errors import InputError

API_VERSIONS = ("networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3")

T = TypeVar("T")


def split_carrier(routes: Sequence[T], catches_all: Callable[[T], bool]) -> T | None:
    """The route that carries the split: the last catch-all one, else the only route; None when undecidable."""
    catch_all = [r for r in routes if catches_all(r)]
    if catch_all:
        return catch_all[-1]
    return routes[0] if len(routes) == 1 else None


def canary_weights(canary_percent: int) -> dict[str, int]:
    """{'production': 100-P, 'canary': P} for the lab's two subsets."""
    if isinstance(canary_percent, bool) or not isinstance(canary_percent, int) or not 0 <= canary_percent <= 100:
        raise InputError(f"canary weight must be an integer from 0 to 100, got {canary_percent!r}")
    return {"production": 100 - canary_percent, "canary": canary_percent}


def parse_weights(spec: str) -> dict[str, int]:
    """Parse ``production=80,canary=20`` into an ordered dict (sum/range checked by validate_weights)."""
    out: dict[str, int] = {}
    for part in spec.split(","):
        name, sep, value = part.strip().partition("=")
        name = name.strip()
        if not sep or not name:
            raise InputError(f"weights must look like production=80,canary=20, got {spec!r}")
        if name in out:
            raise InputError(f"subset {name!r} given twice in {spec!r}")
        try:
            out[name] = int(value)
        except ValueError:
            raise InputError(f"weight for {name!r} must be an integer, got {value.strip()!r}") from None
    return out


def validate_weights(weights: Mapping[str, int], subsets: Mapping[str, Any] | None = None) -> None:
    if not weights:
        raise InputError("no weights given")
    for name, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= 100:
            raise InputError(f"weight for {name!r} must be an integer from 0 to 100, got {w!r}")
    total = sum(weights.values())
    if total != 100:
        raise InputError(f"weights must sum to 100, got {total} ({format_weights(weights)})")
    if subsets is not None:
        unknown = [name for name in weights if name not in subsets]
        if unknown:
            raise InputError(f"weights name subsets the DestinationRule does not define: {', '.join(unknown)}")


def format_weights(weights: Mapping[str, int]) -> str:
    """``production=80,canary=20`` -- the one spelling of weights in messages and tables."""
    return ",".join(f"{k}={v}" for k, v in weights.items())



def weighted_route(vs: Mapping[str, Any]) -> dict[str, int]:
    """The split a VirtualService document configures, as {subset: weight} -- the one reading of it that the
    verifier (expected split), the local mesh and cluster status share.

    Takes the route that catches the remaining traffic: the last ``http`` entry without ``match`` (a canary VS
    often routes testers by header first), or the only entry. A destination without a subset is named by its
    host's short name. A single destination without ``weight`` gets 100 (Istio's rule); with several, a missing
    weight is an error. Raises InputError with a one-line reason.
    """
    meta = vs.get("metadata")
    name = str(meta.get("name", "?")) if isinstance(meta, Mapping) else "?"
    spec = vs.get("spec")
    if not isinstance(spec, Mapping):
        raise InputError(f"VirtualService {name}: no spec")
    http = spec.get("http")
    if not isinstance(http, list) or not http:
        raise InputError(f"VirtualService {name}: no http routes (only http/gRPC routes are supported)")
    rule = split_carrier([r for r in http if isinstance(r, Mapping)], lambda r: not r.get("match"))
    if rule is None:
        raise InputError(f"VirtualService {name}: every http route has a match condition; "
                          "cannot tell which one carries the split")
    route = rule.get("route")
    if not isinstance(route, list) or not route:
        raise InputError(f"VirtualService {name}: the http route has no destinations")
    weights: dict[str, int] = {}
    for entry in route:
        dest = entry.get("destination") if isinstance(entry, Mapping) else None
        if not isinstance(dest, Mapping) or not isinstance(dest.get("host"), str):
            raise InputError(f"VirtualService {name}: a route destination has no host")
        version = str(dest.get("subset") or dest["host"].split(".")[0])
        weight = entry.get("weight")
        if weight is None:
            if len(route) != 1:
                raise InputError(f"VirtualService {name}: destination {version!r} has no weight")
            weight = 100
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise InputError(f"VirtualService {name}: weight of {version!r} must be an integer, got {weight!r}")
        if version in weights:
            raise InputError(f"VirtualService {name}: subset {version!r} appears twice in the route")
        weights[version] = weight
    return weights


def cluster_name(port: int, subset: str, fqdn: str) -> str:
    """istiod's outbound cluster name."""
    return f"outbound|{port}|{subset}|{fqdn}"


@dataclass(frozen=True, slots=True)
class ClusterName:
    """A parsed Istio cluster name."""

    direction: str  # "outbound" | "inbound"
    port: int
    subset: str     # "" for the whole service
    host: str


def parse_cluster(name: str) -> ClusterName | None:
    """istiod's cluster name ``outbound|<port>|<subset>|<host>`` (istio/istio ``pilot/pkg/model/service.go``
    ``BuildSubsetKey``) or ``inbound|<port>||`` -- also in the ``alt_stat_name`` form that ends in ``;`` (Istio >=
    1.23, ``util.DelimitedStatsPrefix``); None for any other name (``PassthroughCluster``, ``BlackHoleCluster``)."""
    parts = name.strip().removesuffix(";").split("|")
    if len(parts) != 4 or parts[0] not in ("outbound", "inbound") or not parts[1].isdigit():
        return None
    return ClusterName(parts[0], int(parts[1]), parts[2], parts[3])


def parse_cluster_name(name: str) -> tuple[int, str, str] | None:
    """(port, subset, fqdn) of an ``outbound|...`` cluster name, None for anything else."""
    c = parse_cluster(name)
    return None if c is None or c.direction != "outbound" else (c.port, c.subset, c.host)
