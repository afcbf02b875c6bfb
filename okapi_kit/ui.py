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


def quiet_libraries() -> None:
    """Silence the libraries' own progress bars and advice; okapi-kit shows its own progress.

    Environment variables are set only where the user has not set them, and before the
    libraries are imported (they read them at import time).
    """
    import logging
    import os
    import warnings

    for var, value in (("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("HF_DATASETS_DISABLE_PROGRESS_BARS", "1"),
                       ("TRANSFORMERS_VERBOSITY", "error"), ("TOKENIZERS_PARALLELISM", "false"),
                       ("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1"), ("TQDM_DISABLE", "1")):
        os.environ.setdefault(var, value)
    for name in ("lm_eval", "lm-eval", "datasets", "accelerate", "trl", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for module in ("transformers", "trl", "torch", "accelerate", "lm_eval", "datasets"):
        warnings.filterwarnings("ignore", category=FutureWarning, module=module)
        warnings.filterwarnings("ignore", category=UserWarning, module=module)
