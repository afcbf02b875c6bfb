"""The ``leaderboard`` command and the rich leaderboard tables.

The terminal layout stays readable at 80 columns: one table per (run, model) and (task, metric),
whose names are printed whole on a heading line above it. A table has a row per language and a
column per method when that fits the terminal, else a row per language and method; values and
their "± stderr" never wrap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import OkapiError, did_you_mean

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from ..leaderboard import Comparison, ResultRow

CAPTION = "± standard error; * = change vs SFT larger than 2 combined standard errors"


def _console() -> Console:
    from rich.console import Console

    return Console(emoji=False)  # names like tiny:llama:64x2 are not emoji codes


def print_leaderboard(rows: list[ResultRow], title: str, console: Console | None = None) -> None:
    """Print ``rows`` as tables that fit the console's width (80 columns in pipes and logs)."""
    from rich.text import Text

    from ..leaderboard import blocks, compare

    console = console or _console()
    if not rows:
        console.print("no evaluation results yet", markup=False)
        return
    methods, comps = compare(rows)
    console.print(Text(title, style="bold"))
    for run, model, block in blocks(comps):
        console.print()
        console.print(Text.assemble("run ", (run, "bold"), " · model ", (model, "bold")))
        by_task: dict[tuple[str, str], list[Comparison]] = {}
        for c in block:
            by_task.setdefault((c.task, c.metric), []).append(c)
        for (task, metric), part in sorted(by_task.items()):
            console.print(Text.assemble("\n", (task, "bold cyan"), " · ", (metric, "cyan")))
            console.print(_fitting_table(methods, part, console))
    console.print(Text(CAPTION, style="dim"))


def _fitting_table(methods: list[str], comps: list[Comparison], console: Console) -> Table:
    """The wide table (a column per method) if it fits the console, else the long one."""
    from ..leaderboard import ambiguous, present

    methods, with_protocol = present(methods, comps), ambiguous(comps)
    if not with_protocol:  # a protocol column would be too wide for the wide layout anyway
        wide = _wide_table(methods, comps)
        # measured without the console's limit: rich clamps a measurement to the room it is given
        unlimited = console.options.update_width(1_000_000)
        if console.measure(wide, options=unlimited).maximum <= console.width:
            return wide
    return _long_table(methods, comps, with_protocol=with_protocol)


def _new_table() -> Table:
    from rich import box
    from rich.table import Table

    # no outer edges and one space of padding: the most room for the cells
    return Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1))


def _wide_table(methods: list[str], comps: list[Comparison]) -> Table:
    """A row per language: each method's value ± stderr, each aligned method's change vs SFT."""
    from rich.text import Text

    from ..leaderboard import aligned_methods, format_delta, format_value

    deltas = aligned_methods(methods) if "sft" in methods else []
    table = _new_table()
    table.add_column("lang", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    for m in methods:
        table.add_column(m, justify="right", no_wrap=True)
    for m in deltas:
        table.add_column(f"{m} - sft", justify="right", no_wrap=True)
    for c in comps:
        cells = [c.language, str(c.n),
                 *[format_value(c.values.get(m), c.stderrs.get(m)) for m in methods],
                 *[format_delta(c, m) for m in deltas]]
        table.add_row(*[Text(x) for x in cells])
    return table


def _long_table(methods: list[str], comps: list[Comparison], *, with_protocol: bool) -> Table:
    """A row per language and method; only the protocol column (when shown) may fold."""
    from rich.text import Text

    from ..leaderboard import format_delta

    table = _new_table()
    table.add_column("lang", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    table.add_column("method", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("±", justify="right", no_wrap=True)
    table.add_column("vs sft", justify="right", no_wrap=True)
    if with_protocol:
        table.add_column("protocol", overflow="fold", ratio=1)
    for c in comps:
        shown = [m for m in methods if m in c.values]
        for i, m in enumerate(shown):
            first = i == 0
            se = c.stderrs.get(m)
            cells = [c.language if first else "", str(c.n) if first else "", m,
                     f"{c.values[m]:.3f}", "" if se is None else f"{se:.3f}",
                     "" if m == "sft" else format_delta(c, m)]
            if with_protocol:
                cells.append(c.protocol if first else "")
            table.add_row(*[Text(x) for x in cells], end_section=i == len(shown) - 1)
    return table


@click.command("leaderboard")
@click.option("--db", type=click.Path(path_type=Path), default=Path("runs/leaderboard.sqlite"),
              show_default=True, help="Results database.")
@click.option("--run", "run_name", help="Only this run (the config's name).")
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

    store = ResultsStore(db, create=False)
    if run_name is not None:
        known = store.runs()
        if run_name not in known:
            raise OkapiError(f"no results of a run named {run_name!r} in {db}", where="--run",
                             hint=did_you_mean(run_name, known) if known
                             else "the database holds no results yet")
    rows = store.rows(run=run_name)
    if fmt == "table":
        print_leaderboard(rows, f"Leaderboard: {run_name}" if run_name else "Leaderboard")
    else:
        click.echo(render(*compare(rows), fmt), nl=False)
