"""The pipeline subcommands: run, validate, init, plugins."""

from __future__ import annotations

import json
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

import click

from ..errors import OkapiError

DEMO_CONFIG = "demo.yaml"


def demo_config_path() -> Path:
    return Path(str(files("okapi_kit").joinpath("demo", DEMO_CONFIG)))


def _console():
    from rich.console import Console

    return Console(emoji=False)  # names like tiny:llama:64x2 are not emoji codes


def execute(data: dict[str, Any], *, source: str, base_dir: Path, run_dir: Path | None, db: Path | None,
            fresh: bool, quiet: bool, leaderboard: bool = True):
    """Validate config data, plan it, run it in its folder and print what happened.

    Shared by ``run`` and the single-stage commands (``train``, ``translate``, ``rank``,
    ``evaluate``), which build their config data from their options.

    Under ``accelerate launch`` every process calls this; only the main one prints (the
    others are quiet) and keeps the run folder's books (see ``graph/processes.py``).
    """
    from ..config import validate_config
    from ..graph.processes import is_main_process
    from ..pipeline import Pipeline
    from ..ui import UI, quiet_libraries

    quiet_libraries()
    quiet = quiet or not is_main_process()
    cfg = validate_config(data, source)
    run_dir = (run_dir.expanduser() if run_dir else Path("runs") / cfg.name).resolve()
    check_run_dir(run_dir)
    if db is not None:  # checked even when this run stores no results: the user named it
        from ..leaderboard import ResultsStore

        ResultsStore.check(db.expanduser())
    ui = UI(quiet=quiet)
    pipeline = Pipeline(cfg, base_dir=base_dir, run_dir=run_dir, ui=ui, source=source,
                        db_path=db.expanduser().resolve() if db else None)
    t0 = time.perf_counter()
    summary = pipeline.run(fresh=fresh)
    if not quiet:
        _print_summary(summary, time.perf_counter() - t0, run_dir)
    if leaderboard and not quiet and cfg.evaluation.evaluators:
        from ..leaderboard import ResultsStore
        from .leaderboard import print_leaderboard

        print_leaderboard(ResultsStore(pipeline.db_path).rows(run=cfg.name), f"Leaderboard: {cfg.name}")
    return pipeline


def check_run_dir(run_dir: Path) -> None:
    """A run folder must be a folder, or a path where one can be made."""
    existing = next(p for p in (run_dir, *run_dir.parents) if p.exists())
    if not existing.is_dir():
        what = "is a file" if existing == run_dir else f"is inside {existing}, which is a file"
        raise OkapiError(f"the run folder {what}", where=str(run_dir),
                         hint="give the path of a folder (it is made if missing)")


# Paths are checked by okapi-kit, not by click: its messages are not one "error:" line.
run_dir_option = click.option("--run-dir", type=click.Path(path_type=Path),
                              help="Where records, models and the manifest go (default: runs/<name>).")
fresh_option = click.option("--fresh", is_flag=True,
                            help="Delete this run folder's previous results and start over "
                                 "(only after the config is checked).")
db_option = click.option("--db", type=click.Path(path_type=Path),
                         help="Results database (default: leaderboard.sqlite beside the run folder).")
set_option = click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
                          help="Override a config value, e.g. --set sft.trainer.options.num_epochs=1 "
                               "(repeatable).")
quiet_option = click.option("--quiet", is_flag=True, help="Print only errors.")


@click.command("run")
@click.argument("config", required=False, type=click.Path(path_type=Path))
@run_dir_option
@fresh_option
@db_option
@set_option
@quiet_option
def run_cmd(config: Path | None, run_dir: Path | None, fresh: bool, db: Path | None,
            overrides: tuple[str, ...], quiet: bool) -> None:
    """Run a pipeline. With no CONFIG, run the bundled demo (tiny model, CPU, a few minutes).

    Relative paths inside CONFIG are taken from CONFIG's folder.

    \b
    Examples:
      okapi-kit run
      okapi-kit run my.yaml --run-dir runs/bloom-vi --set languages=[vi]
      okapi-kit run my.yaml --fresh
    """
    from ..config import load_config_data

    path = (config or demo_config_path()).expanduser()
    data = load_config_data(path, list(overrides))
    execute(data, source=str(path), base_dir=path.parent.resolve(), run_dir=run_dir, db=db, fresh=fresh,
            quiet=quiet)


