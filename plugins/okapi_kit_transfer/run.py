"""``okapi-kit rm-transfer`` as units of the pipeline's graph: the same planner (every problem
before any work), runner (manifest, lock, skipping what is unchanged) and run-folder layout.

This module plans what is the command's own: ``base_model`` (when RMs are trained) and
``rm_transfer/train/<source>`` (one RM per source with preference data). The scoring, the
representation analysis and the reports are the study's units (:mod:`.study`), planned by the
same function as in the ``rm_transfer`` pipeline stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from okapi_kit.config import PipelineConfig
from okapi_kit.errors import OkapiError
from okapi_kit.graph import Model, Plan, Unit, UnitRun, check_name

from .config import TransferConfig
from .study import RM, Study, StudyPlan, plan_study
from .testsets import formatter

VERSION = 1
TRAIN = "rm_transfer_train"


@dataclass
class TransferPlan:
    """The planned units of an ``rm-transfer`` config."""

    cfg: TransferConfig
    plan: Plan
    study_plan: StudyPlan

    @property
    def units(self) -> list[Unit]:
        return self.plan.units


def study_of(cfg: TransferConfig) -> Study:
    """The command's sources as the study's reward models."""
    rms = []
    for key, src in cfg.sources.items():
        base = Model("base") if src.data is not None else Model("base", key) if src.base is not None else None
        rms.append(RM(key, cfg.language_of(key), Model("rm", key), base,
                      name=src.model if src.model is not None else (cfg.base_model or "-")))
    return Study(name=cfg.name, rms=rms, targets=cfg.targets, transfer=cfg.transfer, scoring=cfg.scoring,
                 representation=cfg.representation, prompt_template=cfg.prompt_template,
                 trust_remote_code=cfg.trust_remote_code)


def build_transfer_plan(cfg: TransferConfig, *, base_dir: Path, run_dir: Path, registry: Any, ui: Any = None,
                        source: str = "config") -> TransferPlan:
    """Plan every unit; raise every problem found at once (nothing is run or written)."""
    from okapi_kit.stages import base_model

    pcfg = PipelineConfig(name=cfg.name, seed=cfg.seed, base_model=cfg.base_model, languages=cfg.languages(),
                          trust_remote_code=cfg.trust_remote_code,
                          prompt_template="alpaca" if cfg.prompt_template == "raw" else cfg.prompt_template)
    p = Plan(pcfg, base_dir=base_dir, run_dir=run_dir, registry=registry, source=source)
    p.ui = ui
    try:
        check_name(cfg.name, where=f"{source}: name", reserved=frozenset())
    except OkapiError as exc:
        p.problems.append(exc)
    base_model.plan(p)
    _plan_sources(p, cfg)
    sp = plan_study(p, study_of(cfg))
    for unit in sp.units:
        p.add(unit)
    p.check()
    return TransferPlan(cfg, p, sp)


def _plan_sources(p: Plan, cfg: TransferConfig) -> None:
    from okapi_kit.stages.common import component_reads

    trained = [k for k, s in cfg.sources.items() if s.data is not None]
    trainer = p.component("trainer", cfg.trainer, "trainer") if trained else None
    if trainer is not None and getattr(trainer, "produces", "") != "reward_model":
        p.problem(f"trainer {cfg.trainer.name!r} does not train a reward model", where="trainer",
                  hint="use a reward-model trainer such as 'reward'")
        trainer = None
    reads, trainer_files = component_reads(p, "trainer") if trainer is not None else ({}, [])
    for key, src in cfg.sources.items():
        where = f"sources.{key}"
        try:
            check_name(key, where=f"{p.source_name}: {where}")
        except OkapiError as exc:
            p.problems.append(exc)
            p.not_planned(Model("rm", key))
            continue
        if src.model is not None:
            p.supply_model(Model("rm", key), src.model, f"{where}.model")
            if src.base is not None:
                p.supply_model(Model("base", key), src.base, f"{where}.base")
            continue
        files = _data_files(p, src.data, f"{where}.data", cfg.language_of(key))
        if trainer is None or files is None:
            p.not_planned(Model("rm", key))
            continue
        p.add(Unit(f"rm_transfer/train/{key}", TRAIN, VERSION,
                   reads={"trainer": reads, "pairs": cfg.pairs, "seed": cfg.seed,
                          "prompt_template": cfg.prompt_template, "language": cfg.language_of(key)},
                   consumes=[Model("base")], produces=[Model("rm", key)], files=[*files, *trainer_files],
                   distributed=True,  # it trains: every process of a launch runs it
                   run=lambda run, key=key, files=files: _train(run, cfg, key, files)))


def _data_files(p: Plan, given: str | list[str], where: str, lang: str) -> list[Path] | None:
    """The preference files of a source, read once now so that a bad file fails before any work."""
    from okapi_kit.readers import read_rankings

    paths = [p.resolve_path(x) for x in ([given] if isinstance(given, str) else given)]
    for path in paths:
        if not path.exists():
            p.problem(f"data file not found: {path}", where=where,
                      hint=f"relative paths are taken from the config's folder ({p.base_dir})")
            return None
    try:
        if not read_rankings([str(x) for x in paths], lang=lang):
            raise OkapiError("no preference pairs", where=str(paths[0]))
    except OkapiError as exc:
        p.problems.append(OkapiError(exc.message, where=f"{p.source_name}: {where} ({exc.where})", hint=exc.hint))
        return None
    return paths


def _train(run: UnitRun, cfg: TransferConfig, key: str, files: list[Path]) -> dict[str, Any]:
    from okapi_kit.readers import read_rankings
    from okapi_kit.stages.common import train_model
    from okapi_kit.stages.reward_model import kwise_rankings, preference_pairs

    plan = run.plan
    base = run.model(Model("base"))
    fmt = formatter(cfg.prompt_template, base, cfg.trust_remote_code)
    trainer = plan.get_component("trainer")
    rankings = read_rankings([str(f) for f in files], lang=cfg.language_of(key))

    def prompt(r: Any) -> str:
        return fmt(r.instruction, r.input or "") if r.instruction is not None else fmt(r.prompt)

    pick = kwise_rankings if getattr(trainer, "data", "") == "ranking" else preference_pairs
    records = pick(rankings, cfg.pairs, prompt)
    return train_model(run, trainer, model=base, records=records, languages=[cfg.language_of(key)], ui=plan.ui)
