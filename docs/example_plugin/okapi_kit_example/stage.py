"""A plugin stage: drops rankings whose best response is empty, between rank and reward_model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from okapi_kit import ComponentConfig, Ranking, Stage
from okapi_kit.graph import Plan, Records, Unit, UnitRun
from okapi_kit.records import read_jsonl, write_jsonl


class DropEmptyBestConfig(ComponentConfig):
    min_chars: int = Field(1, ge=1, description="a best response with fewer characters "
                           "(surrounding spaces left out) counts as empty")


class DropEmptyBest(Stage):
    """Drops rankings whose best response is empty, so no pair prefers an empty answer."""

    name = "drop_empty_best"
    Config = DropEmptyBestConfig
    after = "rank"  # planned right after the core rank stage
    version = 1  # raise it when the same input gives another output

    def plan(self, ctx: Plan) -> list[Unit]:
        units = []
        for lang in ctx.cfg.languages:
            rankings = Records("rankings", lang)
            if not ctx.has(rankings):
                continue  # nothing ranks or supplies rankings in this language
            # Where the rankings are now; once this unit is added, later stages read its output.
            source = ctx.path(rankings)
            units.append(Unit(
                key=f"{self.name}/{lang}", stage=self.name, version=self.version,
                reads={"min_chars": self.config.min_chars},
                consumes=[rankings], produces=[rankings],
                run=lambda run, source=source, lang=lang: self.run(run, source, lang)))
        return units

    def keep(self, ranking: Ranking) -> bool:
        return len(ranking.ranked()[0].strip()) >= self.config.min_chars

    def run(self, run: UnitRun, source: Path, lang: str) -> dict[str, Any]:
        rows = read_jsonl(source, Ranking)
        kept = [r for r in rows if self.keep(r)]
        write_jsonl(run.path(Records("rankings", lang)), kept)
        return {"kept": len(kept), "dropped": len(rows) - len(kept)}
