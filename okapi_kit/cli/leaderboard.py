"""The ``leaderboard`` command and the rich leaderboard table."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import OkapiError
from .commands import _console


def print_leaderboard(rows, title: str) -> None:
    from rich.table import Table

    from ..leaderboard import aligned_methods, compare, table_rows

    if not rows:
        _console().print("no evaluation results yet")
        return
    methods, comps = compare(rows)
    table = Table(title=title, caption="± standard error; * = change vs SFT larger than 2 combined SE")
    for col in ["language", "task", "metric", *methods, *[f"{m} - sft" for m in aligned_methods(methods)], "n"]:
        table.add_column(col)
    for row in table_rows(methods, comps):
        table.add_row(*row)
    _console().print(table)



@click.command("leaderboard")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=Path("runs/leaderboard.sqlite"),
              show_default=True, help="Results database.")
@click.option("--run", "run_name", help="Only this run (the run folder's name).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "markdown"]), default="table",
              show_default=True)
def leaderboard_cmd(db: Path, run_name: str | None, fmt: str) -> None:
    """Compare SFT with the aligned models per language and task.

    \b
    Examples:
      okapi-kit leaderboard
      okapi-kit leaderboard --format json --run demo
    """
    from ..leaderboard import ResultsStore, compare, render

    if not db.exists():
        raise OkapiError(f"no results database at {db}", hint="run a pipeline first, or pass --db PATH")
    rows = ResultsStore(db).rows(run=run_name)
    if fmt == "table":
        print_leaderboard(rows, f"Leaderboard ({db})")
    else:
        click.echo(render(*compare(rows), fmt), nl=False)
