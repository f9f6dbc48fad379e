"""The expected split: an ordered {version: fraction} read from --expected, --weights or a VirtualService.

Weights are Istio's: integers from 0 to 100 that sum to 100 (the parsing and range checks are
``setup.manifests``'s, so ``canary-setup`` and ``verify-split`` accept exactly the same spellings). Every bad input
raises :class:`InputError` (a ValueError) whose message is one line fit for the user.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from splitproof.verifier.errors import InputError, Unreachable
from splitproof.verifier.inputfile import InputFileError
from splitproof.verifier.istio import API_VERSIONS, canary_weights, parse_weights, validate_weights, weighted_route
from splitproof.verifier.redact import redact
from splitproof.verifier.safeyaml import YamlInputError, read_documents

DEFAULT_HOST = "recommendationservice"
ISTIO_GROUP = "networking.istio.io"


class Expected(Mapping[str, float]):
    """An ordered, immutable {version: fraction}; the fractions are >= 0 and sum to 1.

    ``weights`` keeps the integer percentages when the split came from Istio-style weights.
    """

    __slots__ = ("_fractions", "weights", "source")

    def __init__(self, fractions: Mapping[str, float], *, weights: Mapping[str, int] | None = None,
                 source: str = "") -> None:
        checked = check_fractions(fractions)
        self._fractions: dict[str, float] = checked
        self.weights: dict[str, int] | None = dict(weights) if weights is not None else None
        self.source = source

    @classmethod
    def from_weights(cls, weights: Mapping[str, int], *, source: str = "",
                     subsets: Mapping[str, Any] | None = None) -> Expected:
        """Istio weights (integers summing to 100) -> Expected. ``subsets``: names that must exist."""
        try:
            validate_weights(weights, subsets)
        except InputError as exc:
            raise InputError(str(exc)) from None
        return cls({k: v / 100 for k, v in weights.items()}, weights=weights, source=source)

    def __getitem__(self, key: str) -> float:
        return self._fractions[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fractions)

    def __len__(self) -> int:
        return len(self._fractions)

    def __repr__(self) -> str:
        return f"Expected({self.describe()})"

    def percent(self, version: str) -> float:
        return 100.0 * self._fractions[version]

    def describe(self) -> str:
        """``production=80%,canary=20%``."""
        return ",".join(f"{k}={_fmt_pct(100 * v)}%" for k, v in self._fractions.items())


def _fmt_pct(value: float) -> str:
    return f"{value:g}" if abs(value - round(value)) > 1e-9 else str(round(value))


def check_fractions(fractions: Mapping[str, float]) -> dict[str, float]:
    """Validate {version: fraction}: at least one version, names non-empty, each in [0, 1], sum 1."""
    if not fractions:
        raise InputError("the expected split names no version")
    out: dict[str, float] = {}
    for name, value in fractions.items():
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"bad version name {name!r}")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InputError(f"expected share of {name!r} must be a number, got {value!r}")
        if not 0.0 <= value <= 1.0:
            raise InputError(f"expected share of {name!r} must be between 0 and 1, got {value!r}")
        out[name] = float(value)
    total = sum(out.values())
    if abs(total - 1.0) > 1e-9:
        raise InputError(f"expected shares must sum to 1 (100%), got {total:g}")
    return out


def as_expected(expected: Mapping[str, float]) -> Expected:
    """Accept an Expected or any {version: fraction} mapping (validated)."""
    return expected if isinstance(expected, Expected) else Expected(expected)


# --------------------------------------------------------------------------------------------------- CLI inputs


def from_canary_percent(text: str | int, *, production: str = "production", canary: str = "canary") -> Expected:
    """``--expected 20`` -> production=80%, canary=20%."""
    try:
        value = int(str(text).strip())
    except ValueError:
        raise InputError(f"--expected must be an integer percentage from 0 to 100, got {text!r}") from None
    try:
        weights = canary_weights(value)
    except InputError as exc:
        raise InputError(f"--expected: {exc}") from None
    return Expected.from_weights({production: weights["production"], canary: weights["canary"]},
                                 source=f"--expected {value}")


def from_weights_spec(spec: str) -> Expected:
    """``--weights production=80,canary=20`` (any number of subsets, integers summing to 100)."""
    try:
        weights = parse_weights(spec)
    except InputError as exc:
        raise InputError(f"--weights: {exc}") from None
    return Expected.from_weights(weights, source=f"--weights {spec}")


# ------------------------------------------------------------------------------------------- VirtualService YAML


def _host_matches(candidate: str, host: str) -> bool:
    """``recommendationservice`` matches itself and its FQDN forms (``recommendationservice.ns.svc...``)."""
    candidate = candidate.strip().lower()
    host = host.strip().lower()
    return candidate == host or candidate.startswith(host + ".") or host.startswith(candidate + ".")


def _is_kind(doc: Any, kind: str) -> bool:
    return (isinstance(doc, dict) and doc.get("kind") == kind
            and isinstance(doc.get("apiVersion"), str) and doc["apiVersion"].startswith(ISTIO_GROUP + "/"))


def _name(doc: Mapping[str, Any]) -> str:
    meta = doc.get("metadata")
    return str(meta.get("name", "?")) if isinstance(meta, dict) else "?"


def _check_api_version(doc: Mapping[str, Any]) -> None:
    if doc.get("apiVersion") not in API_VERSIONS:
        raise InputError(f"{doc.get('kind')} {_name(doc)}: unsupported apiVersion {doc.get('apiVersion')!r} "
                         f"(supported: {', '.join(API_VERSIONS)})")


def weights_from_virtualservice(vs: Mapping[str, Any], host: str = DEFAULT_HOST) -> dict[str, int]:
    """The weighted route of one VirtualService document as {subset: weight} (setup.manifests.weighted_route)."""
    _check_api_version(vs)
    try:
        return weighted_route(vs)
    except InputError as exc:
        raise InputError(str(exc)) from None


def expected_from_documents(docs: Iterable[Any], host: str = DEFAULT_HOST, origin: str = "") -> Expected:
    """Find the VirtualService for ``host`` among Istio documents (and its DestinationRule, when present)."""
    docs = [d for d in docs if d is not None]
    services = [d for d in docs if _is_kind(d, "VirtualService")
                and any(isinstance(h, str) and _host_matches(h, host) for h in (d.get("spec") or {}).get("hosts", []))]
    if not services:
        kinds = sorted({str(d.get("kind")) for d in docs if isinstance(d, dict)})
        found = f" (found: {', '.join(kinds)})" if kinds else ""
        raise InputError(f"no VirtualService for host {host!r} in {origin or 'the input'}{found}")
    if len(services) > 1:
        names = ", ".join(_name(d) for d in services)
        raise InputError(f"several VirtualServices for host {host!r} in {origin or 'the input'}: {names}")
    vs = services[0]
    weights = weights_from_virtualservice(vs, host)
    subsets: dict[str, Any] | None = None
    rules = [d for d in docs if _is_kind(d, "DestinationRule")
             and isinstance((d.get("spec") or {}).get("host"), str) and _host_matches(d["spec"]["host"], host)]
    if rules:
        subsets = {}
        for rule in rules:
            _check_api_version(rule)
            for subset in (rule.get("spec") or {}).get("subsets") or []:
                if isinstance(subset, dict) and isinstance(subset.get("name"), str):
                    subsets[subset["name"]] = subset.get("labels") or {}
    source = f"VirtualService {_name(vs)}" + (f" ({origin})" if origin else "")
    try:
        return Expected.from_weights(weights, subsets=subsets, source=source)
    except InputError as exc:
        raise InputError(f"{source}: {exc}") from None


def from_virtualservice_file(path: str | Path, host: str = DEFAULT_HOST) -> Expected:
    """Read the weighted route from an Istio YAML file (multi-document files fine; ``-`` for stdin). The file is
    read through verifier.safeyaml: bounded size, nesting and alias expansion; a FIFO without a writer is refused."""
    what = "--from-virtualservice"
    try:
        docs = read_documents(str(path), what)
    except InputFileError as exc:
        if str(exc).startswith(f"{what}: no such file"):
            raise InputError(f"{exc} (to read a live VirtualService by name, add -n NAMESPACE)") from None
        raise InputError(str(exc)) from None
    except YamlInputError as exc:
        raise InputError(str(exc)) from None
    flat: list[Any] = []
    for doc in docs:  # a `kind: List` (kubectl get -o yaml) holds the documents under items
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            flat.extend(doc["items"])
        else:
            flat.append(doc)
    return expected_from_documents(flat, host, origin=str(path))


def check_kubeconfig(value: str | None) -> None:
    """Read every existing file of ``$KUBECONFIG`` (or ~/.kube/config) through verifier.safeyaml before the
    ``kubernetes`` client does (its loader is PyYAML's unbounded pure-Python one): each must be a YAML mapping."""
    import os

    paths = [p for p in (value or os.path.expanduser("~/.kube/config")).split(os.pathsep) if p]
    for path in paths:
        path = os.path.expanduser(path)
        if not os.path.exists(path):
            continue  # as kubectl and the client: a missing file in the list is skipped
        try:
            docs = read_documents(path, "KUBECONFIG")
        except (InputFileError, YamlInputError) as exc:
            raise InputError(str(exc)) from None
        if len(docs) != 1 or not isinstance(docs[0], dict):
            raise InputError(f"KUBECONFIG {path} is not a kubeconfig (not one YAML mapping)")


def from_virtualservice_live(name: str, namespace: str, host: str = DEFAULT_HOST,
                             context: str | None = None) -> Expected:
    """GET the VirtualService ``name`` in ``namespace`` with the ``kubernetes`` client (current kube context).

    Tries the served API versions newest first. A missing object or kubeconfig is an InputError; an API server
    that cannot be reached is :class:`Unreachable`.
    """
    import os

    import yaml
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    check_kubeconfig(os.environ.get("KUBECONFIG"))
    try:  # KUBECONFIG is read now, not when the kubernetes package was first imported
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None, context=context)
    except (ConfigException, OSError, TypeError, ValueError, AttributeError, KeyError, yaml.YAMLError) as exc:
        raise InputError(f"--from-virtualservice {name}: no usable kube context ({_first_line(exc)})") from None
    api = client.CustomObjectsApi()
    last_404 = ""
    for api_version in API_VERSIONS:
        version = api_version.split("/", 1)[1]
        try:
            obj = api.get_namespaced_custom_object(ISTIO_GROUP, version, namespace, "virtualservices", name,
                                                   _request_timeout=10)
        except ApiException as exc:
            reason = _server_text(exc.reason)  # a proxy may echo the Authorization header in it
            if exc.status == 404:
                last_404 = reason or "Not Found"
                continue
            if exc.status in (401, 403):
                raise InputError(f"--from-virtualservice {name}: the Kubernetes API refused access "
                                 f"({exc.status} {reason})") from None
            raise Unreachable(f"--from-virtualservice {name}: Kubernetes API error {exc.status} {reason}") from None
        except Exception as exc:  # urllib3 connection errors and the like: the API server is not reachable
            host_url = client.Configuration.get_default_copy().host
            raise Unreachable(f"cannot reach the Kubernetes API at {host_url}: {_first_line(exc)}") from None
        if not isinstance(obj, dict):
            raise InputError(f"--from-virtualservice {name}: unexpected API answer")
        return expected_from_documents([obj], host, origin=f"namespace {namespace}")
    raise InputError(f"VirtualService {name!r} not found in namespace {namespace!r} ({last_404})")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return _server_text(text.splitlines()[0])


def _server_text(text: object) -> str:
    """Text a server or proxy produced, fit for a message: credentials redacted, one line, at most 200 chars."""
    return " ".join(redact(str(text or "")).split())[:200]


def check_attributable(expected: Mapping[str, float], producible: Iterable[str]) -> None:
    """Every version with a positive expected share must be something the attribution can produce."""
    known = set(producible)
    missing = [v for v, share in expected.items() if share > 0 and v not in known]
    if missing:
        raise InputError(f"the expected split names subsets no response can be attributed to: {', '.join(missing)} "
                         f"(known: {', '.join(sorted(known))}; map them with --class NAME=COUNT or use --header)")
