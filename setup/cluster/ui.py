"""Progress output for the cluster workflow (rich): step headers, one line per action, spinners while waiting."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from typing import IO

from rich.console import Console
from rich.table import Table
from rich.text import Text

MARKS = {
    "created": ("+", "green"), "updated": ("~", "yellow"), "unchanged": ("=", "dim"), "patched": ("~", "yellow"),
    "applied": ("+", "green"), "removed": ("-", "red"), "absent": ("=", "dim"), "ok": ("✓", "green"),
    "built": ("+", "green"), "pushed": ("+", "green"), "loaded": ("+", "green"), "enabled": ("+", "green"),
    "waited": ("✓", "green"), "serving": ("✓", "green"), "would": ("?", "cyan"), "skipped": ("·", "dim"),
}


class Ui:
    def __init__(self, file: IO[str] | None = None, verbose: bool = False) -> None:
        self.console = Console(file=file or sys.stdout, highlight=False, soft_wrap=True, emoji=False)
        if not self.console.is_terminal:  # logs and pipes: never wrap or truncate table cells at 80 columns
            self.console.width = 200
        self.verbose = verbose

    def header(self, number: int, total: int, name: str, title: str) -> None:
        text = Text()
        text.append(f"[{number}/{total}] ", style="bold cyan")
        text.append(name, style="bold")
        text.append(f"  {title}", style="dim")
        self.console.print(text)

    def done(self, verb: str, what: str, detail: str = "") -> None:
        mark, style = MARKS.get(verb, ("·", ""))
        text = Text("  ")
        text.append(f"{mark} {verb:<9}", style=style)
        text.append(f" {what}")
        if detail:
            text.append(f"  {detail}", style="dim")
        self.console.print(text)

    def info(self, message: str) -> None:
        self.console.print(Text(f"  · {message}"))

    def warn(self, message: str) -> None:
        self.console.print(Text(f"  ! {message}", style="yellow"))

    def line(self, message: str, style: str = "") -> None:
        self.console.print(Text(message, style=style))

    def command(self, text: str) -> None:
        """A command (and its stdin manifest) echoed in dry-run or verbose mode."""
        self.console.print(Text(text, style="dim" if not text.startswith("$") else ""))

    @contextlib.contextmanager
    def waiting(self, message: str) -> Iterator[None]:
        if self.console.is_terminal:
            with self.console.status(message):
                yield
        else:
            yield

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        table = Table(title=title, title_justify="left", show_edge=False)
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*[Text(str(c)) for c in row])
        self.console.print(table)
