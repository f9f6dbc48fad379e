"""A small client for Prometheus' HTTP API (https://prometheus.io/docs/prometheus/latest/querying/api/).

Envelope: ``{"status": "success"|"error", "data": ..., "errorType": ..., "error": ..., "warnings": [...]}``
(``"infos"`` too since 3.x); errors come as HTTP 400 (bad parameters, ``bad_data``), 422 (the expression cannot be
executed, ``execution``) and 503 (timeout or abort); "other non-2xx codes may be returned for errors occurring
before the API endpoint is reached" -- a proxy, an auth gateway. Every error here is one line, secrets redacted.

Raw samples: a range selector in an instant query, ``selector[<range>]`` at ``time=T``, returns a ``matrix`` of
every stored sample per series in the range -- ``[T-range, T]`` in Prometheus 2.x, ``(T-range, T]`` since 3.0
("The range is a left-open and right-closed interval", docs/querying/basics.md); ``read_range`` overlaps chunk
edges and the counter accumulator drops the duplicate, so both behave the same. Stale markers are not returned.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from splitproof.verifier.telemetry.errors import (
    TelemetryInputError,
    TelemetryQueryError,
    TelemetryResponseTooLarge,
    TelemetryUnreachable,
)
from splitproof.verifier.telemetry.httpget import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT, Endpoint, one_line, request
from splitproof.verifier.telemetry.window import parse_duration

Labels = dict[str, str]
Samples = list[tuple[int, float]]  # (unix milliseconds, value)
MIN_CHUNK_MS = 60_000
DEFAULT_CHUNK_MS = 2 * 3_600_000  # a 1 h window plus its lookback in one query


@dataclass(frozen=True)
class Answer:
    data: Any
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class RangeChunk:
    """The raw samples of every matching series in ``(start_ms, end_ms]`` (2.x: ``[start_ms, end_ms]``)."""

    start_ms: int
    end_ms: int
    series: list[tuple[Labels, Samples]]
    warnings: tuple[str, ...]


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.3f}"


class PrometheusClient:
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._redact = endpoint.redactor

    @classmethod
    def from_url(cls, url: str, *, headers: Mapping[str, str] | None = None,
                 secret_headers: Mapping[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> PrometheusClient:
        return cls(Endpoint.parse(url, headers=headers, secret_headers=secret_headers, timeout=timeout,
                                  max_bytes=max_bytes))

    @property
    def url(self) -> str:
        return self.endpoint.base_url

    # ------------------------------------------------------------------------------------------------ envelope
    def api(self, path: str, params: Mapping[str, str] | None = None, *, post: bool = False) -> Answer:
        answer = request(self.endpoint, path, params=params, post=post)
        where = f"Prometheus {self.url}"
        try:
            doc = json.loads(answer.body)
        except (ValueError, UnicodeDecodeError):
            doc = None
        if not isinstance(doc, dict) or doc.get("status") not in ("success", "error"):
            raise self._not_api(answer.status, answer.content_type, answer.body, path)
        if doc["status"] == "error" or not 200 <= answer.status < 300:
            etype = str(doc.get("errorType") or "error")
            msg = one_line(self._redact(str(doc.get("error") or "(no message)")))
            raise TelemetryQueryError(f"{where}: HTTP {answer.status} {etype}: {msg}", status=answer.status,
                                      error_type=etype)
        notes = [*(doc.get("warnings") or ()), *(doc.get("infos") or ())]
        return Answer(doc.get("data"), tuple(one_line(self._redact(str(w))) for w in notes))

    def _not_api(self, status: int, ctype: str, body: bytes, path: str) -> Exception:
        where = f"Prometheus {self.url}"
        snippet = one_line(self._redact(body[:200].decode("utf-8", "replace")), 120)
        if status in (401, 403):
            return TelemetryQueryError(f"{where}: HTTP {status} {'Unauthorized' if status == 401 else 'Forbidden'}"
                                       ": the server wants (other) credentials -- a bearer token from a file or "
                                       "the environment, or a header file", status=status)
        if status == 404:
            return TelemetryQueryError(f"{where}: HTTP 404 for {path}: no Prometheus API there -- give the server's "
                                       "base URL (e.g. http://prometheus.istio-system:9090, without /api/v1)",
                                       status=status)
        if status in (502, 503, 504):
            return TelemetryUnreachable(f"{where}: HTTP {status} from the gateway in front of it: {snippet}")
        if 200 <= status < 300:
            return TelemetryQueryError(f"{where}: answered {path} with {ctype or 'no content type'}, not the "
                                       f"Prometheus API's JSON (is this a Prometheus base URL?): {snippet}",
                                       status=status)
        return TelemetryQueryError(f"{where}: HTTP {status} ({ctype or 'no content type'}): {snippet}", status=status)

    # ----------------------------------------------------------------------------------------------- queries
    def query(self, promql: str, at_ms: int, timeout: float | None = None) -> Answer:
        """``/api/v1/query`` (form POST: long selectors do not hit URL limits)."""
        params = {"query": promql, "time": _seconds(at_ms),
                  "timeout": f"{max(1, math.ceil(timeout or self.endpoint.timeout))}s"}
        return self.api("/api/v1/query", params, post=True)

    def matrix(self, selector: str, start_ms: int, end_ms: int) -> RangeChunk:
        """Every raw sample of ``selector``'s series in the range ending at ``end_ms`` (one instant query)."""
        answer = self.query(f"{selector}[{max(1, end_ms - start_ms)}ms]", end_ms)
        data = answer.data if isinstance(answer.data, dict) else {}
        if data.get("resultType") != "matrix" or not isinstance(data.get("result"), list):
            raise TelemetryQueryError(f"Prometheus {self.url}: expected a matrix for {selector}[...], got "
                                      f"{one_line(str(data.get('resultType')), 40)}")
        series: list[tuple[Labels, Samples]] = []
        for item in data["result"]:
            labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items()}
            if "histograms" in item and "values" not in item:
                raise TelemetryQueryError(f"Prometheus {self.url}: {selector} is a native histogram; give a "
                                          "counter (or the classic _bucket series)")
            try:
                samples = [(round(float(t) * 1000), float(v)) for t, v in item.get("values") or ()]
            except (TypeError, ValueError):
                raise TelemetryQueryError(f"Prometheus {self.url}: malformed samples in the answer") from None
            series.append((labels, samples))
        return RangeChunk(start_ms, end_ms, series, answer.warnings)

    def read_range(self, selector: str, start_ms: int, end_ms: int, chunk_ms: int = DEFAULT_CHUNK_MS,
                   min_chunk_ms: int = MIN_CHUNK_MS) -> Iterator[RangeChunk]:
        """Raw samples of ``[start_ms, end_ms]`` in chronological chunks of at most ``chunk_ms``; a chunk whose
        answer is too large (the size bound, or Prometheus' ``--query.max-samples``) is split in two and retried,
        down to ``min_chunk_ms``."""
        t = start_ms
        while t < end_ms:
            size = min(chunk_ms, end_ms - t)
            while True:
                try:
                    chunk = self.matrix(selector, t, t + size)
                    break
                except (TelemetryResponseTooLarge, TelemetryQueryError) as exc:
                    if not _too_big(exc) or size <= min_chunk_ms:
                        if _too_big(exc):
                            raise TelemetryQueryError(f"{exc} (even for {size // 1000} s of samples: narrow the "
                                                      "selector or raise the response-size bound)") from None
                        raise
                    size = max(min_chunk_ms, size // 2)
            yield chunk
            t += size

    def scrape_intervals(self) -> dict[str, float]:
        """Scrape interval (seconds) per scrape pool of the active targets (``/api/v1/targets``)."""
        data = self.api("/api/v1/targets", {"state": "active"}).data
        out: dict[str, float] = {}
        for target in (data or {}).get("activeTargets") or ():
            interval = target.get("scrapeInterval") or (target.get("discoveredLabels") or {}).get(
                "__scrape_interval__")
            if interval:
                try:
                    out[str(target.get("scrapePool", "?"))] = parse_duration(str(interval))
                except TelemetryInputError:
                    continue
        return out


def _too_big(exc: Exception) -> bool:
    if isinstance(exc, TelemetryResponseTooLarge):
        return True
    return isinstance(exc, TelemetryQueryError) and exc.status == 422 and "too many samples" in str(exc)
