"""The expected split read from Istio: a VirtualService in YAML (``--from-virtualservice FILE``) or the live object
through the Kubernetes API (``--from-virtualservice NAME -n NAMESPACE``).

The weighted route is :func:`verifier.istio.weighted_route`'s reading (the one rule shared with canary-setup);
subsets are checked against a DestinationRule for the same host when the documents hold one. Files are read through
:mod:`verifier.safeyaml` (bounded size, nesting and alias expansion). Every bad input raises
:class:`~verifier.errors.InputError`; an API server that cannot be reached raises :class:`~verifier.errors.Unreachable`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from splitproof.verifier import defaults
from splitproof.verifier.errors import InputError, Unreachable
from splitproof.verifier.expected import Expected
from splitproof.verifier.inputfile import InputFileError
from splitproof.verifier.istio import API_VERSIONS, weighted_route
from splitproof.verifier.redact import redact
from splitproof.verifier.safeyaml import YamlInputError, read_documents

ISTIO_GROUP = "networking.istio.io"


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


def weights_from_virtualservice(vs: Mapping[str, Any], host: str = defaults.SERVICE_HOST) -> dict[str, int]:
    """The weighted route of one VirtualService document as {subset: weight} (:func:`verifier.istio.weighted_route`)."""
    _check_api_version(vs)
    try:
        return weighted_route(vs)
    except InputError as exc:
        raise InputError(str(exc)) from None


def expected_from_documents(docs: Iterable[Any], host: str = defaults.SERVICE_HOST, origin: str = "") -> Expected:
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


def from_virtualservice_file(path: str | Path, host: str = defaults.SERVICE_HOST) -> Expected:
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


def from_virtualservice_live(name: str, namespace: str, host: str = defaults.SERVICE_HOST,
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
