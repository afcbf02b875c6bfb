"""The ``leaderboard`` command (and ``leaderboard import``) and the rich leaderboard tables.

The terminal output answers first: for each compared method, the languages and tasks where it is
better than its reference, worse, or not distinguishable. Then, per (run, model) and (task,
metric), a table with a row per language (grouped by Okapi resource group) and the group
averages. The layout stays readable at 80 columns: task and metric names are printed whole on
a heading line; a table has a column per method when that fits the terminal, else a row per
language and method; values, "± stderr" and intervals never wrap.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import OkapiError, did_you_mean

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from ..leaderboard import ResultRow
    from ..report import Report
    from ..report.model import Line

DEFAULT_DB = Path("runs/leaderboard.sqlite")
FORMATS = ["table", "json", "csv", "markdown", "html"]


def _console() -> Console:
    from rich.console import Console

    return Console(emoji=False)  # names like tiny:llama:64x2 are not emoji codes


def print_leaderboard(rows: list[ResultRow], title: str, console: Console | None = None, *,
                      compare: list[tuple[str, str]] | None = None, report: Report | None = None) -> None:
    """Print ``rows`` (or a ``report`` built from them) as the answer and tables that fit the
    console's width (80 columns in pipes and logs)."""
    from rich.text import Text

    from ..report import build_report
    from ..report.text import CAPTION, independence_note

    console = console or _console()
    if not rows:
        console.print("no evaluation results yet", markup=False)
        return
    report = report or build_report(rows, compare=compare)
    console.print(Text(title, style="bold"))
    _print_answers(report, console)
    for run, model, lines in report.blocks():
        console.print()
        console.print(Text.assemble("run ", (run, "bold"), " · model ", (model, "bold")))
        from ..report.formats import by_task

        for (task, metric), part in by_task(lines).items():
            console.print(Text.assemble("\n", (task, "bold cyan"), " · ", (metric, "cyan")))
            console.print(_fitting_table(report, run, model, task, metric, part, console))
    console.print(Text(CAPTION, style="dim"))
    if note := independence_note(report):
        console.print(Text(note, style="dim"))


def _print_answers(report: Report, console: Console) -> None:
    from rich.table import Table
    from rich.text import Text

    from ..report.model import VERDICT_NAMES
    from ..report.text import answer_entries, answer_heading

    several = len(report.blocks()) > 1
    for a in report.answers:
        console.print()
        heading = answer_heading(a) + (f" (run {a.run}, model {a.model})" if several else "")
        console.print(Text(heading, style="bold"))
        grid = Table.grid(padding=(0, 1), pad_edge=False)
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True)
        grid.add_column(overflow="fold")
        styles = {"better": "green", "worse": "red", "unclear": "", "untested": "dim"}
        for verdict in ("better", "worse", "unclear", "untested"):
            for i, (lang, what) in enumerate(answer_entries(a.by_verdict[verdict],
                                                            with_change=verdict != "unclear")):
                label = VERDICT_NAMES[verdict] if i == 0 else ""
                grid.add_row(Text("  " + label, style=styles[verdict]), Text(lang), Text(what))
        console.print(grid)
    if not report.answers:
        console.print()
        console.print("nothing to compare: no sft results, or no other method beside them", markup=False)


def _fitting_table(report: Report, run: str, model: str, task: str, metric: str, lines: list[Line],
                   console: Console) -> Table:
    """The wide table (a column per method) if it fits the console, else the long one."""
    methods = [m for m in report.methods if any(m in x.results for x in lines)]
    pairs = [(a, m) for a, m, _ in report.pairs if a in methods and m in methods]
    langs = [x.language for x in lines]
    with_protocol = len(set(langs)) < len(langs)
    if not with_protocol:  # a protocol column would be too wide for the wide layout anyway
        # the base model's value is its reference column; its difference is in the long layout
        compared = [(a, m) for a, m, ref in report.pairs if not ref and (a, m) in pairs]
        wide = _wide_table(report, run, model, task, metric, lines, methods, compared)
        # measured without the console's limit: rich clamps a measurement to the room it is given
        unlimited = console.options.update_width(1_000_000)
        if console.measure(wide, options=unlimited).maximum <= console.width:
            return wide
    return _long_table(report, run, model, task, metric, lines, methods, pairs, with_protocol=with_protocol)


def _new_table() -> Table:
    from rich import box
    from rich.table import Table

    # no outer edges, one space of padding shared by neighbours: the most room for the cells
    return Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1), collapse_padding=True)


