"""What goes into a verdict besides the statistics: the expected split's sources and the observed responses.

``virtualservice``  the expected split read from Istio YAML or the live VirtualService
``httproute``       the expected split read from a Gateway API HTTPRoute (YAML or live) and its backend Services
``records``         the JSON-lines results format (one response per line), read and written
``recordline``      how a record's line is written fast (numbers, cached field text), the reference's bytes
``_line``           (C) a record's line as the bytes the writer appends, the same bytes as ``recordline``'s
``appendfile``      an append-only file that a SIGKILL cannot shorten (memory-mapped; write(2) for pipes)
``bulk``            a records file read in bulk: blocks vouched for by a scanner (``_scan``, C), the rest by ``records``
``attribution``     item count (or header) -> version: the one attribution of verify-split and the Locust file
``_markup``         (C) the page counter's fast path for a product page's bytes, the same answers as attribution's
``extensions``      a function from an optional C extension (``_scan``, ``_markup``, ``_line``), or None if not built
``classify``        one product page / gRPC reply -> a record and a failure message
``probes``          one live request -> one record (gRPC ``--target``, HTTP ``--url``)
``sampling``        probes run concurrently until the consumer says stop
``reorder``         responses back into dispatch order for the sequential gate (live and replayed)

The counts-only sources (Prometheus, Envoy admin, access logs) are :mod:`verifier.telemetry`.
"""
