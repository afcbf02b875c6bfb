"""``okapi-kit rm-transfer CONFIG``: which reward model should score language X?"""

from __future__ import annotations

import time
from pathlib import Path

import click

from okapi_kit.cli.commands import (
    check_run_dir,
    db_option,
    fresh_option,
    quiet_option,
    run_dir_option,
    set_option,
)


@click.command("rm-transfer")
@click.argument("config", type=click.Path(path_type=Path))
@run_dir_option
@fresh_option
@db_option
@set_option
@click.option("--check", is_flag=True, help="Check the config and plan the work; run nothing.")
@quiet_option
def rm_transfer_cmd(config: Path, run_dir: Path | None, fresh: bool, db: Path | None,
                    overrides: tuple[str, ...], check: bool, quiet: bool) -> None:
    """Train one reward model per source language (or take given ones), score every RM on every
    target language's preference test set, and compare their hidden states across languages.

    Writes, under RUN_DIR/rm-transfer/: matrix.json, matrix.md and matrix.png (accuracy per
    RM and target with Wilson intervals, and the difference from the target-native RM with a
    paired interval, per category and averaged), and representation.json, .md and .png (the
    per-layer similarity of pooled hidden states across languages and against the base model);
    and the accuracies to the leaderboard (task rm_accuracy, method rm-<source>). A rerun skips
    the RMs and scores whose inputs are unchanged.

    \b
    Example:
      python -m okapi_kit.demo.transfer runs/toy     # a toy project: data, base model, configs
      okapi-kit rm-transfer runs/toy/transfer.yaml --check
      okapi-kit rm-transfer runs/toy/transfer.yaml
    """
    from okapi_kit.cli.commands import _print_summary
    from okapi_kit.config import load_config_data
    from okapi_kit.leaderboard import ResultsStore
    from okapi_kit.plugins import plugin_manager, registry
    from okapi_kit.ui import UI, quiet_libraries

    from .config import load_transfer_config
    from .report import collect_matrix, report_files, result_rows, score_files
    from .run import build_transfer_plan

    quiet_libraries()
    path = config.expanduser()
    cfg = load_transfer_config(load_config_data(path, list(overrides)), str(path))
    run_dir = (run_dir.expanduser() if run_dir else Path("runs") / cfg.name).resolve()
    check_run_dir(run_dir)
    db_path = db.expanduser().resolve() if db else run_dir.parent / "leaderboard.sqlite"
    ResultsStore.check(db_path)  # a bad --db fails before any work
    ui = UI(quiet=quiet)
    tp = build_transfer_plan(cfg, base_dir=path.parent.resolve(), run_dir=run_dir, registry=registry(), ui=ui,
                             source=str(path))
    if check:
        click.echo(f"{path}: OK ({len(tp.units)} units: {len(cfg.sources)} reward models x "
                   f"{len(cfg.targets.languages)} targets x {len(cfg.transfer)} transfer methods)")
        return
    from okapi_kit.graph import Runner

    t0 = time.perf_counter()
    summary = Runner(tp.plan, ui=ui, pm=plugin_manager(), config_dump=cfg.model_dump(mode="json")).run(fresh=fresh)
    rows = result_rows(tp.study_plan, tp.plan)
    for row in rows:
        row.run_dir = str(run_dir)
    ResultsStore(db_path).replace_run(cfg.name, rows)
    if quiet:
        return
    _print_summary(summary, time.perf_counter() - t0, run_dir)
    from .matrix import ALL, table

    matrix = collect_matrix(tp.study_plan.study, score_files(tp.study_plan, tp.plan))
    click.echo(f"\nAccuracy (%), 95% Wilson intervals:\n{table(matrix, ALL, accuracy=True)}\n\n"
               f"Difference from the target-native RM (points), 95% paired intervals:\n"
               f"{table(matrix, ALL, accuracy=False)}")
    click.echo("\nwrote:\n" + "\n".join(f"  {p}" for p in report_files(tp.study_plan)) + f"\n  {db_path} (run {cfg.name!r})")
