"""The built-in subcommands: run, init, validate, plugins."""

from __future__ import annotations

import json
import shutil
import time
from importlib.resources import files
from pathlib import Path

import click

from ..errors import OkapiError

DEMO_CONFIG = "demo.yaml"


def demo_config_path() -> Path:
    return Path(str(files("okapi_kit").joinpath("demo", DEMO_CONFIG)))


def _console():
    from rich.console import Console

    return Console(emoji=False)  # names like tiny:llama:64x2 are not emoji codes


@click.command("run")
@click.argument("config", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where records, models and the manifest go (default: runs/<config name>).")
@click.option("--fresh", is_flag=True, help="Delete this run's previous results and start over.")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path),
              help="Results database (default: leaderboard.sqlite beside the run folder).")
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
              help="Override a config value, e.g. --set sft.trainer.options.num_epochs=1 (repeatable).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def run_cmd(config: Path | None, run_dir: Path | None, fresh: bool, db: Path | None,
            overrides: tuple[str, ...], quiet: bool) -> None:
    """Run a pipeline. With no CONFIG, run the bundled demo (tiny model, CPU, a few minutes).

    \b
    Examples:
      okapi-kit run
      okapi-kit run my.yaml --run-dir runs/bloom-vi --set languages=[vi]
      okapi-kit run my.yaml --fresh
    """
    from ..config import load_config
    from ..pipeline import MANIFEST, Pipeline
    from ..ui import UI, quiet_libraries

    quiet_libraries()

    cfg, base_dir = load_config(config or demo_config_path(), list(overrides))
    run_dir = (run_dir or Path("runs") / cfg.name).resolve()
    if fresh and run_dir.exists():
        if not (run_dir / MANIFEST).exists() and any(run_dir.iterdir()):
            raise OkapiError(f"--fresh would delete {run_dir}, which is not an okapi-kit run folder",
                             hint="choose another --run-dir")
        shutil.rmtree(run_dir)
    ui = UI(quiet=quiet)
    pipeline = Pipeline(cfg, base_dir=base_dir, run_dir=run_dir, db_path=db.resolve() if db else None, ui=ui)
    t0 = time.perf_counter()
    summary = pipeline.run()
    _print_summary(summary, time.perf_counter() - t0, run_dir)
    from ..leaderboard import ResultsStore
    from .leaderboard import print_leaderboard

    print_leaderboard(ResultsStore(pipeline.db_path).rows(run=run_dir.name), f"Leaderboard: {cfg.name}")


def _print_summary(summary: list[dict], seconds: float, run_dir: Path) -> None:
    from rich.table import Table

    table = Table(title=f"Stages ({seconds:.1f} s) in {run_dir}")
    for col in ("stage", "status", "seconds", "details"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for row in summary:
        details = ", ".join(f"{k}={v}" for k, v in list(row["info"].items())[:4])
        style = "dim" if row["status"] == "skipped" else ""
        table.add_row(row["stage"], row["status"], f"{row['seconds']:.1f}", details, style=style)
    _console().print(table)


@click.command("init")
@click.argument("path", required=False, default="okapi.yaml", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init_cmd(path: Path, force: bool) -> None:
    """Write a commented starter config.

    \b
    Example:
      okapi-kit init my.yaml && okapi-kit validate my.yaml
    """
    if path.exists() and not force:
        raise OkapiError(f"{path} exists", hint="use --force to overwrite it, or give another path")
    text = files("okapi_kit").joinpath("templates", "starter.yaml").read_text(encoding="utf-8")
    path.write_text(text, encoding="utf-8")
    click.echo(f"wrote {path}; edit it, then: okapi-kit validate {path} && okapi-kit run {path}")


@click.command("validate")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE", help="As for `run`.")
def validate_cmd(config: Path, overrides: tuple[str, ...]) -> None:
    """Check a config without running anything: names resolve, options fit, files exist, languages are known.

    \b
    Example:
      okapi-kit validate my.yaml
    """
    from ..config import load_config
    from ..pipeline import Pipeline

    cfg, base_dir = load_config(config, list(overrides))
    pipeline = Pipeline(cfg, base_dir=base_dir, run_dir=Path("runs") / cfg.name)
    units = pipeline.plan()
    click.echo(f"{config}: OK ({len(units)} stages, languages: {', '.join(cfg.languages)})")


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


