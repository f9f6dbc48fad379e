"""Turn one response (a product page or a ListRecommendations reply) into a split record and a failure message.

Pure functions: no Locust, no I/O -- the one classification shared by the Locust file (loadtest/boutique.py) and
verify-split's live probes (verifier/inputs/probes.py). The counting and the count->version mapping are
``verifier.inputs.attribution``'s; this module decides what counts as a failure and what the record says.

A response is one of
  * attributed  -- counted items map to a version: Locust success, record ``status="ok"`` with the version;
  * unattributable -- the call worked but the count maps to no version (e.g. 3 items): Locust failure
    ``unattributable: 3 recommendations``, record ``status="ok"`` with ``items=3`` and ``version=null``;
  * missing section -- a 200 product page without ``<section class="recommendations">`` (the frontend hides the
    section when its recommendation call failed): Locust failure ``no recommendations section``, record
    ``status="error:no_recommendations"``, ``items=null``;
  * failed -- an HTTP status outside 2xx, a connection error, or a gRPC error: Locust failure (Locust's own for
    HTTP, the gRPC status for gRPC), record ``status="error:<cause>"``.

Under header attribution every record whose version the header named says so (``by="header"``) -- a failed one
too: the header arrives with the error, so the health judge can tell which version failed (a payload cannot).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from splitproof.verifier.inputs.attribution import Attribution, count_recommendations
from splitproof.verifier.inputs.records import BY_HEADER, STATUS_OK, Record, error_status

NO_SECTION_CAUSE = "no_recommendations"
NO_SECTION_FAILURE = "no recommendations section (the frontend's recommendation call failed)"


@dataclass(frozen=True, slots=True)
class Classified:
    """What one response means: the record's fields plus the Locust failure message (None = success)."""

    channel: str
    items: int | None
    version: str | None
    status: str
    failure: str | None
    by: str | None = None  # BY_HEADER when the version came from the response header

    def record(self, t: float, latency_ms: float, source: str | None = None) -> Record:
        # tuple.__new__ with every field, as Record._make does: the named tuple's own __new__ is one more Python
        # call per response (the Locust file makes one record per response)
        return _new_record(Record, (t, self.channel, self.items, self.version, self.status, latency_ms, source,
                                    self.by))


_new_record = tuple.__new__


def unattributable_failure(items: int, known: list[int]) -> str:
    expected = ", ".join(str(n) for n in sorted(known, reverse=True))
    return f"unattributable: {items} recommendations (expected one of {expected})"


def _from_count(channel: str, items: int, attribution: Attribution,
                headers: Mapping[str, str] | None = None) -> Classified:
    # One outcome per (channel, count, header version) of an attribution -- what the rest of it decides -- kept
    # with it (Classified is frozen, so the Locust file's users share them instead of building one per response).
    named = attribution.by_header(headers) if attribution.header is not None else None
    key = (channel, items, named)
    found = attribution.derived.get(key)
    if found is None:
        found = _outcome(channel, items, named, attribution)
        if len(attribution.derived) < 1024:  # a handful per run: bounded all the same (header values are open)
            attribution.derived[key] = found
    return found


def _outcome(channel: str, items: int, named: str | None, attribution: Attribution) -> Classified:
    if attribution.header is not None:
        if named is None:
            return Classified(channel, items, None, STATUS_OK, f"unattributable: no {attribution.header} header")
        return Classified(channel, items, named, STATUS_OK, None, BY_HEADER)
    version = attribution.by_count(channel, items)
    if version is None:
        return Classified(channel, items, None, STATUS_OK,
                          unattributable_failure(items, list(attribution.classes_for(channel))))
    return Classified(channel, items, version, STATUS_OK, None)


def _failed(channel: str, cause: str, failure: str, attribution: Attribution,
            headers: Mapping[str, str] | None) -> Classified:
    """A failed response; under header attribution it names the version its header gave (for the health judge)."""
    version = attribution.by_header(headers) if attribution.header is not None else None
    return Classified(channel, None, version, error_status(cause), failure, BY_HEADER if version else None)


def http_error_cause(status_code: int | None) -> str:
    """``http_503`` for an HTTP error status, ``connection`` when no response arrived (status 0/None)."""
    if not status_code:
        return "connection"
    return f"http_{status_code}"


def failed_request_outcome(status_code: int | None, attribution: Attribution,
                           headers: Mapping[str, str] | None = None) -> Classified:
    """A product page whose request failed, whatever its body held: ``status_code`` is the HTTP status the client
    rejected (``http_503``; a 2xx its client does not accept too), 0/None when no usable response came (``connection``:
    none at all, or a body that broke off). Locust already names HTTP failures itself; the failure text here is for
    callers that need one."""
    cause = http_error_cause(status_code)
    return _failed("http", cause, cause, attribution, headers)


def product_page_outcome(status_code: int | None, html: str | bytes | None, attribution: Attribution,
                         headers: Mapping[str, str] | None = None) -> Classified:
    """Classify one product page. ``status_code`` 0/None means the request itself failed (no response). ``html``
    is the page's text, or its bytes: counted undecoded when they are plain, else NotPlainText is raised
    (:func:`verifier.inputs.attribution.count_recommendations`) and the caller passes the decoded text."""
    if not status_code or not 200 <= status_code < 300:
        return failed_request_outcome(status_code, attribution, headers)
    items = count_recommendations(html or "")
    if items is None:
        return _failed("http", NO_SECTION_CAUSE, NO_SECTION_FAILURE, attribution, headers)
    return _from_count("http", items, attribution, headers)


def grpc_reply_outcome(product_ids: list[str] | None, error_code: str | None, attribution: Attribution,
                       metadata: Mapping[str, str] | None = None) -> Classified:
    """Classify one ListRecommendations call: ``error_code`` is the gRPC status name (e.g. ``UNAVAILABLE``)."""
    if error_code is not None:
        return _failed("grpc", error_code, error_code, attribution, metadata)
    return _from_count("grpc", len(product_ids or ()), attribution, metadata)


def error_metadata(exc: BaseException) -> dict[str, str]:
    """The metadata a failed gRPC call carried: Envoy's ``headers.response.set`` arrives with the error (in the
    trailers of a trailers-only response, or in the initial metadata)."""
    out: dict[str, str] = {}
    for getter in ("trailing_metadata", "initial_metadata"):
        fn = getattr(exc, getter, None)
        try:
            items = fn() if callable(fn) else None
        except Exception:  # noqa: BLE001 -- a call object without metadata
            items = None
        for key, value in items or ():
            out.setdefault(str(key), value if isinstance(value, str) else repr(value))
    return out
