"""English (source-language) instructions: loaded from a file, or generated, with a held-out tail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import OkapiError
from ..graph import Plan, Records, Unit, UnitRun
from ..graph.planner import looks_like_path
from ..readers import read_instructions
from ..records import Instruction, write_jsonl
from .common import component_reads

NAME, VERSION = "instructions", 1


def plan(p: Plan) -> None:
    c = p.cfg.instructions
    if c is None:
        return
    files: list[Path] = []
    reads: dict[str, Any] = {"instructions": c.model_dump(mode="json", exclude={"generator"}),
                             "source_language": p.cfg.source_language}
    if c.path is not None:
        local = p.resolve_path(c.path)
        if local.exists():
            files.append(local)
        elif c.format != "hf" and looks_like_path(c.path):
            p.problem(f"instructions file not found: {c.path}", where="instructions.path",
                      hint=f"relative paths are taken from the config's folder ({p.base_dir})")
            return
    if c.generator is not None:
        if p.component("generator", c.generator, "instructions.generator") is None:
            return
        reads["generator"], gen_files = component_reads(p, "instructions.generator")
        files += gen_files
        reads["seed"] = p.cfg.seed
    src = p.cfg.source_language
    p.add(Unit("instructions", NAME, VERSION, reads=reads, consumes=[],
               produces=[Records("instructions", src), Records("heldout", src)], files=files,
               run=lambda run: _run(run, files[0] if files and c.path else c.path)))


def _run(run: UnitRun, source: Path | str | None) -> dict[str, Any]:
    cfg = run.plan.cfg
    c = cfg.instructions
    assert c is not None
    records: list[Instruction] = []
    if source is not None:
        records = read_instructions(source, fmt=c.format, split=c.split, lang=cfg.source_language)
    if c.generator is not None and c.generate_count:
        gen = run.plan.get_component("instructions.generator")
        records += gen.generate(records, c.generate_count, cfg.source_language)
    if c.limit:
        records = records[: c.limit]
    if c.holdout >= len(records):
        raise OkapiError(f"instructions.holdout ({c.holdout}) leaves no training instruction "
                         f"out of {len(records)}", where="instructions.holdout")
    cut = len(records) - c.holdout
    write_jsonl(run.path(Records("heldout", cfg.source_language)), records[cut:])
    write_jsonl(run.path(Records("instructions", cfg.source_language)), records[:cut])
    return {"train": cut, "heldout": c.holdout}