def _print_summary(summary: list[dict], seconds: float, run_dir: Path) -> None:
    from rich.table import Table

    table = Table(title=f"Stages ({seconds:.1f} s)", caption=str(run_dir))
    for col in ("stage", "status", "seconds", "details"):
        table.add_column(col, justify="right" if col == "seconds" else "left",
                         overflow="fold", no_wrap=col != "details")
    for row in summary:
        details = ", ".join(f"{k}={v}" for k, v in list(row["info"].items())[:3])
        style = "dim" if row["status"] == "skipped" else ""
        table.add_row(row["stage"], row["status"], f"{row['seconds']:.1f}", details, style=style)
    _console().print(table)


@click.command("validate")
@click.argument("config", type=click.Path(path_type=Path))
@set_option
def validate_cmd(config: Path, overrides: tuple[str, ...]) -> None:
    """Check a config without running anything; every problem is reported at once.

    Names resolve, options fit their components, files exist and hold the right kind of
    data, languages are known, and every stage's input is produced or supplied.

    \b
    Example:
      okapi-kit validate my.yaml
    """
    from ..config import load_config
    from ..pipeline import Pipeline

    cfg, base_dir = load_config(config, list(overrides))
    pipeline = Pipeline(cfg, base_dir=base_dir, run_dir=Path("runs") / cfg.name, source=str(config))
    stages = sorted({u.stage for u in pipeline.units})
    click.echo(f"{config}: OK ({len(pipeline.units)} units in {len(stages)} stages: {', '.join(stages)}; "
               f"languages: {', '.join(cfg.languages)})")


@click.command("init")
@click.argument("path", required=False, default="okapi-project", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite existing files.")
def init_cmd(path: Path, force: bool) -> None:
    """Write a starter project: a config and small data of its own, ready to validate and run.

    PATH is a folder (okapi.yaml and data/ go inside it) or a .yaml file (data/ goes beside it).

    \b
    Example:
      okapi-kit init my-project && okapi-kit run my-project/okapi.yaml
    """
    import shutil

    path = path.expanduser()
    config = path if path.suffix in (".yaml", ".yml") else path / "okapi.yaml"
    data_dir = config.parent / "data"
    if config.exists() and not force:
        raise OkapiError(f"{config} exists", hint="use --force to overwrite it, or give another path")
    if data_dir.exists() and not force and any(data_dir.iterdir()):
        raise OkapiError(f"{data_dir} exists and is not empty", hint="use --force, or give another path")
    existing = next(p for p in (config.parent, *config.parent.parents) if p.exists())
    if not existing.is_dir():
        raise OkapiError(f"cannot write {config}: {existing} is a file", hint="give a folder or a .yaml path")
    demo_data = Path(str(files("okapi_kit").joinpath("demo", "data")))
    text = files("okapi_kit").joinpath("templates", "starter.yaml").read_text(encoding="utf-8")
    try:
        config.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(demo_data, data_dir, dirs_exist_ok=True)
        config.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OkapiError(f"cannot write the starter project: {exc.strerror}", where=str(exc.filename or config),
                         hint="give a path in a folder you can write to") from None
    click.echo(f"wrote {config} and sample data in {data_dir}\n"
               f"next: okapi-kit validate {config} && okapi-kit run {config}\n"
               "for real data, change base_model, languages and the paths under instructions, "
               "translation and evaluation (docs/user-guide.md); to use files you already have, "
               "see docs/recipes/okapi-released-data.md")


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins_cmd(as_json: bool) -> None:
    """List every component by kind and name, with the plugin that provides it.

    \b
    Example:
      okapi-kit plugins --json
    """
    from ..plugins import plugin_manager, registry

    pm, reg = plugin_manager(), registry()
    components = [{"kind": e.kind, "name": e.name, "plugin": e.plugin,
                   "class": f"{e.cls.__module__}.{e.cls.__name__}", "summary": e.cls.summary()}
                  for e in reg.entries()]
    plugins = [vars(i) for i in pm.infos.values()]
    failures = [vars(f) for f in pm.failures]
    if as_json:
        click.echo(json.dumps({"components": components, "plugins": plugins, "failures": failures}, indent=2))
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="okapi-kit components")
    for col in ("kind", "name", "plugin", "summary"):
        table.add_column(col)
    for c in components:
        table.add_row(c["kind"], c["name"], c["plugin"], c["summary"])
    console = _console()
    console.print(table)
    for f in failures:
        console.print(f"[red]plugin {escape(repr(f['name']))} ({escape(f['dist'])} {escape(f['version'])}) "
                      f"failed to load:[/] {escape(f['error'])}",
                      markup=True, highlight=False)
