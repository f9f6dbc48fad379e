"""The live split of a running load test: per-version counts, shares, intervals and the verdict.

Fed by the recorder with each batch of versions (None = unattributed), on the process that writes the records
(local runner or master). Two questions, two methods, both the verifier's:

* While the test runs the shares are watched continuously, so the intervals shown are the anytime-valid
  confidence sequences of ``verifier.sequential`` (valid however often one looks), and the live status is the
  :class:`SequentialGate`'s -- which is also what ``--stop-on-verdict`` stops on.
* At the end the verdict that sets the exit code depends on *why* the load stopped (loadtest.ending):

  - Locust's own run-time timer ended the run's only test: the fixed-n ``verifier.stats.judge`` over all its
    records -- a length fixed before any response was seen; it is exactly what ``verify-split --results FILE``
    computes from the same file;
  - anything else: the sequential gate's -- with ``--stop-on-verdict`` (it was looked at after every response),
    and when a person stopped the run (Ctrl-C, SIGTERM, the web UI's Stop, no ``-t``) or restarted it from the
    web UI: a stop chosen while watching the live shares, where a fixed-n test would be peeking (false FAILs at
    several times alpha).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

from splitproof.loadtest.ending import RESTARTED, RUN_TIME_LIMIT, STOP_ON_VERDICT, STOPPED
from splitproof.loadtest.options import SplitConfig
from splitproof.verifier.margins import version_prior
from splitproof.verifier.mixture import confidence_sequence
from splitproof.verifier.sequential import SequentialGate
from splitproof.verifier.stats import EXIT_CODES, INCONCLUSIVE, Verdict, judge

UNATTRIBUTED = "(unattributed)"


_SEQUENTIAL_NOTES = {
    STOPPED: "the run was stopped by a person (Ctrl-C, SIGTERM, the web UI's Stop) or had no -t limit: "
             "verdict of the sequential test (valid at any stopping time)",
    RESTARTED: "the records span several tests started from the web UI: verdict of the sequential test "
               "(valid at any stopping time)",
}


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}%"


class LiveSplit:
    def __init__(self, config: SplitConfig) -> None:
        if config.expected is None:
            raise ValueError("LiveSplit needs an expected split")
        self.config = config
        self.expected = config.expected
        self.alpha = config.alpha
        self.tolerance = config.tolerance / 100.0
        self.max_unattributed = config.max_unattributed / 100.0
        self.gate = SequentialGate(self.expected, alpha=self.alpha, tolerance=self.tolerance,
                                   max_unattributed=self.max_unattributed)
        self.counts: Counter[str] = Counter()
        self.unattributed = 0
        self.causes: Counter[str] = Counter()

    # ----------------------------------------------------------------------------------------------- feeding

    def observe(self, versions: list[str | None], causes: list[str] | None = None) -> None:
        for version in versions:
            if version is None:
                self.unattributed += 1
            else:
                self.counts[version] += 1
            self.gate.observe(version)
        if causes:
            self.causes.update(causes)

    @property
    def decided(self) -> bool:
        return self.gate.decided

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    def sequential_outcome(self) -> str:
        return self.gate.verdict().outcome if self.gate.decided else INCONCLUSIVE

    # ----------------------------------------------------------------------------------------------- showing

    def rows(self) -> list[dict[str, Any]]:
        """One row per version (expected first, then any unexpected ones) plus one for the unattributed."""
        n = self.n
        versions = list(self.expected) + sorted(v for v in self.counts if v not in self.expected)
        out: list[dict[str, Any]] = []
        for version in versions:
            x = self.counts.get(version, 0)
            e = self.expected.get(version, 0.0)
            a, b = version_prior(e, self.tolerance) if e > 0 else (0.5, 0.5)  # the gate's own prior
            lo, hi = confidence_sequence(x, n, a, b, self.alpha)
            out.append({"version": version, "expected": f"{100 * e:g}%", "count": x,
                        "share": _pct(x / n if n else None), "interval": f"{_pct(lo)} - {_pct(hi)}" if n else "-"})
        total = n + self.unattributed
        out.append({"version": UNATTRIBUTED, "expected": f"<= {100 * self.max_unattributed:g}%",
                    "count": self.unattributed, "share": _pct(self.unattributed / total if total else None),
                    "interval": "-"})
        return out

    def status_line(self) -> str:
        """The sequential test's state in one line."""
        if self.gate.decided:
            verdict = self.gate.verdict()
            return f"sequential test: {verdict.outcome} - {verdict.reason}"
        return (f"sequential test: undecided after {self.gate.total} responses "
                f"(alpha {self.alpha:g}, tolerance +-{100 * self.tolerance:g} pp)")

    def console_line(self) -> str:
        parts = [f"{r['version']} {r['count']} ({r['share']}, CS {r['interval']})" for r in self.rows()[:-1]]
        parts.append(f"unattributed {self.unattributed}")
        decided = self.sequential_outcome() if self.gate.decided else "undecided"
        return f"split vs {self.expected.describe()}: " + ", ".join(parts) + f" | sequential: {decided}"

    def snapshot(self) -> dict[str, Any]:
        """Everything the web UI shows, JSON-ready."""
        return {"expected": self.expected.describe(), "rows": self.rows(), "status": self.status_line(),
                "decided": self.gate.decided, "sequential": self.sequential_outcome(),
                "stop_on_verdict": self.config.stop_on_verdict}

    # ----------------------------------------------------------------------------------------------- the end

    def final_verdict(self, ended_by: str = RUN_TIME_LIMIT) -> Verdict:
        """The verdict that sets the exit code. ``ended_by``: why the load stopped -- RUN_TIME_LIMIT (Locust's
        -t timer ended the only test: a length fixed in advance), STOPPED, STOP_ON_VERDICT or RESTARTED."""
        if self.config.stop_on_verdict or ended_by != RUN_TIME_LIMIT:
            verdict = self.gate.verdict()
            note = None if self.config.stop_on_verdict or ended_by == STOP_ON_VERDICT else \
                _SEQUENTIAL_NOTES.get(ended_by, _SEQUENTIAL_NOTES[STOPPED])
            if note:
                verdict = replace(verdict, notes=(*verdict.notes, note))
        else:
            verdict = judge(dict(self.counts), self.unattributed, self.expected, alpha=self.alpha,
                            tolerance=self.tolerance, max_unattributed=self.max_unattributed)
        if self.causes:
            verdict = replace(verdict, unattributed_causes=dict(self.causes))
        return verdict

    @staticmethod
    def exit_code(verdict: Verdict) -> int:
        return EXIT_CODES[verdict.outcome]

    def print_verdict(self, verdict: Verdict) -> None:
        from rich.console import Console

        from splitproof.verifier.report import print_verdict

        print_verdict(verdict, Console())
