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
    users, baselines = [], {}  # baselines: label -> the config key of the first evaluator naming it
    for i, e in enumerate(ev.evaluators):
        c = p.component("evaluator", e, f"evaluation.evaluators[{i}]")
        if c is None or not c.uses_generations:
            continue
        users.append(e)
        if (b := c.baseline_label()) is not None:
            baselines.setdefault(b, (f"evaluation.evaluators[{i}]", e.key))
    if not users or not ev.models:
        return
    labels = list(ev.models) + _baselines(p, baselines)
    where = sampler_where(p)
    if p.component("sampler", ev.sampler or p.cfg.sampling.sampler, where) is None:
        p.not_planned(*[Records("generations", lang, label) for lang in p.cfg.languages for label in labels])
        return
    reads, files = component_reads(p, where)
    holdout = p.cfg.instructions.holdout if p.cfg.instructions else 0
    for lang in p.cfg.languages:
        prompts = Records("eval_prompts", lang)
        if (p.produced_by(prompts) or "").startswith("translate/") and holdout == 0:
            p.problem(f"evaluator {users[0].key!r} needs held-out prompts in {lang!r}, but "
                      "instructions.holdout is 0", where="instructions.holdout",
                      hint=f"hold some instructions out, or supply data.eval_prompts.{lang}")
            p.not_planned(*[Records("generations", lang, label) for label in labels])
            continue
        for label in labels:
            p.add(Unit(f"generate/{label}/{lang}", NAME, VERSION,
                       reads={"sampler": reads, "samples_per_prompt": ev.samples_per_prompt, "seed": p.cfg.seed,
                              "prompt_template": p.cfg.prompt_template},
                       consumes=[model_of(p, label, lang), prompts],
                       produces=[Records("generations", lang, label)], files=files,
                       run=lambda run, label=label, lang=lang: _run(run, label, lang)))


def _baselines(p: Plan, baselines: dict[str, tuple[str, str]]) -> list[str]:
    """The baselines of comparing evaluators that ``evaluation.models`` does not list: their
    responses are made too (they are compared against, not scored). An unknown label is a problem."""
    extra = []
    for label, (where, key) in baselines.items():
        if label in p.cfg.evaluation.models:
            continue
        if all(p.has(model_of(p, label, lang)) for lang in p.cfg.languages):
            extra.append(label)
            continue
        candidates = ["base", "sft", *(a.method for a in p.cfg.alignment), *p.cfg.models]
        known = [c for c in dict.fromkeys(candidates) if p.has(model_of(p, c, p.cfg.languages[0]))]
        p.problem(f"evaluator {key!r} compares the models against {label!r} (its baseline), but no "
                  f"model has that label", where=where,
                  hint=f"name one of the run's models ({', '.join(known) or 'none'}), or give it "
                       f"under models.{label}")
        p.not_planned(*[Records("generations", lang, label) for lang in p.cfg.languages])
    return extra


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
