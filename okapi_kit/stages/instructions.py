"""English (source-language) instructions: loaded from a file, or generated, with a held-out tail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import OkapiError
from ..graph import Plan, Records, Unit, UnitRun
from ..graph.planner import looks_like_path
from ..readers import data_files, read_instructions
from ..records import Instruction, write_jsonl
from .common import component_reads, usage_of

NAME, VERSION = "instructions", 1


def plan(p: Plan) -> None:
    c = p.cfg.instructions
    if c is None:
        return
    src = p.cfg.source_language
    outputs = [Records("instructions", src), Records("heldout", src)]
    files: list[Path] = []
    # a local file enters by its content (moving it re-runs nothing), a hub id by its name
    reads: dict[str, Any] = {"instructions": c.model_dump(mode="json", exclude={"generator", "path"}),
                             "source_language": p.cfg.source_language, "hub_dataset": None}
    if c.path is not None:
        local = p.resolve_path(c.path)
        if local.exists():
            files.extend(data_files(local))
            if not _check_local(p, local):
                p.not_planned(*outputs)
                return
        elif c.format != "hf" and looks_like_path(c.path):
            p.problem(f"instructions file not found: {c.path}", where="instructions.path",
                      hint=f"relative paths are taken from the config's folder ({p.base_dir})")
            p.not_planned(*outputs)
            return
        else:
            reads["hub_dataset"] = c.path
    if c.generator is not None:
        if p.component("generator", c.generator, "instructions.generator") is None:
            p.not_planned(*outputs)
            return
        reads["generator"], gen_files = component_reads(p, "instructions.generator")
        files += gen_files
        reads["seed"] = p.cfg.seed
    p.add(Unit("instructions", NAME, VERSION, reads=reads, consumes=[],
               produces=[Records("instructions", src), Records("heldout", src)], files=files,
               run=lambda run: _run(run, p.resolve_path(c.path) if c.path and p.resolve_path(c.path).exists()
                                          else c.path)))


def _check_local(p: Plan, local: Path) -> bool:
    """Read a local instructions file before any work (a wrong kind, a bad line, too few
    records for the hold-out); False when a problem was reported."""
    c = p.cfg.instructions
    assert c is not None
    try:
        records = read_instructions(local, fmt=c.format, split=c.split, lang=p.cfg.source_language)
    except OkapiError as exc:
        p.problems.append(OkapiError(exc.message, where=exc.where or f"{p.source_name}: instructions.path",
                                     hint=exc.hint))
        return False
    count = min(len(records), c.limit or len(records))
    if c.generator is None and c.holdout >= count:
        p.problem(f"holding out {c.holdout} leaves no training instruction out of {count}",
                  where="instructions.holdout", hint=f"hold out fewer than {count}")
        return False
    return True


def _run(run: UnitRun, source: Path | str | None) -> dict[str, Any]:
    cfg = run.plan.cfg
    c = cfg.instructions
    assert c is not None
    records: list[Instruction] = []
    if source is not None:
        records = read_instructions(source, fmt=c.format, split=c.split, lang=cfg.source_language)
    usage: dict[str, Any] = {}
    if c.generator is not None and c.generate_count:
        gen = run.plan.get_component("instructions.generator")
        made = gen.generate(records, c.generate_count, cfg.source_language)
        records = (records + made) if c.keep_seeds else made
        usage = usage_of(gen)
    if c.limit:
        records = records[: c.limit]
    if c.holdout >= len(records):
        raise OkapiError(f"instructions.holdout ({c.holdout}) leaves no training instruction "
                         f"out of {len(records)}", where="instructions.holdout")
    cut = len(records) - c.holdout
    write_jsonl(run.path(Records("heldout", cfg.source_language)), records[cut:])
    write_jsonl(run.path(Records("instructions", cfg.source_language)), records[:cut])
    return {"train": cut, "heldout": c.holdout, **usage}
