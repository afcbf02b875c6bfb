"""Console output: rich progress bars for long steps and the end-of-run summary."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class UI:
    def __init__(self, console: Console | None = None, quiet: bool = False):
        self.console = console or Console(stderr=True)
        self.quiet = quiet

    def log(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message)

    @contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[Callable[[int, int], None]]:
        """Yields ``update(done, total)``; the bar disappears when the step ends."""
        if self.quiet or not self.console.is_terminal:
            yield lambda done, total: None
            return
        bar = Progress(TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), console=self.console, transient=True)
        with bar:
            task = bar.add_task(description, total=total)

            def update(done: int, new_total: int) -> None:
                bar.update(task, completed=done, total=new_total)

            yield update
