"""A telemetry count batch as the health judge's input: per version, the requests whose outcome is known and how many
of them failed -- what :meth:`verifier.health.sequential.HealthMonitor.observe_batch` takes, so the one tally can
feed the health monitor from the same batches it counts for the split (verifier/tally.py).

A request is bad when its status says so (:attr:`verifier.telemetry.result.StatusKey.ok` is False: not 2xx, a gRPC
status other than OK, or an Envoy response flag). A request whose status the source does not know (``ok`` is None)
is left out of the error counts entirely -- counted neither good nor bad, so it cannot make a canary look healthier
than it is. Unattributed requests (no version) cannot be compared and are left out too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from splitproof.verifier.health.model import ERRORS, MetricCount


def error_counts(by_status: Mapping[tuple[str | None, Any], int]) -> dict[str, dict[str, MetricCount]]:
    """``{ERRORS: {version: MetricCount(known, bad)}}`` from a batch's ``by_status`` ((version, status) -> requests)."""
    known: dict[str, int] = {}
    bad: dict[str, int] = {}
    for (version, status), n in by_status.items():
        ok = status.ok
        if version is None or ok is None or n <= 0:
            continue
        known[version] = known.get(version, 0) + int(n)
        if not ok:
            bad[version] = bad.get(version, 0) + int(n)
    return {ERRORS: {v: MetricCount(total, bad.get(v, 0)) for v, total in known.items()}}
