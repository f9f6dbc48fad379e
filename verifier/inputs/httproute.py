"""The expected split read from the Gateway API: an HTTPRoute in YAML (``--from-httproute FILE``, with the backend
Services' manifests in the same file) or the live HTTPRoute and Services through the Kubernetes API
(``--from-httproute NAME -n NAMESPACE``).

The weighted rule, the weights (default 1, relative, normalised) and the version each backend Service selects are
:mod:`verifier.gatewayapi`'s; files are read through :mod:`verifier.safeyaml`. Every bad input raises
:class:`~verifier.errors.InputError`; an API server that cannot be reached raises :class:`~verifier.errors.Unreachable`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from splitproof.verifier import defaults
from splitproof.verifier import gatewayapi as gw
from splitproof.verifier.errors import InputError, Unreachable
from splitproof.verifier.expected import Expected
from splitproof.verifier.inputfile import InputFileError
from splitproof.verifier.inputs.virtualservice import _first_line, _server_text, check_kubeconfig
from splitproof.verifier.safeyaml import YamlInputError, read_documents

WHAT = "--from-httproute"


def _meta(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = doc.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _is_route(doc: Any) -> bool:
    return (isinstance(doc, dict) and doc.get("kind") == gw.HTTPROUTE and isinstance(doc.get("apiVersion"), str)
            and doc["apiVersion"].startswith(gw.GROUP + "/"))


def _is_service(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("kind") == "Service" and doc.get("apiVersion") == "v1"


def _short(host: str) -> str:
    return host.strip().lower().split(".")[0]


def pick_route(docs: Iterable[Any], host: str = defaults.SERVICE_HOST, origin: str = "") -> Mapping[str, Any]:
    """The HTTPRoute for ``host``: the one whose parentRefs name the Service ``host`` (GAMMA); else the only
    HTTPRoute of the input (an ingress route to a Gateway)."""
    docs = [d for d in docs if d is not None]
    routes = [d for d in docs if _is_route(d)]
    for r in routes:
        if r.get("apiVersion") not in gw.API_VERSIONS:
            raise InputError(f"HTTPRoute {_meta(r).get('name', '?')}: unsupported apiVersion "
                             f"{r.get('apiVersion')!r} (supported: {', '.join(gw.API_VERSIONS)})")
    mesh = [r for r in routes if any(_short(name) == _short(host) for _ns, name in gw.parent_services(r))]
    chosen = mesh or (routes if len(routes) == 1 else [])
    if not chosen:
        kinds = sorted({str(d.get("kind")) for d in docs if isinstance(d, dict)})
        found = f" (found: {', '.join(kinds)})" if kinds else ""
        several = f"; {len(routes)} HTTPRoutes, none with the Service as parent" if routes else ""
        raise InputError(f"no HTTPRoute for Service {host!r} in {origin or 'the input'}{found}{several}")
    if len(chosen) > 1:
        names = ", ".join(str(_meta(r).get("name", "?")) for r in chosen)
        raise InputError(f"several HTTPRoutes for Service {host!r} in {origin or 'the input'}: {names}")
    return chosen[0]


def expected_from_route(route: Mapping[str, Any], versions: Mapping[tuple[str, str], str], *,
                        default_namespace: str = "", origin: str = "") -> Expected:
    """The Expected split of one HTTPRoute, each backend named by the version its Service selects."""
    name = str(_meta(route).get("name", "?"))
    source = f"HTTPRoute {name}" + (f" ({origin})" if origin else "")
    weights = gw.version_weights(gw.backends(route, default_namespace), versions, f"HTTPRoute {name}")
    try:
        return Expected(gw.normalized(weights), weights=gw.as_percentages(weights), source=source)
    except InputError as exc:
        raise InputError(f"{source}: {exc}") from None


def expected_from_documents(docs: Iterable[Any], host: str = defaults.SERVICE_HOST, origin: str = "",
                            default_namespace: str = "") -> Expected:
    docs = list(docs)
    route = pick_route(docs, host, origin)
    ns = str(_meta(route).get("namespace") or default_namespace)
    versions = gw.service_versions([d for d in docs if _is_service(d)], ns)
    return expected_from_route(route, versions, default_namespace=ns, origin=origin)


def read_file(path: str | Path, host: str = defaults.SERVICE_HOST) -> tuple[Mapping[str, Any], list[Any], str]:
    """(the HTTPRoute for ``host``, the Service documents, its namespace) from YAML (multi-document,
    ``kind: List``, ``-`` for stdin), through verifier.safeyaml."""
    try:
        docs = read_documents(str(path), WHAT)
    except InputFileError as exc:
        if str(exc).startswith(f"{WHAT}: no such file"):
            raise InputError(f"{exc} (to read a live HTTPRoute by name, add -n NAMESPACE)") from None
        raise InputError(str(exc)) from None
    except YamlInputError as exc:
        raise InputError(str(exc)) from None
    flat: list[Any] = []
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            flat.extend(doc["items"])
        else:
            flat.append(doc)
    route = pick_route(flat, host, str(path))
    return route, [d for d in flat if _is_service(d)], str(_meta(route).get("namespace") or "")


def from_httproute_file(path: str | Path, host: str = defaults.SERVICE_HOST) -> Expected:
    """The expected split of the HTTPRoute for ``host`` in a YAML file, its backends named by the versions their
    Services (in the same file) select."""
    route, services, ns = read_file(path, host)
    versions = gw.service_versions(services, ns)
    return expected_from_route(route, versions, default_namespace=ns, origin=str(path))


def _api_error(exc: Any, what: str) -> Exception:
    reason = _server_text(exc.reason)
    if exc.status in (401, 403):
        return InputError(f"{WHAT} {what}: the Kubernetes API refused access ({exc.status} {reason})")
    if exc.status == 404:
        return InputError(f"{what} not found ({reason or 'Not Found'})")
    return Unreachable(f"{WHAT} {what}: Kubernetes API error {exc.status} {reason}")


def read_live(name: str, namespace: str, context: str | None = None) -> tuple[Mapping[str, Any], list[Any], str]:
    """(the HTTPRoute ``name`` in ``namespace``, its backend Services, the namespace), GET with the ``kubernetes``
    client (current kube context, or ``context``)."""
    import os

    import yaml
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    check_kubeconfig(os.environ.get("KUBECONFIG"))
    try:
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None, context=context)
    except (ConfigException, OSError, TypeError, ValueError, AttributeError, KeyError, yaml.YAMLError) as exc:
        raise InputError(f"{WHAT} {name}: no usable kube context ({_first_line(exc)})") from None

    def call(what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args, _request_timeout=10)
        except ApiException as exc:
            raise _api_error(exc, what) from None
        except Exception as exc:  # urllib3 connection errors: the API server is not reachable
            host_url = client.Configuration.get_default_copy().host
            raise Unreachable(f"cannot reach the Kubernetes API at {host_url}: {_first_line(exc)}") from None

    api = client.CustomObjectsApi()
    route: Any = None
    missing: InputError | None = None
    for api_version in gw.API_VERSIONS:
        try:
            route = call(f"HTTPRoute {name!r} in namespace {namespace!r}", api.get_namespaced_custom_object,
                         gw.GROUP, api_version.split("/", 1)[1], namespace, "httproutes", name)
            break
        except InputError as exc:
            if "refused access" in str(exc):
                raise
            missing = exc
    if route is None:
        raise missing or InputError(f"HTTPRoute {name!r} not found in namespace {namespace!r}")
    if not isinstance(route, dict):
        raise InputError(f"{WHAT} {name}: unexpected API answer")
    core = client.CoreV1Api(client.ApiClient())
    services = []
    for b in gw.backends(route, namespace):
        svc = call(f"Service {b.name!r} in namespace {b.namespace!r} (a backend of HTTPRoute {name})",
                   core.read_namespaced_service, b.name, b.namespace)
        services.append(core.api_client.sanitize_for_serialization(svc))
    return route, services, namespace


def from_httproute_live(name: str, namespace: str, host: str = defaults.SERVICE_HOST,
                        context: str | None = None) -> Expected:
    """GET the HTTPRoute ``name`` in ``namespace`` and each backend Service with the ``kubernetes`` client."""
    route, services, ns = read_live(name, namespace, context)
    versions = gw.service_versions(services, ns)
    return expected_from_route(route, versions, default_namespace=ns, origin=f"namespace {ns}")


def read_route(source: str, namespace: str | None, host: str = defaults.SERVICE_HOST,
               context: str | None = None) -> tuple[Mapping[str, Any], list[Any], str]:
    """``--from-httproute`` as given: a file, or with a namespace the live object -- (route, Services, namespace)."""
    if namespace:
        return read_live(source, namespace, context)
    return read_file(source, host)
