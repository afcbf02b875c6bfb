"""The pipeline's stages, one module each, in the order they are planned.

Each module has ``NAME``, ``VERSION`` (raise it when the stage's output for the same
inputs changes) and ``plan(p)``, which adds the stage's units to the plan ``p``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import PipelineConfig
from ..errors import OkapiError
from ..graph import Plan
from ..registry import Registry
from . import (
    align,
    base_model,
    evaluate,
    generate,
    instructions,
    rank,
    reward_model,
    sample,
    sft,
    supplied,
    translate,
)

ORDER = [base_model, supplied, instructions, translate, sft, sample, rank, reward_model, align, generate, evaluate]
CORE_STAGES = {m.NAME for m in ORDER}


def build_plan(cfg: PipelineConfig, *, base_dir: Path, run_dir: Path, registry: Registry, ui: Any = None,
               source: str = "config") -> Plan:
    """Plan every stage; raise every problem found at once (nothing is run or written)."""
    from ..graph import check_name

    p = Plan(cfg, base_dir=base_dir, run_dir=run_dir, registry=registry, source=source)
    p.ui = ui
    try:
        check_name(cfg.name, where=f"{source}: name", reserved=frozenset())
    except OkapiError as exc:
        p.problems.append(exc)
    extra: dict[str, list[Any]] = {}
    for i, choice in enumerate(cfg.stages):
        stage = p.component("stage", choice, f"stages[{i}]")
        if stage is None:
            continue
        if stage.after not in CORE_STAGES:
            p.problem(f"stage {choice.name!r} wants to follow {stage.after!r}, which is not a stage",
                      where=f"stages[{i}]", hint=f"stages: {', '.join(m.NAME for m in ORDER)}")
            continue
        extra.setdefault(stage.after, []).append(stage)
    for module in ORDER:
        module.plan(p)
        for stage in extra.get(module.NAME, []):
            for unit in stage.plan(p):
                p.add(unit)
    if cfg.evaluation.evaluators and not cfg.evaluation.models:
        p.problem("evaluation lists evaluators but no models", where="evaluation.models")
    return p.check()


def plugin_stages(p: Plan) -> list[Any]:
    """The plugin stages of a checked plan, in the order of ``stages:``."""
    return [p.get_component(f"stages[{i}]") for i in range(len(p.cfg.stages))]
