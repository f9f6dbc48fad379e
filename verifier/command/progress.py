"""A rich progress bar for live sampling, with the live shares and their intervals (refreshed a few times a second).

The intervals are the verdict's own (:mod:`verifier.stats.intervals`): the gate's confidence sequences when the run
is sequential, the Clopper-Pearson intervals of the fixed-n judge otherwise.
"""

from __future__ import annotations

import time

from rich.console import Console

from splitproof.verifier import fmt
from splitproof.verifier.stats.intervals import share_interval
from splitproof.verifier.tally import Tally


class LiveProgress:
    def __init__(self, console: Console, tally: Tally, total: int | None, label: str, enabled: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.tally = tally
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[status]}"), console=console,
                                 disable=not enabled, transient=False)
        self.task = self.progress.add_task(label, total=total, status="connecting")
        self._last = 0.0

    def __enter__(self) -> LiveProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.update(force=True)
        self.progress.stop()

    def update(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.progress.disable or (not force and now - self._last < 0.25):
            return
        self._last = now
        self.progress.update(self.task, completed=self.tally.total, status=status_text(self.tally))


def status_text(tally: Tally) -> str:
    """``production 80.0% [77.1–82.6%] · canary 20.0% [...] · unattributed 1``."""
    n = tally.n
    parts = []
    if n:
        for version in list(tally.expected) + sorted(v for v in tally.counts if v not in tally.expected):
            x = tally.counts[version]
            iv = share_interval(tally.method, x, n, tally.expected.get(version, 0.0), alpha=tally.alpha,
                                tolerance=tally.tolerance)
            parts.append(f"{version} {fmt.pct(x / n)} [{fmt.interval(iv.lo, iv.hi)}]")
    parts.append(f"unattributed {tally.unattributed}")
    return " · ".join(parts)
