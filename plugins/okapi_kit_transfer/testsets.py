"""Preference test sets in Multilingual RewardBench's schema, and how prompts are shown to RMs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from okapi_kit.errors import OkapiError
from okapi_kit.prompts import PromptFormatter

CATEGORY_COLUMNS = ("category", "subset", "source")


@dataclass(frozen=True)
class TestRow:
    id: str
    prompt: str
    chosen: str
    rejected: str
    category: str


def test_file(data_dir: Path, lang: str) -> Path:
    """``<lang>/test.jsonl`` or ``<lang>.jsonl`` (or ``.json``) in ``data_dir``."""
    from okapi_kit.readers import language_file

    path = language_file(data_dir, [lang])
    if path is not None:
        return path
    raise OkapiError(f"no test set for {lang!r} in {data_dir}", where="targets.data_dir",
                     hint=f"expected {lang}.jsonl or {lang}/test.jsonl: rows of prompt, chosen, rejected "
                     "and a category (Multilingual RewardBench's schema)")


def read_test_rows(path: Path, *, limit: int | None = None, category_column: str | None = None) -> list[TestRow]:
    """The rows of a test set; ids are the rows' ``id`` (or their position when absent or repeated)."""
    from okapi_kit.readers import read_rows

    raw = [obj for _, obj in read_rows(path)]
    raw = raw[:limit] if limit else raw
    for i, obj in enumerate(raw):
        if not isinstance(obj, dict):
            raise OkapiError(f"row {i} is a {type(obj).__name__}, not a JSON object", where=str(path))
        missing = [k for k in ("prompt", "chosen", "rejected") if not isinstance(obj.get(k), str)]
        if missing:
            raise OkapiError(f"row {i} has no text in {', '.join(missing)}", where=str(path),
                             hint="rows need prompt, chosen and rejected (Multilingual RewardBench's schema)")
    if not raw:
        raise OkapiError("the test set has no rows", where=str(path))
    column = category_column
    if column is not None and any(column not in obj for obj in raw):
        raise OkapiError(f"a row has no {column!r} column", where=str(path), hint="check targets.category_column")
    if column is None:
        column = next((c for c in CATEGORY_COLUMNS if all(c in obj for obj in raw)), None)
    ids = [str(obj.get("id", i)) for i, obj in enumerate(raw)]
    if len(set(ids)) != len(ids):
        ids = [str(i) for i in range(len(raw))]
    return [TestRow(i, obj["prompt"], obj["chosen"], obj["rejected"], str(obj[column]) if column else "all")
            for i, obj in zip(ids, raw)]


def parallel_rows(files: dict[str, Path], limit: int) -> dict[str, list[TestRow]]:
    """The first ``limit`` rows whose id is in every language's file, in the first file's order."""
    rows = {lang: read_test_rows(path) for lang, path in files.items()}
    by_id = {lang: {r.id: r for r in rs} for lang, rs in rows.items()}
    first = next(iter(rows))
    shared = [r.id for r in rows[first] if all(r.id in ids for ids in by_id.values())][:limit]
    return {lang: [by_id[lang][i] for i in shared] for lang in rows}


def formatter(style: str, model: str, trust_remote_code: bool = False) -> Callable[..., str]:
    """``fmt(instruction, input)``: the prompt as the RMs see it, in training and testing alike."""
    if style == "raw":
        return lambda instruction, input="": f"{instruction}\n\n{input}" if input.strip() else instruction
    return PromptFormatter(style, model, trust_remote_code=trust_remote_code)
