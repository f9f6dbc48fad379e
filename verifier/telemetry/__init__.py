"""Telemetry sources for passive verification: count every real request by the version it was routed to.

One module per idea:

``window``       ``--since`` / ``--until`` parsing and the ``Window`` type
``result``       ``TelemetryCounts`` (the one result of every source) and ``StatusKey``
``latency``      ``LatencyHistogram`` and Istio's default duration buckets
``errors``       ``TelemetryError`` and its subclasses (unreachable / query / input)
``clusters``     Istio cluster names ``outbound|PORT|SUBSET|HOST``, the ``Service``, Envoy response flags
``httpget``      one bounded, redacting HTTP request; ``auth``: bearer token / headers from a file or env
``counters``     exact counter increments from raw samples (resets, series born inside the window)
``prometheus``   Prometheus HTTP API client (envelope, errors, raw samples in chunks)
``promql``       what to read: ``istio_requests``, ``envoy_requests``, ``promql`` specs
``promsource``   ``count_window``, ``latency_window``, ``watch`` over Prometheus
``promtext``     Prometheus text exposition parser; ``envoystats``: Envoy /stats parsers
``envoysource``  counts between Envoy admin snapshots, and ``watch``
``accesslog``    one Istio access-log line (TEXT or JSON); ``logsource``: streaming tally of a log
``watch``        the poll schedule shared by the watches
"""
