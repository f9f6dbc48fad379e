"""The live split of a running load test: the verifier's one tally, shown live and turned into the verdict.

Fed by the recorder with each batch of versions (None = unattributed) and their causes, on the process that writes
the records (local runner or master). The counting, the intervals and the verdicts are the verifier's
(:class:`verifier.tally.Tally`, :mod:`verifier.stats.intervals`); this module only decides which verdict a run
gets and how the live view reads:

* While the test runs the shares are watched continuously, so the intervals shown are the anytime-valid
  confidence sequences of the sequential gate (valid however often one looks), and the live status is the gate's
  -- which is also what ``--stop-on-verdict`` stops on.
* At the end the verdict that sets the exit code depends on *why* the load stopped (loadtest.ending):

  - Locust's own run-time timer ended the run's only test: the fixed-n judge over all its records -- a length
    fixed before any response was seen; it is exactly what ``verify-split --results FILE`` computes from the same
    file;
  - anything else: the sequential gate's -- with ``--stop-on-verdict`` (it was looked at after every response),
    and when a person stopped the run (Ctrl-C, SIGTERM, the web UI's Stop, no ``-t``) or restarted it from the
    web UI: a stop chosen while watching the live shares, where a fixed-n test would be peeking (false FAILs at
    several times alpha).

With ``--health`` the canary's health is judged from the same records (verifier.health.responses), by the same
rule: live and on ``--stop-on-verdict`` the anytime-valid judge, at Locust's run-time limit the fixed-n judge
over every record (what ``verify-split --health --results FILE`` computes from the file). The exit code is the
gate's: FAIL if the split or a health metric fails (verifier.health.combined).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from splitproof.loadtest.ending import RESTARTED, RUN_TIME_LIMIT, STOP_ON_VERDICT, STOPPED
from splitproof.loadtest.options import SplitConfig
from splitproof.loadtest.recording import paired
from splitproof.verifier import fmt
from splitproof.verifier.exitcodes import ExitCode
from splitproof.verifier.inputs.records import Record
from splitproof.verifier.stats.intervals import share_interval
from splitproof.verifier.tally import Tally
from splitproof.verifier.verdict import Method, Outcome, Verdict

UNATTRIBUTED = "(unattributed)"


_SEQUENTIAL_NOTES = {
    STOPPED: "the run was stopped by a person (Ctrl-C, SIGTERM, the web UI's Stop) or had no -t limit: "
             "verdict of the sequential test (valid at any stopping time)",
    RESTARTED: "the records span several tests started from the web UI: verdict of the sequential test "
               "(valid at any stopping time)",
}


def _pct(value: float | None) -> str:
    return fmt.pct(value, missing="-")


class LiveSplit:
    def __init__(self, config: SplitConfig) -> None:
        if config.expected is None:
            raise ValueError("LiveSplit needs an expected split")
        self.config = config
        self.expected = config.expected
        self.tally = Tally(self.expected, method=Method.SEQUENTIAL, alpha=config.alpha, tolerance=config.tolerance,
                           max_unattributed=config.max_unattributed)
        self.gate = self.tally.gate
        # One response in dispatch order (version, or None and its cause): the recorder's observer, called once
        # per response -- the tally's own method, no call in between.
        self.observe_response: Callable[[str | None, str | None], None] = self.tally.observe
        assert self.gate is not None
        # The gate's first decision builds its confidence intervals, which need scipy's root finder: imported here,
        # before the users start, it is not a ~0.2 s stall of every greenlet in the middle of the run (a stall that
        # would also add itself to the latency of every request in flight, which the health judge reads).
        import scipy.optimize  # noqa: F401
        self.health = self.health_fixed = None
        self.health_verdict: Any = None   # the final health verdict (final_verdict sets it)
        if config.health is not None:
            from splitproof.verifier.health.responses import ResponseHealth

            attributable = config.attribution.header is not None
            self.health = ResponseHealth.for_expected(config.health, self.expected, method=Method.SEQUENTIAL,
                                                      errors_attributable=attributable)
            self.health_fixed = ResponseHealth.for_expected(config.health, self.expected, method=Method.FIXED_N,
                                                            errors_attributable=attributable)
            self.tally.health_records = self.health  # the tally's decision waits for the health judge too

    # ----------------------------------------------------------------------------------------------- feeding

    def observe(self, versions: list[str | None], causes: list[str] | None = None) -> None:
        """A batch of responses in the order they were recorded; ``causes`` names the unattributed ones, in order."""
        for version, cause in paired(versions, causes or ()):
            self.tally.observe(version, cause)

    def observe_records(self, records: list[Record]) -> None:
        """The same responses as records, for the health judges (before their versions reach :meth:`observe`)."""
        if self.health is None or self.health_fixed is None:
            return
        for rec in records:
            self.health.add(rec)
            self.health_fixed.add(rec)

    @property
    def decided(self) -> bool:
        return self.tally.decided

    @property
    def n(self) -> int:
        return self.tally.n

    def sequential_outcome(self) -> Outcome:
        return self.gate.verdict().outcome if self.gate.decided else Outcome.INCONCLUSIVE

    # ----------------------------------------------------------------------------------------------- showing

    def rows(self) -> list[dict[str, Any]]:
        """One row per version (expected first, then any unexpected ones) plus one for the unattributed, with the
        sequential verdict's interval (the gate's confidence sequence) for each share."""
        tally, n = self.tally, self.tally.n
        versions = list(self.expected) + sorted(v for v in tally.counts if v not in self.expected)
        out: list[dict[str, Any]] = []
        for version in versions:
            x = tally.counts.get(version, 0)
            e = self.expected.get(version, 0.0)
            iv = share_interval(Method.SEQUENTIAL, x, n, e, alpha=tally.alpha, tolerance=tally.tolerance)
            out.append({"version": version, "expected": fmt.share(e), "count": x,
                        "share": _pct(x / n if n else None),
                        "interval": f"{_pct(iv.lo)} - {_pct(iv.hi)}" if n else "-"})
        total = tally.total
        out.append({"version": UNATTRIBUTED, "expected": f"<= {fmt.share(tally.max_unattributed)}",
                    "count": tally.unattributed, "share": _pct(tally.unattributed / total if total else None),
                    "interval": "-"})
        return out + self.health_rows()

    def health_rows(self) -> list[dict[str, Any]]:
        """With --health: per metric and canary, its rate vs production's and the difference's confidence sequence
        (the same columns: expected = production's rate plus the PASS margin)."""
        if self.health is None:
            return []
        verdict = self.health.verdict()
        out = []
        for m in verdict.metrics:
            noun = m.criterion.noun if m.criterion else m.metric
            if not m.rows:
                out.append({"version": f"health: {noun}", "expected": "", "count": "", "share": "",
                            "interval": m.reason})
            for r in m.rows:
                margin = fmt.plus_pp(m.criterion.max_increase) if m.criterion else ""
                out.append({"version": f"health: {r.version} {noun}", "expected": f"{r.baseline} {margin}",
                            "count": r.n, "share": f"{fmt.rate(r.rate)} vs {fmt.rate(r.baseline_rate)}",
                            "interval": (f"{fmt.signed_pp(r.lo)} to {fmt.signed_pp(r.hi)} ({r.status})"
                                         if r.n and r.baseline_n else "-")})
        out.append({"version": "health", "expected": "", "count": "", "share": "",
                    "interval": f"{verdict.outcome} - {verdict.reason}"})
        return out

    def status_line(self) -> str:
        """The sequential test's state in one line."""
        if self.gate.decided:
            verdict = self.gate.verdict()
            return f"sequential test: {verdict.outcome} - {verdict.reason}"
        return (f"sequential test: undecided after {self.gate.total} responses "
                f"(alpha {self.tally.alpha:g}, tolerance +-{fmt.pp(self.tally.tolerance)})")

    def console_line(self) -> str:
        split_rows = [r for r in self.rows() if not str(r["version"]).startswith("health")]
        parts = [f"{r['version']} {r['count']} ({r['share']}, CS {r['interval']})" for r in split_rows[:-1]]
        parts.append(f"unattributed {self.tally.unattributed}")
        decided = self.sequential_outcome() if self.gate.decided else "undecided"
        line = f"split vs {self.expected.describe()}: " + ", ".join(parts) + f" | sequential: {decided}"
        if self.health is not None:
            line += f" | health: {self.health.verdict().outcome}"
        return line

    def snapshot(self) -> dict[str, Any]:
        """Everything the web UI shows, JSON-ready."""
        return {"expected": self.expected.describe(), "rows": self.rows(), "status": self.status_line(),
                "decided": self.gate.decided, "sequential": str(self.sequential_outcome()),
                "stop_on_verdict": self.config.stop_on_verdict}

    # ----------------------------------------------------------------------------------------------- the end

    def final_verdict(self, ended_by: str = RUN_TIME_LIMIT) -> Verdict:
        """The verdict that sets the exit code. ``ended_by``: why the load stopped -- RUN_TIME_LIMIT (Locust's
        -t timer ended the only test: a length fixed in advance), STOPPED, STOP_ON_VERDICT or RESTARTED."""
        sequential = self.config.stop_on_verdict or ended_by != RUN_TIME_LIMIT
        if self.health is not None and self.health_fixed is not None:
            self.health_verdict = (self.health if sequential else self.health_fixed).verdict()
        if sequential:
            verdict = self.tally.verdict(Method.SEQUENTIAL)
            note = None if self.config.stop_on_verdict or ended_by == STOP_ON_VERDICT else \
                _SEQUENTIAL_NOTES.get(ended_by, _SEQUENTIAL_NOTES[STOPPED])
            if note:
                verdict = replace(verdict, notes=(*verdict.notes, note))
            return verdict
        return self.tally.verdict(Method.FIXED_N)

    def exit_code(self, verdict: Verdict) -> ExitCode:
        """The gate's: the split verdict's, combined with the final health verdict under --health."""
        if self.health_verdict is None:
            return verdict.exit_code
        from splitproof.verifier.health.combined import combine

        return combine(verdict, self.health_verdict).exit_code

    def print_verdict(self, verdict: Verdict) -> None:
        from rich.console import Console

        from splitproof.verifier.reports.table import print_verdict

        console = Console()
        print_verdict(verdict, console)
        if self.health_verdict is not None:
            from splitproof.verifier.reports.healthout import HealthReport, print_health

            report = HealthReport(self.health_verdict, "header" if self.config.attribution.header else
                                  "payload (errors not attributable)")
            print_health(report, report.gate(verdict), console)
