"""Sampling K responses per training prompt from the SFT model, for ranking."""

from __future__ import annotations

from typing import Any

from ..graph import Model, Plan, Records, Unit, UnitRun
from ..records import Instruction, SampleSet, read_jsonl, write_jsonl
from .common import chunked, component_reads, prompt_formatter

NAME, VERSION = "sample", 2
WHERE = "sampling.sampler"


def plan(p: Plan) -> None:
    if p.cfg.ranking is None:
        return  # samples are only made to be ranked
    todo = [lang for lang in p.cfg.languages
            if not p.has(Records("rankings", lang)) and not p.has(Records("samples", lang))]
    if not todo:
        return
    if p.component("sampler", p.cfg.sampling.sampler, WHERE) is None:
        p.not_planned(*[Records("samples", lang) for lang in todo])
        return
    reads, files = component_reads(p, WHERE)
    s = p.cfg.sampling
    for lang in todo:
        p.add(Unit(f"sample/{lang}", NAME, VERSION,
                   reads={"sampler": reads, "k": s.k, "chunk_size": s.chunk_size, "seed": p.cfg.seed,
                          "prompt_template": p.cfg.prompt_template},
                   consumes=[Model("sft", p.scope(lang)), Records("translations", lang)],
                   produces=[Records("samples", lang)], files=files,
                   run=lambda run, lang=lang: _run(run, lang)))


def _run(run: UnitRun, lang: str) -> dict[str, Any]:
    plan = run.plan
    cfg = plan.cfg
    sampler = plan.get_component(WHERE)
    model = run.model(Model("sft", plan.scope(lang)))
    fmt = prompt_formatter(plan, model)
    items = read_jsonl(run.path(Records("translations", lang)), Instruction)
    k, size = cfg.sampling.k, cfg.sampling.chunk_size
    chunk_no = {r.id: i // size for i, r in enumerate(items)}

    def work(chunk: list[Instruction]) -> list[dict[str, Any]]:
        prompts = [fmt(r.instruction, r.input) for r in chunk]
        # one seed per original chunk: a resumed run draws exactly what a clean run draws
        seed = cfg.seed * 100_003 + chunk_no[chunk[0].id]
        outs = sampler.sample(model, prompts, k, seed=seed)
        return [SampleSet(id=r.id, lang=lang, prompt=q, responses=o, reference=r.output or None,
                          model="sft").to_dict() for r, q, o in zip(chunk, prompts, outs)]

    done = chunked(run, items, size, lambda r: r.id, work, ui=plan.ui)
    write_jsonl(run.path(Records("samples", lang)), [done[r.id] for r in items])
    return {"prompts": len(items), "k": k}
