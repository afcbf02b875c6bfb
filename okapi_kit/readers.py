"""Readers for the data users hand us: Okapi's JSON files, JSONL, Hugging Face datasets.

Okapi's released files (FORMATS.md) are JSON arrays, one per language (``vi.json`` or
``r_vi.json``): alpaca (instruction, input, output), ranking (instruction, input,
prefered_output, rejected_output: their spelling) and rl-tuning (instruction, input).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .errors import OkapiError
from .records import Instruction, PreferencePair, iter_jsonl

_OKAPI_NAME = re.compile(r"^(?:r_)?([a-z]{2,3})\.json$")


def language_from_filename(path: Path) -> str | None:
    """``vi.json`` and ``r_vi.json`` are Vietnamese; other names carry no language."""
    match = _OKAPI_NAME.match(Path(path).name)
    return match.group(1) if match else None


def _rows_from_file(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(where, object) pairs from a JSON array or a JSONL file."""
    if path.suffix == ".jsonl":
        return [(f"{path}:{n}", obj) for n, obj in iter_jsonl(path)]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise OkapiError(f"invalid JSON ({exc.msg})", where=f"{path}:{exc.lineno}") from None
    if isinstance(data, dict):  # a single record, or {"data": [...]}
        data = data.get("data", [data])
    if not isinstance(data, list):
        raise OkapiError("expected a JSON array of records", where=str(path))
    return [(f"{path}: record {i}", obj) for i, obj in enumerate(data)]


def _rows_from_hf(source: str, split: str) -> list[tuple[str, dict[str, Any]]]:
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - datasets is a core dependency
        raise OkapiError("reading a Hugging Face dataset needs the `datasets` package") from exc
    try:
        if Path(source).is_dir() and (Path(source) / "dataset_info.json").exists():
            ds = datasets.load_from_disk(source)
            ds = ds[split] if isinstance(ds, datasets.DatasetDict) else ds
        else:
            ds = datasets.load_dataset(source, split=split)
    except Exception as exc:  # datasets raises many types for a missing or offline source
        raise OkapiError(f"could not load dataset {source!r} (split {split!r}): {exc}",
                         hint="give a local JSON/JSONL file or a saved dataset folder when offline") from None
    return [(f"{source}[{split}] row {i}", dict(row)) for i, row in enumerate(ds)]


def read_rows(source: str | Path, *, fmt: str = "auto", split: str = "train") -> list[tuple[str, dict[str, Any]]]:
    path = Path(source).expanduser()
    if fmt == "hf" or (fmt == "auto" and (path.is_dir() or not path.exists())):
        if fmt == "auto" and not path.is_dir() and (str(source).startswith((".", "/", "~")) or path.suffix):
            raise OkapiError(f"data file not found: {source}")
        return _rows_from_hf(str(source), split)
    if not path.exists():
        raise OkapiError(f"data file not found: {source}")
    return _rows_from_file(path)


def _text(obj: dict[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise OkapiError(f"missing field {key!r}", where=where,
                             hint=f"record keys are: {', '.join(sorted(obj)) or 'none'}")
        return ""
    if not isinstance(value, str):
        raise OkapiError(f"field {key!r} must be a string, got {type(value).__name__}", where=where)
    return value


def read_instructions(source: str | Path, *, fmt: str = "auto", split: str = "train",
                      lang: str | None = None) -> list[Instruction]:
    """Instructions from alpaca-style or rl-tuning records (``output`` optional)."""
    lang = lang or language_from_filename(Path(source)) or "en"
    out = []
    for i, (where, obj) in enumerate(read_rows(source, fmt=fmt, split=split)):
        if not isinstance(obj, dict):
            raise OkapiError(f"expected a JSON object, got {type(obj).__name__}", where=where)
        instruction = _text(obj, "instruction", where)
        if not instruction.strip():
            raise OkapiError("field 'instruction' is empty", where=where)
        out.append(Instruction(
            id=str(obj.get("id", f"{Path(str(source)).stem}-{i:06d}")),
            instruction=instruction,
            input=_text(obj, "input", where, required=False),
            output=_text(obj, "output", where, required=False),
            lang=str(obj.get("lang", lang)),
        ))
    ids = [r.id for r in out]
    if len(set(ids)) != len(ids):
        dup = next(x for x in ids if ids.count(x) > 1)
        raise OkapiError(f"duplicate record id {dup!r}", where=str(source))
    return out


def read_preferences(source: str | Path, *, fmt: str = "auto", split: str = "train",
                     lang: str | None = None) -> list[PreferencePair]:
    """Preference pairs from Okapi ranking files (``prefered_output``/``rejected_output``)
    or TRL-style ``prompt``/``chosen``/``rejected`` records."""
    from .prompts import format_alpaca

    lang = lang or language_from_filename(Path(source)) or "en"
    out = []
    for i, (where, obj) in enumerate(read_rows(source, fmt=fmt, split=split)):
        if not isinstance(obj, dict):
            raise OkapiError(f"expected a JSON object, got {type(obj).__name__}", where=where)
        if "prompt" in obj or "chosen" in obj:
            prompt = _text(obj, "prompt", where)
            chosen, rejected = _text(obj, "chosen", where), _text(obj, "rejected", where)
        else:
            chosen_key = "prefered_output" if "prefered_output" in obj else "preferred_output"
            prompt = format_alpaca(_text(obj, "instruction", where), _text(obj, "input", where, required=False))
            chosen, rejected = _text(obj, chosen_key, where), _text(obj, "rejected_output", where)
        out.append(PreferencePair(id=str(obj.get("id", i)), lang=lang, prompt=prompt,
                                  chosen=chosen, rejected=rejected))
    return out
