"""Red-teaming prompts in the Aya red-teaming schema (Aakanksha et al. 2024, "The Multilingual
Alignment Prism", arXiv 2406.18682): one row per prompt with ``prompt``, ``language`` (a name,
e.g. "Hindi"), ``harm_category`` (the categories, often a JSON list in a string) and
``global_or_local`` ("global": harmful everywhere; "local": harmful in the culture of the
language). The hub copy, ``CohereForAI/aya_redteaming``, has one split per language named in
lower case (``hindi``); local files are ``<lang>.jsonl`` or ``<lang>/test.jsonl``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from okapi_kit import OkapiError
from okapi_kit.languages import LANGUAGES

HUB_DATASET = "CohereForAI/aya_redteaming"
# The splits of the hub dataset (its card, 2024) for the languages okapi-kit knows; its eighth
# language, Filipino (split ``filipino``), is not in okapi-kit's language table.
HUB_SPLITS = {"ar": "arabic", "en": "english", "fr": "french", "hi": "hindi", "ru": "russian",
              "sr": "serbian", "es": "spanish"}
SCOPES = ("global", "local")
SCHEMA_HINT = ("each row needs prompt, language, harm_category and global_or_local (global or local), "
               "as in the Aya red-teaming set")


@dataclass(frozen=True)
class RedTeamPrompt:
    id: str
    prompt: str
    harm_category: str
    scope: str  # "global" or "local"


def local_file(data_dir: Path, language: str) -> Path:
    """``<lang>/test.jsonl`` or ``<lang>.jsonl`` (or .json) in ``data_dir``; the language by its
    code (``hi``) or the hub's split name (``hindi``)."""
    from okapi_kit.readers import language_file

    path = language_file(data_dir, [language, HUB_SPLITS.get(language, language)])
    if path is not None:
        return path
    raise OkapiError(f"no red-teaming prompts for language {language!r} in {data_dir}: expected "
                     f"{language}.jsonl or {language}/test.jsonl", where="safety.data_dir", hint=SCHEMA_HINT)


def hub_split(language: str, splits: dict[str, str], dataset: str) -> str:
    split = splits.get(language) or (HUB_SPLITS.get(language) if dataset == HUB_DATASET else None)
    if split is None:
        known = ", ".join(sorted(HUB_SPLITS)) if dataset == HUB_DATASET else "none"
        raise OkapiError(f"{dataset} has no split known for language {language!r}", where="safety",
                         hint=f"languages it has: {known}; give splits: {{{language}: <split>}}, or data_dir "
                              f"with your own {language}.jsonl")
    return split


def read_local(path: Path) -> list[tuple[str, Any]]:
    from okapi_kit.readers import read_rows

    return read_rows(path)


def read_hub(dataset: str, split: str) -> list[tuple[str, Any]]:
    """The rows of one split of a hub dataset (needs network access or the hub cache)."""
    source = f"{dataset}/{split}"
    try:
        import datasets

        rows = datasets.load_dataset(dataset, split=split)
    except Exception as exc:  # offline, gated, a missing split ...: many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OkapiError(f"could not load {source}: {first}", where="safety",
                         hint="without network access, give data_dir with <lang>.jsonl files") from None
    return [(f"{source}:{i + 1}", dict(r)) for i, r in enumerate(rows)]


def parse_rows(rows: list[tuple[str, Any]], language: str) -> list[RedTeamPrompt]:
    """Checked prompts; a row that breaks the schema is an error naming its file:line."""
    out = []
    ids = [row.get("id") if isinstance(row, dict) else None for _, row in rows]
    own_ids = all(isinstance(i, str | int) for i in ids) and len(set(map(str, ids))) == len(ids)
    for n, (where, row) in enumerate(rows):
        if not isinstance(row, dict):
            raise OkapiError(f"a row must be a JSON object, not a {type(row).__name__}", where=where, hint=SCHEMA_HINT)
        missing = [k for k in ("prompt", "language", "harm_category", "global_or_local") if k not in row]
        if missing:
            raise OkapiError(f"the row has no {', '.join(missing)}", where=where, hint=SCHEMA_HINT)
        prompt = row["prompt"]
        if not isinstance(prompt, str) or not prompt.strip():
            raise OkapiError("the prompt is empty or not a string", where=where, hint=SCHEMA_HINT)
        scope = row["global_or_local"]
        if not isinstance(scope, str) or scope.strip().lower() not in SCOPES:
            raise OkapiError(f"global_or_local is {json.dumps(scope, ensure_ascii=False)}, not 'global' or 'local'",
                             where=where, hint=SCHEMA_HINT)
        if not _same_language(row["language"], language):
            name = LANGUAGES[language].name if language in LANGUAGES else language
            raise OkapiError(f"the row's language is {json.dumps(row['language'], ensure_ascii=False)}, but the "
                             f"file is read for {name} ({language})", where=where,
                             hint=f"move the row to the file of its language, or write language: {name}")
        category = row["harm_category"]
        category = category if isinstance(category, str) else json.dumps(category, ensure_ascii=False)
        out.append(RedTeamPrompt(str(ids[n]) if own_ids else f"prompt-{n:05d}", prompt, category,
                                 scope.strip().lower()))
    return out


def _same_language(value: Any, language: str) -> bool:
    """The row's language is given by code (``hi``) or by name (``Hindi``, as the Aya set writes it)."""
    if not isinstance(value, str):
        return False
    value = value.strip().lower()
    lang = LANGUAGES.get(language)
    return value == language.lower() or (lang is not None and value == lang.name.lower()) \
        or value == HUB_SPLITS.get(language)
