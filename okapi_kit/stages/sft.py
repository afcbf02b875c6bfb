"""Supervised fine-tuning of the base model on the translated (and source) instructions."""

from __future__ import annotations

from typing import Any

from ..components import Trainer
from ..graph import Model, Plan, Records, Unit, UnitRun
from ..records import Instruction, read_jsonl
from .common import component_reads, prompt_formatter, train_model

NAME, VERSION = "sft", 2
WHERE = "sft.trainer"


def plan(p: Plan) -> None:
    c = p.cfg.sft
    scopes = [s for s in p.scopes() if not p.has(Model("sft", s))]
    if c is None or not scopes:
        return
    trainer = p.component("trainer", c.trainer, WHERE)
    if trainer is not None and (not isinstance(trainer, Trainer) or trainer.data != "sft"):
        p.problem(f"trainer {c.trainer.name!r} does not train on SFT data", where=WHERE,
                  hint="use a supervised trainer such as 'sft'")
        trainer = None
    if trainer is None:
        p.not_planned(*[Model("sft", s) for s in scopes])
        return
    reads, files = component_reads(p, WHERE)
    src = p.cfg.source_language
    on_source = bool(p.cfg.translation and p.cfg.translation.train_on_source and p.has(Records("instructions", src)))
    for scope in scopes:
        langs = p.langs_of(scope)
        consumes = [Model("base"), *[Records("translations", lang) for lang in langs]]
        if on_source:
            consumes.append(Records("instructions", src))
        p.add(Unit("sft" if scope is None else f"sft/{scope}", NAME, VERSION,
                   reads={"trainer": reads, "prompt_template": p.cfg.prompt_template, "seed": p.cfg.seed,
                          "train_on_source": on_source},
                   consumes=consumes, produces=[Model("sft", scope)], files=files,
                   run=lambda run, langs=langs: _run(run, langs)))


def _run(run: UnitRun, langs: list[str]) -> dict[str, Any]:
    plan = run.plan
    base = run.model(Model("base"))
    fmt = prompt_formatter(plan, base)
    rows: list[Instruction] = []
    for art in run.unit.consumes:
        if isinstance(art, Records):
            rows += read_jsonl(run.path(art), Instruction)
    records = [{"prompt": fmt(r.instruction, r.input), "completion": r.output} for r in rows if r.output.strip()]
    return train_model(run, plan.get_component(WHERE), model=base, records=records, languages=langs,
                       ui=plan.ui)
