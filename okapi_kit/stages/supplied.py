"""Your own data and models at any stage: ``data:`` files become the records a stage would
have produced (read once, checked before any work), ``models:`` stand in for trained models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import OkapiError
from ..graph import Model, Plan, Records, Unit, UnitRun, check_name
from ..graph.artifacts import RESERVED
from ..graph.planner import looks_like_path
from ..readers import data_files
from ..records import Instruction, Ranking, SampleSet, write_jsonl

NAME, VERSION = "supplied", 1
KINDS = ("translations", "eval_prompts", "samples", "rankings", "prompts")
MODEL_LABELS_RESERVED = RESERVED - {"sft", "rm"}


def plan(p: Plan) -> None:
    cfg = p.cfg
    for label, spec in cfg.models.items():
        where = f"models.{label}"
        try:
            check_name(label, where=f"{p.source_name}: {where}", reserved=MODEL_LABELS_RESERVED)
        except OkapiError as exc:
            p.problems.append(exc)
            p.not_planned(*[Model(label, scope) for scope in p.scopes()])
            continue
        if isinstance(spec, dict):
            if cfg.model_scope != "per_language":
                p.problem("one model per language needs model_scope: per_language", where=where)
                p.not_planned(*[Model(label, scope) for scope in p.scopes()])
                continue
            for lang in cfg.languages:
                if lang not in spec:
                    p.problem(f"no {label} model for {lang!r}", where=where, hint=f"add {where}.{lang}")
                    p.not_planned(Model(label, lang))
                else:
                    p.supply_model(Model(label, lang), spec[lang], f"{where}.{lang}")
        else:
            for scope in p.scopes():
                p.supply_model(Model(label, scope), spec, where)
    data = cfg.data
    for kind in KINDS:
        per_lang: dict[str, Any] = getattr(data, kind)
        for lang, given in per_lang.items():
            where = f"data.{kind}.{lang}"
            if lang not in cfg.languages:
                p.problem(f"{lang!r} is not one of the run's languages {cfg.languages}", where=where)
                continue
            sources = [given] if isinstance(given, str) else list(given)
            paths = []
            for s in sources:
                path = p.resolve_path(s)
                if not path.exists() and looks_like_path(s):
                    p.problem(f"data file not found: {s}", where=where,
                              hint=f"relative paths are taken from the config's folder ({p.base_dir})")
                    p.not_planned(Records(kind, lang))
                    break
                paths.append(path if path.exists() else s)
            else:
                try:
                    read(kind, paths, lang, fmt=data.format, split=data.split)  # checked before any work
                except OkapiError as exc:
                    p.problems.append(OkapiError(exc.message, where=exc.where or f"{p.source_name}: {where}",
                                                 hint=exc.hint))
                    p.not_planned(Records(kind, lang))
                    continue
                art = Records(kind, lang)
                p.add(Unit(f"supplied/{kind}/{lang}", NAME, VERSION,
                           reads={"format": data.format, "split": data.split, "sources": len(paths)},
                           consumes=[], produces=[art], files=[f for x in paths for f in data_files(x)],
                           run=lambda run, kind=kind, paths=paths, lang=lang: _import(run, kind, paths, lang)))


def read(kind: str, sources: list[Path | str], lang: str, *, fmt: str = "auto",
         split: str = "train") -> list[Any]:
    """Records of ``kind`` from the user's files, in okapi-kit's record types."""
    from ..readers import read_instructions, read_rankings

    if kind in ("translations", "eval_prompts", "prompts"):
        rows = read_instructions(sources, fmt=fmt, split=split, lang=lang)
        if kind == "translations" and not any(r.output.strip() for r in rows):
            raise OkapiError("these records have no 'output': they are prompts, not SFT data",
                             where=str(sources[0]), hint="supply them under data.prompts or data.eval_prompts")
        return [Instruction(**{**r.to_dict(), "lang": lang}) for r in rows]
    if kind == "rankings":
        return [Ranking(**{**r.to_dict(), "lang": lang}) for r in read_rankings(sources, fmt=fmt, split=split,
                                                                                lang=lang)]
    return read_samples(sources, fmt=fmt, split=split, lang=lang)


def _import(run: UnitRun, kind: str, paths: list[Path | str], lang: str) -> dict[str, Any]:
    cfg = run.plan.cfg
    rows = read(kind, paths, lang, fmt=cfg.data.format, split=cfg.data.split)
    if not rows:
        raise OkapiError(f"no records in {', '.join(map(str, paths))}", where=f"data.{kind}.{lang}")
    write_jsonl(run.path(Records(kind, lang)), rows)
    return {"records": len(rows)}


def read_samples(sources: list[Path | str], *, fmt: str, split: str, lang: str) -> list[SampleSet]:
    """K responses per prompt: ``{prompt | instruction[, input], responses: [...]}`` records."""
    from ..prompts import format_alpaca
    from ..readers import read_rows

    out: list[SampleSet] = []
    for source in sources:
        for i, (where, obj) in enumerate(read_rows(source, fmt=fmt, split=split)):
            if not isinstance(obj, dict):
                raise OkapiError(f"expected a JSON object, got {type(obj).__name__}", where=where)
            responses = obj.get("responses")
            if not isinstance(responses, list) or len(responses) < 2 \
                    or not all(isinstance(r, str) for r in responses):
                raise OkapiError("a sample record needs 'responses': a list of at least two strings",
                                 where=where, hint=f"record keys are: {', '.join(sorted(obj))}")
            prompt = obj.get("prompt")
            if not isinstance(prompt, str):
                instruction = obj.get("instruction")
                if not isinstance(instruction, str):
                    raise OkapiError("a sample record needs 'prompt' or 'instruction'", where=where)
                prompt = format_alpaca(instruction, str(obj.get("input") or ""))
            rid = str(obj.get("id", f"{Path(str(source)).stem}-{i:06d}"))
            out.append(SampleSet(id=rid, lang=lang, prompt=prompt, responses=list(responses),
                                 reference=obj.get("reference") if isinstance(obj.get("reference"), str) else None))
    ids = [s.id for s in out]
    if len(set(ids)) != len(ids):
        raise OkapiError("two sample records share one id", where=str(sources[0]))
    return out
