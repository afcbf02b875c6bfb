"""A pipeline run: plan the stage graph from a config, run it in its folder, store the results.

The stages live in :mod:`okapi_kit.stages` (one module each), the planner, runner and
artifacts in :mod:`okapi_kit.graph`. This module only ties them to a run folder and the
results store.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .config import PipelineConfig
from .graph import Plan, Runner
from .graph.artifacts import MANIFEST
from .graph.processes import is_main_process
from .leaderboard import ResultsStore
from .plugins import plugin_manager, registry
from .ui import UI

__all__ = ["MANIFEST", "Pipeline"]


class Pipeline:
    """Plans on construction (so every config problem is raised before anything is written)."""

    def __init__(self, cfg: PipelineConfig, *, base_dir: Path, run_dir: Path, db_path: Path | None = None,
                 ui: UI | None = None, source: str = "config"):
        from .stages import build_plan

        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.ui = ui or UI()
        self.pm = plugin_manager()
        self.plan: Plan = build_plan(cfg, base_dir=base_dir, run_dir=self.run_dir, registry=registry(),
                                     ui=self.ui, source=source)
        self.db_path = Path(db_path) if db_path else self.run_dir.parent / "leaderboard.sqlite"
        self.summary: list[dict[str, Any]] = []

    @property
    def units(self):
        return self.plan.units

    def run(self, *, fresh: bool = False) -> list[dict[str, Any]]:
        from .stages import plugin_stages

        evaluates = any(u.stage == "evaluate" for u in self.plan.units)
        stages = plugin_stages(self.plan)  # they may have results too (Stage.results)
        if evaluates or stages:
            ResultsStore.check(self.db_path)  # a bad --db fails before any work, and creates nothing
        runner = Runner(self.plan, ui=self.ui, pm=self.pm, config_dump=redacted_config(self.plan))
        self.summary = runner.run(fresh=fresh)
        if not is_main_process():  # the results are the main process's to store (graph/processes.py)
            return self.summary
        ran = any(s["status"] != "skipped" for s in self.summary)
        if (evaluates or stages) and (ran or not self._results_in_place()):
            rows = self.result_rows()
            if evaluates or rows:
                self.store_results(rows=rows)
                self.write_page()
        return self.summary

    def result_rows(self) -> list[Any]:
        """The leaderboard rows of this run: its evaluation units' and its plugin stages'."""
        from .stages import plugin_stages
        from .stages.evaluate import result_rows

        return result_rows(self.plan) + [r for stage in plugin_stages(self.plan) for r in stage.results(self.plan)]

    def _results_in_place(self) -> bool:
        """Nothing ran: the store and the page are only rewritten if they lack this run's scores."""
        if not (self.run_dir / "leaderboard.html").exists() or not self.db_path.exists():
            return False
        key = lambda r: (r.method, r.language, r.task, r.metric, r.value, r.n, r.protocol)  # noqa: E731
        stored = ResultsStore(self.db_path, create=False).rows(run=self.cfg.name, items=False)
        return sorted(map(key, stored)) == sorted(map(key, self.result_rows()))

    def write_page(self) -> None:
        """The run's leaderboard as one HTML page in the run folder (``leaderboard.html``)."""
        from .errors import OkapiError
        from .report import write_run_page

        try:
            write_run_page(self.db_path, self.cfg.name, self.run_dir / "leaderboard.html")
        except OkapiError as exc:  # the results are stored; a page that cannot be drawn is not fatal
            self.ui.console.print(f"[yellow]warning:[/] no leaderboard page: {exc.message}", highlight=False)

    def store_results(self, store: ResultsStore | None = None, rows: list[Any] | None = None) -> None:
        """Replace this run's rows in the results store with its current scores (one transaction)."""
        store = store or ResultsStore(self.db_path)
        rows = self.result_rows() if rows is None else rows
        for row in rows:
            row.run_dir = str(self.run_dir)
        others = store.replace_run(self.cfg.name, rows)
        if others:  # two run folders share one name: the leaderboard keeps only the latest
            self.ui.console.print(f"[yellow]warning:[/] the results of run {self.cfg.name!r} from "
                                  f"{', '.join(others)} were replaced by those of {self.run_dir}; give "
                                  "configs that should be compared different names", highlight=False)


def redacted_config(plan: Plan) -> dict[str, Any]:
    """The config as the manifest keeps it: component options as validated, secrets masked."""
    from .stages.common import component_reads

    data = plan.cfg.model_dump(mode="json")
    for where in list(plan._components):
        node: Any = data
        parts = [int(x) if x.isdigit() else x for x in re.findall(r"[^.\[\]]+", where)]
        for part in parts:
            node = node[part]
        if isinstance(node, dict):
            node["options"] = component_reads(plan, where)[0]["options"]
    return data
