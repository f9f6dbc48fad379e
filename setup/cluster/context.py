"""What every cluster step gets: the options, the command runner, the UI, kubectl/istioctl (``Ctx``), and the two
ways a step reports what it did (``report``) or applies a document only when it differs (``ensure``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from splitproof.setup.cluster.kube import CREATED, UNCHANGED, Kube, ref
from splitproof.setup.cluster.options import DownOptions, LoadtestOptions, Options
from splitproof.setup.cluster.runner import Result, Runner
from splitproof.setup.cluster.ui import Ui


@dataclass
class Ctx:
    opts: Options
    runner: Runner
    ui: Ui
    down: DownOptions = field(default_factory=DownOptions)
    loadtest: LoadtestOptions = field(default_factory=LoadtestOptions)
    kube: Kube = field(init=False)
    facts: dict[str, Any] = field(default_factory=dict)  # what earlier steps found out (project, context, ...)
    context_ready: bool = False

    def __post_init__(self) -> None:
        self.kube = Kube(self.runner, self.opts.kube_context)

    @property
    def dry(self) -> bool:
        return self.opts.dry_run

    @property
    def ns(self) -> str:
        return self.opts.namespace


def lines(result: Result) -> list[str]:
    """The non-empty lines of a command's stdout."""
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def report(ctx: Ctx, outcome: str, what: str) -> None:
    ctx.ui.done("would" if ctx.dry and outcome != UNCHANGED else outcome, what)


def ensure(ctx: Ctx, doc: Mapping[str, Any]) -> str:
    """Apply ``doc`` unless the live object already matches it; report the outcome."""
    outcome = ctx.kube.ensure(doc)
    report(ctx, outcome if not ctx.dry else CREATED, ref(doc))
    return outcome
