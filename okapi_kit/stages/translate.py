"""Translation of the source instructions (and the held-out ones) into each target language.

Only fully translated records are stored as done; a miss is reported after every other
record is finished, and the next run asks again for the missing ones only.
"""

from __future__ import annotations

from typing import Any

from ..components import Failed
from ..errors import OkapiError
from ..graph import Plan, Records, Unit, UnitRun
from ..records import Instruction, read_jsonl, write_jsonl
from .common import chunk_size, chunked, component_reads, report_failures, usage_of

NAME, VERSION = "translate", 2
FIELDS = ("instruction", "input", "output")
WHERE = "translation.translator"


def plan(p: Plan) -> None:
    c = p.cfg.translation
    src = p.cfg.source_language
    todo = [lang for lang in p.cfg.languages if not p.has(Records("translations", lang))]
    if c is None or not todo:
        return
    translator = p.component("translator", c.translator, WHERE)
    if translator is None:
        p.not_planned(*[art for lang in todo for art in _outputs(p, lang)])
        return
    reads, files = component_reads(p, WHERE)
    for lang in todo:
        produces = _outputs(p, lang)
        try:
            translator.check(src, lang)
        except OkapiError as exc:
            p.problems.append(OkapiError(exc.message, where=exc.where or f"{p.source_name}: {WHERE}",
                                         hint=exc.hint))
            p.not_planned(*produces)
            continue
        p.add(Unit(f"translate/{lang}", NAME, VERSION,
                   reads={"translator": reads, "source_language": src, "target": lang},
                   consumes=[Records("instructions", src), Records("heldout", src)], produces=produces,
                   files=files, run=lambda run, lang=lang: _run(run, lang)))


def _outputs(p: Plan, lang: str) -> list[Records]:
    """The translations, and the held-out prompts unless the config supplies its own."""
    eval_prompts = Records("eval_prompts", lang)
    return [Records("translations", lang), *([] if p.has(eval_prompts) else [eval_prompts])]


def _run(run: UnitRun, lang: str) -> dict[str, Any]:
    plan = run.plan
    src = plan.cfg.source_language
    translator = plan.get_component(WHERE)
    train = read_jsonl(run.path(Records("instructions", src)), Instruction)
    held = read_jsonl(run.path(Records("heldout", src)), Instruction)
    failures: list[dict[str, Any]] = []

    def work(chunk: list[Instruction]) -> list[dict[str, Any]]:
        texts, slots = [], []
        for i, r in enumerate(chunk):
            for f in FIELDS:
                if getattr(r, f).strip():
                    texts.append(getattr(r, f))
                    slots.append((i, f))
        out = translator.translate(texts, src, lang) if texts else []
        if len(out) != len(texts):
            raise OkapiError(f"translator {translator.name!r} returned {len(out)} texts for {len(texts)}",
                             where=f"translate/{lang}")
        rows = [Instruction(id=r.id, instruction="", input="", output="", lang=lang, source_id=r.id)
                for r in chunk]
        failed: set[int] = set()
        for (i, f), text in zip(slots, out):
            if isinstance(text, str):
                setattr(rows[i], f, text)
            else:
                failed.add(i)
                reason = text.reason if isinstance(text, Failed) else "no translation"
                failures.append({"id": f"{chunk[i].id}.{f}", "reason": reason})
        return [{"id": r.id, "record": r.to_dict()} for i, r in enumerate(rows) if i not in failed]

    done = chunked(run, train + held, chunk_size(translator), lambda r: r.id, work, ui=getattr(plan, "ui", None))
    report_failures(run, failures, f"{lang} translation(s) by {translator.name!r}")
    write_jsonl(run.path(Records("translations", lang)),
                [Instruction.from_dict(done[r.id]["record"]) for r in train])
    if Records("eval_prompts", lang) in run.unit.produces:
        write_jsonl(run.path(Records("eval_prompts", lang)),
                    [Instruction.from_dict(done[r.id]["record"]) for r in held])
    return {"records": len(train), "heldout": len(held), **usage_of(translator)}
