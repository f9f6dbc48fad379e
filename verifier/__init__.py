"""verify-split's core as a Python API: count responses per version and judge them against the configured split.

Everything public is importable from here (``from splitproof.verifier import verify, Outcome``); each name is
loaded on first use (PEP 562), so ``import splitproof.verifier`` loads no scipy, numpy, rich, yaml or jinja2.
Shares, tolerances and limits are fractions (0.05 = 5 percentage points) throughout; the command lines convert
percentage points once, at their edge.

    >>> from splitproof.verifier import verify, Outcome
    >>> v = verify(["production"] * 800 + ["canary"] * 200, {"production": 0.8, "canary": 0.2})
    >>> v.outcome is Outcome.PASS, v.row("canary").interval.level
    (True, 0.98)

The layers (README "Architecture"): :mod:`~splitproof.verifier.inputs` and :mod:`~splitproof.verifier.telemetry`
produce observations; the one :class:`Tally` counts them; :mod:`~splitproof.verifier.stats` (the split) and
:mod:`~splitproof.verifier.health` judge them into typed results (:mod:`~splitproof.verifier.verdict`);
:mod:`~splitproof.verifier.reports` writes them out; :mod:`~splitproof.verifier.command` is verify-split's body.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers treat the name as True)

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    # the results
    "Outcome": "verdict", "Status": "verdict", "Method": "verdict", "Interval": "verdict",
    "IntervalKind": "verdict", "Verdict": "verdict", "VersionRow": "verdict", "UnattributedRow": "verdict",
    "Parameters": "verdict",
    # the expected split
    "Expected": "expected", "from_canary_percent": "expected", "from_weights_spec": "expected",
    "from_virtualservice_file": "inputs.virtualservice", "from_virtualservice_live": "inputs.virtualservice",
    "from_httproute_file": "inputs.httproute", "from_httproute_live": "inputs.httproute",
    # observations
    "Record": "inputs.records", "RecordWriter": "inputs.records", "read_records": "inputs.records",
    "Attribution": "inputs.attribution",
    # one tally, one function to a verdict
    "Tally": "tally", "Batch": "tally", "verify": "verify",
    # the split judges
    "judge": "stats.fixed", "SequentialGate": "stats.sequential", "plan": "stats.planning", "Plan": "stats.planning",
    # the health judges
    "judge_health": "health.fixed", "HealthMonitor": "health.sequential", "HealthVerdict": "health.model",
    "combine": "health.combined",
    # outputs
    "print_verdict": "reports.table", "verdict_to_dict": "reports.jsonout", "write_junit": "reports.junit",
    "github_summary_markdown": "reports.markdown", "write_html": "reports.html",
    # errors and exit codes
    "SplitproofError": "errors", "InputError": "errors", "Unreachable": "errors", "ExitCode": "exitcodes",
}

__all__ = [
    "Attribution", "Batch", "combine", "ExitCode", "Expected", "from_canary_percent", "from_httproute_file",
    "from_httproute_live", "from_virtualservice_file", "from_virtualservice_live", "from_weights_spec",
    "github_summary_markdown", "HealthMonitor", "HealthVerdict", "InputError", "Interval", "IntervalKind", "judge",
    "judge_health", "Method", "Outcome", "Parameters", "plan", "Plan", "print_verdict", "read_records", "Record",
    "RecordWriter", "SequentialGate", "SplitproofError", "Status", "Tally", "UnattributedRow", "Unreachable",
    "Verdict", "verdict_to_dict", "verify", "VersionRow", "write_html", "write_junit",
]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from splitproof.verifier.errors import InputError, SplitproofError, Unreachable
    from splitproof.verifier.exitcodes import ExitCode
    from splitproof.verifier.expected import Expected, from_canary_percent, from_weights_spec
    from splitproof.verifier.health.combined import combine
    from splitproof.verifier.health.fixed import judge_health
    from splitproof.verifier.health.model import HealthVerdict
    from splitproof.verifier.health.sequential import HealthMonitor
    from splitproof.verifier.inputs.attribution import Attribution
    from splitproof.verifier.inputs.httproute import from_httproute_file, from_httproute_live
    from splitproof.verifier.inputs.records import Record, RecordWriter, read_records
    from splitproof.verifier.inputs.virtualservice import from_virtualservice_file, from_virtualservice_live
    from splitproof.verifier.reports.html import write_html
    from splitproof.verifier.reports.jsonout import verdict_to_dict
    from splitproof.verifier.reports.junit import write_junit
    from splitproof.verifier.reports.markdown import github_summary_markdown
    from splitproof.verifier.reports.table import print_verdict
    from splitproof.verifier.stats.fixed import judge
    from splitproof.verifier.stats.planning import Plan, plan
    from splitproof.verifier.stats.sequential import SequentialGate
    from splitproof.verifier.tally import Batch, Tally
    from splitproof.verifier.verdict import (
        Interval,
        IntervalKind,
        Method,
        Outcome,
        Parameters,
        Status,
        UnattributedRow,
        Verdict,
        VersionRow,
    )
    from splitproof.verifier.verify import verify
