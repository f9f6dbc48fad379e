"""``--json``: the verdict (and ``--plan``'s sample sizes) as a versioned JSON document.

Every document carries ``"schema"``: ``splitproof.verdict/v1`` for a verdict, ``splitproof.plan/v1`` for a plan.
The fields are listed, with their meaning and unit, in docs/verdict-schema.md (tests/test_verdict_schema.py checks
that the documented fields are exactly the emitted ones). Within a version of the schema fields are only ever
added; a field that changes meaning or disappears bumps the version. Non-finite numbers are written as null.
Shares, margins, limits and levels are fractions, as in the Python API.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any

from splitproof.verifier.stats.planning import Plan
from splitproof.verifier.verdict import UnattributedRow, Verdict, VersionRow

VERDICT_SCHEMA = "splitproof.verdict/v1"
PLAN_SCHEMA = "splitproof.plan/v1"


def clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become None, str enums their value, mappings/sequences recursively cleaned."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def row_to_dict(row: VersionRow) -> dict[str, Any]:
    return {"version": row.version, "expected": row.expected, "count": row.count, "share": row.share,
            "lo": row.lo, "hi": row.hi, "p_value": row.p_value, "p_equivalence": row.p_equivalence,
            "status": row.status, "margin": row.margin}


def unattributed_to_dict(row: UnattributedRow) -> dict[str, Any]:
    return {"count": row.count, "total": row.total, "share": row.share, "lo": row.lo, "hi": row.hi,
            "limit": row.limit, "p_exceeds": row.p_exceeds, "p_within": row.p_within, "status": row.status}


def verdict_to_dict(verdict: Verdict) -> dict[str, Any]:
    """The verdict document (without what verify-split adds about its inputs)."""
    interval = verdict.unattributed_row.interval
    return clean({
        "schema": VERDICT_SCHEMA,
        "outcome": verdict.outcome,
        "exit_code": int(verdict.exit_code),
        "reason": verdict.reason,
        "method": verdict.method,
        "n": verdict.n,
        "unattributed": verdict.unattributed,
        "total": verdict.total,
        "rows": [row_to_dict(r) for r in verdict.rows],
        "unattributed_row": unattributed_to_dict(verdict.unattributed_row),
        "interval": {"level": interval.level, "kind": interval.kind, "name": interval.name},
        "gof_method": verdict.gof_method,
        "gof_p_value": verdict.gof_p_value,
        "log_e_value": verdict.log_e_value,
        "samples_needed": verdict.samples_needed,
        "parameters": dataclasses.asdict(verdict.parameters) | {"margins": dict(verdict.parameters.margins)},
        "method_details": dict(verdict.method_details),
        "unattributed_causes": dict(verdict.unattributed_causes),
        "notes": list(verdict.notes),
    })


def verdict_json(verdict: Verdict, extra: Mapping[str, Any] | None = None) -> str:
    """The document as text; ``extra``: what verify-split adds (the expected split's source, the input or target)."""
    data = verdict_to_dict(verdict)
    if extra:
        data.update(clean(dict(extra)))
    return json.dumps(data, indent=2)


def plan_to_dict(plan: Plan, rate: float | None = None) -> dict[str, Any]:
    """``--plan --json``: the sample sizes (and, with ``--rate``, the seconds the fixed-n size takes)."""
    data: dict[str, Any] = {
        "expected": dict(plan.expected), "alpha": plan.alpha, "tolerance": plan.tolerance, "power": plan.power,
        "max_unattributed": plan.max_unattributed, "n_pass": plan.n_pass, "n_fail": plan.n_fail,
        "n_unattributed": plan.n_unattributed, "n": plan.n, "sequential_pass": plan.sequential_pass,
    }
    if rate:
        data["seconds"] = plan.seconds(rate)
    return clean({"schema": PLAN_SCHEMA, "plan": data})