def _wide_table(report: Report, run: str, model: str, task: str, metric: str, lines: list[Line],
                methods: list[str], pairs: list[tuple[str, str]]) -> Table:
    """A row per language: each method's value ± stderr, each compared method's difference with
    its interval; then the resource group averages."""
    from rich.text import Text

    from ..report.text import format_change, format_mean, format_value

    table = _new_table()
    table.add_column("lang", no_wrap=True)
    table.add_column("grp", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    for m in methods:
        table.add_column(m, justify="right", no_wrap=True)
    for a, m in pairs:
        table.add_column(f"{m} - {a}", justify="right", no_wrap=True)
    for i, x in enumerate(lines):
        cells = [x.language, x.group, str(x.n), *[format_value(x.results.get(m)) for m in methods],
                 *[format_change(report.difference(x, a, m)) for a, m in pairs]]
        table.add_row(*[Text(c) for c in cells], end_section=i == len(lines) - 1)
    for g in report.group_rows(run, model, task, metric):
        cells = ["avg", g.group, str(len(g.languages)), *[format_mean(g.values.get(m)) for m in methods],
                 *[format_change(g.difference(a, m)) for a, m in pairs]]
        table.add_row(*[Text(c) for c in cells], style="bold")
    return table


def _long_table(report: Report, run: str, model: str, task: str, metric: str, lines: list[Line],
                methods: list[str], pairs: list[tuple[str, str]], *, with_protocol: bool) -> Table:
    """A row per language and method; only the protocol column (when shown) may fold."""
    from rich.text import Text

    from ..report.text import format_delta, format_interval, format_mean, format_value

    against = {a for a, _ in pairs}
    table = _new_table()
    table.add_column("lang", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    table.add_column("method", overflow="fold")  # the only column that may fold: numbers never do
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column(f"vs {next(iter(against))}" if len(against) == 1 else "change", justify="right",
                     no_wrap=True)
    table.add_column("95% CI", justify="right", no_wrap=True)
    if with_protocol:
        table.add_column("protocol", overflow="fold", ratio=1)
    first_against = {m: a for a, m in reversed(pairs)}  # a method's first reference
    for x in lines:
        shown = [m for m in methods if m in x.results]
        for i, m in enumerate(shown):
            d = report.difference(x, first_against[m], m) if m in first_against else None
            cells = [x.language if i == 0 else "", str(x.n) if i == 0 else "", m,
                     format_value(x.results[m]), format_delta(d), format_interval(d)]
            if with_protocol:
                cells.append(x.protocol if i == 0 else "")
            table.add_row(*[Text(c) for c in cells], end_section=i == len(shown) - 1)
    for g in report.group_rows(run, model, task, metric):
        shown = [m for m in methods if m in g.values]
        for i, m in enumerate(shown):
            d = g.difference(first_against[m], m) if m in first_against else None
            cells = [f"avg {g.group}" if i == 0 else "", str(len(g.languages)) if i == 0 else "", m,
                     format_mean(g.values[m]), format_delta(d), format_interval(d)]
            if with_protocol:
                cells.append("")
            table.add_row(*[Text(c) for c in cells], style="bold", end_section=i == len(shown) - 1)
    return table


# ---------------------------------------------------------------------- the commands


def _runs_checked(store, run_name: str | None, db: Path) -> None:
    if run_name is not None:
        known = store.runs()
        if run_name not in known:
            raise OkapiError(f"no results of a run named {run_name!r} in {db}", where="--run",
                             hint=did_you_mean(run_name, known) if known
                             else "the database holds no results yet")


def _write(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=False)
        return
    from ..records import atomic_write_text

    output = output.expanduser()
    if output.is_dir():
        raise OkapiError("a folder, not a file", where=str(output), hint="pass --output FILE")
    try:
        atomic_write_text(output, text)
    except OSError as exc:
        raise OkapiError(f"cannot write: {exc.strerror}", where=str(output)) from exc
    click.echo(f"wrote {output}", err=True)


@click.group("leaderboard", invoke_without_command=True)
@click.option("--db", type=click.Path(path_type=Path), default=DEFAULT_DB, show_default=True,
              help="Results database.")
@click.option("--run", "run_name", help="Only this run (the config's name).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--compare", nargs=2, multiple=True, metavar="REFERENCE METHOD",
              help="Compare METHOD with REFERENCE (repeatable; default: sft with every aligned method).")
@click.option("--output", type=click.Path(path_type=Path),
              help="Write to this file instead of the terminal (e.g. page.html with --format html).")
@click.option("--plot", type=click.Path(path_type=Path), metavar="FILE.png",
              help="Also draw the differences by language and resource group into this PNG.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the paired bootstrap.")
@click.option("--resamples", type=click.IntRange(min=100), default=2000, show_default=True,
              help="Resamples of the paired bootstrap.")
@click.pass_context
def leaderboard_cmd(ctx: click.Context, db: Path, run_name: str | None, fmt: str,
                    compare: tuple[tuple[str, str], ...], output: Path | None, plot: Path | None,
                    seed: int, resamples: int) -> None:
    """Did RLHF beat SFT, in which languages, and is the difference real?

    Compares SFT with every aligned model per language and task: the difference, its 95%
    interval (a paired bootstrap over items where per-item results exist, else from the
    standard errors) and averages per Okapi resource group; the base model as a reference.

    \b
    Examples:
      okapi-kit leaderboard
      okapi-kit leaderboard --run demo --compare sft dpo --plot dpo.png
      okapi-kit leaderboard --format html --output leaderboard.html
      okapi-kit leaderboard import results_2024-05-01T12-00-00.json --run mine --method ppo
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..leaderboard import ResultsStore
    from ..report import build_report, render, render_html, write_plot

    store = ResultsStore(db, create=False)
    _runs_checked(store, run_name, db)
    rows = store.rows(run=run_name)
    title = f"Leaderboard: {run_name}" if run_name else "Leaderboard"
    report = build_report(rows, compare=list(compare) or None, resamples=resamples, seed=seed)
    if plot is not None:
        write_plot(report, plot)
        click.echo(f"wrote {plot}", err=True)
    if fmt == "table":
        if output is not None:  # plain text at 100 columns, without colour codes
            import io

            from rich.console import Console

            buf = io.StringIO()
            print_leaderboard(rows, title, Console(file=buf, width=100, emoji=False, color_system=None),
                              report=report)
            _write(buf.getvalue(), output)
        else:
            print_leaderboard(rows, title, report=report)
    elif fmt == "html":
        _write(render_html(report, title=title), output)
    else:
        _write(render(report, fmt, title=title), output)


@leaderboard_cmd.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--run", "run_name", default="imported", show_default=True,
              help="The run name the results are stored under.")
@click.option("--method", help="The model's label: sft, dpo, base, ... (default: the label okapi-kit "
                                "wrote into the file).")
@click.option("--model", default="-", show_default=True,
              help="The base model the compared methods share (results of one model are compared).")
@click.option("--protocol", default="lm-eval", show_default=True,
              help="The settings the results were made with: lm-eval (stock) or okapi (Okapi's shots); "
                   "stored with the task, shots and lm-eval version, and only like is compared.")
@click.option("--language", help="The language of tasks whose names carry none (e.g. arc_challenge).")
@click.option("--subtasks", is_flag=True, help="Also import the subtasks of groups (e.g. each MMLU subject).")
@click.option("--db", type=click.Path(path_type=Path), help="Results database (default: the leaderboard's --db).")
@click.pass_context
def import_cmd(ctx: click.Context, files: tuple[Path, ...], run_name: str, method: str | None, model: str,
               protocol: str, language: str | None, subtasks: bool, db: Path | None) -> None:
    """Import lm-eval results JSON files, made anywhere, into the results database.

    Each task's language is read from its name (arc_vi, m_mmlu_vi, global_mmlu_full_vi,
    xcopa_vi, belebele_vie_Latn, ...). lm-eval's samples_<task>_<date>.jsonl files (from
    --log_samples), given here or lying beside results_<date>.json, add per-item results for
    paired comparisons. A result with the same run, method, language, task, metric and protocol
    is replaced.

    \b
    Examples:
      okapi-kit leaderboard import out/sft/results_2024-05-01T12-00-00.json --run mine --method sft
      okapi-kit leaderboard import out/ppo/*.json out/ppo/samples_*.jsonl --run mine --method ppo
    """
    import re

    from ..leaderboard import ResultsStore
    from ..report import import_lm_eval

    for option, value in (("--run", run_name), ("--method", method), ("--model", model), ("--protocol", protocol)):
        if value is not None and not value.strip():
            raise OkapiError(f"{option} is empty", where=option, hint=f"give {option} a name")
    if language is not None and not re.fullmatch(r"[a-z]{2,3}", language):
        raise OkapiError(f"{language!r} is not a language code", where="--language",
                         hint="an ISO 639 code such as vi, bn or sw")
    db = db or ctx.parent.params["db"]
    ResultsStore.check(db)  # a bad --db fails before any file is read
    rows = import_lm_eval(files, run=run_name, method=method, model=model, protocol=protocol,
                          language=language, subtasks=subtasks)
    ResultsStore(db).add(rows)
    with_items = sum(1 for r in rows if r.items)
    methods = ", ".join(sorted({r.method for r in rows}))
    languages = ", ".join(sorted({r.language for r in rows}))
    click.echo(f"imported {len(rows)} results ({with_items} with per-item values) of {methods} in "
               f"{languages} into run {run_name!r} of {db}", file=sys.stdout)
