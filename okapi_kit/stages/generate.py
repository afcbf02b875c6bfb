"""Responses of each evaluated model to the held-out prompts, made once per (model, language,
sampling settings) and shared by every generation-based evaluator."""

from __future__ import annotations

from typing import Any

from ..graph import Model, Plan, Records, Unit, UnitRun
from ..records import Instruction, SampleSet, read_jsonl, write_jsonl
from .common import component_reads, prompt_formatter

NAME, VERSION = "generate", 1


def sampler_where(p: Plan) -> str:
    return "evaluation.sampler" if p.cfg.evaluation.sampler is not None else "sampling.sampler"


def model_of(p: Plan, label: str, lang: str) -> Model:
    return Model("base") if label == "base" else Model(label, p.scope(lang))


def plan(p: Plan) -> None:
    ev = p.cfg.evaluation
    users = [e for i, e in enumerate(ev.evaluators)
             if (c := p.component("evaluator", e, f"evaluation.evaluators[{i}]")) is not None and c.uses_generations]
    if not users or not ev.models:
        return
    where = sampler_where(p)
    if p.component("sampler", ev.sampler or p.cfg.sampling.sampler, where) is None:
        p.not_planned(*[Records("generations", lang, label) for lang in p.cfg.languages for label in ev.models])
        return
    reads, files = component_reads(p, where)
    holdout = p.cfg.instructions.holdout if p.cfg.instructions else 0
    for lang in p.cfg.languages:
        prompts = Records("eval_prompts", lang)
        if (p.produced_by(prompts) or "").startswith("translate/") and holdout == 0:
            p.problem(f"evaluator {users[0].key!r} needs held-out prompts in {lang!r}, but "
                      "instructions.holdout is 0", where="instructions.holdout",
                      hint=f"hold some instructions out, or supply data.eval_prompts.{lang}")
            p.not_planned(*[Records("generations", lang, label) for label in ev.models])
            continue
        for label in ev.models:
            p.add(Unit(f"generate/{label}/{lang}", NAME, VERSION,
                       reads={"sampler": reads, "samples_per_prompt": ev.samples_per_prompt, "seed": p.cfg.seed,
                              "prompt_template": p.cfg.prompt_template},
                       consumes=[model_of(p, label, lang), prompts],
                       produces=[Records("generations", lang, label)], files=files,
                       run=lambda run, label=label, lang=lang: _run(run, label, lang)))


def _run(run: UnitRun, label: str, lang: str) -> dict[str, Any]:
    plan = run.plan
    cfg = plan.cfg
    model = run.model(model_of(plan, label, lang))
    sampler = plan.get_component(sampler_where(plan))
    fmt = prompt_formatter(plan, model)
    items = read_jsonl(run.path(Records("eval_prompts", lang)), Instruction)
    prompts = [fmt(r.instruction, r.input) for r in items]
    k = cfg.evaluation.samples_per_prompt
    outs = sampler.sample(model, prompts, k, seed=cfg.seed) if prompts else []
    write_jsonl(run.path(Records("generations", lang, label)),
                [SampleSet(id=r.id, lang=lang, prompt=q, responses=o, model=label)
                 for r, q, o in zip(items, prompts, outs)])
    return {"prompts": len(prompts), "k": k}
