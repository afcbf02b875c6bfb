"""Translation memory: exact lookups in parallel record files; misses come back as None."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import Field

from okapi_kit import ComponentConfig, OkapiError, Translator
from okapi_kit.components import InputPath
from okapi_kit.readers import read_rows

FIELDS = ("instruction", "input", "output")


class TranslationMemoryConfig(ComponentConfig):
    source: InputPath = Field(description="records in the source language (JSONL or Okapi JSON); aligned by id, or by position when records have no id")
    targets: dict[str, InputPath] = Field(
        description="language code -> records in that language with the same ids (e.g. {vi: translations/vi.jsonl})")
    fields: list[str] = Field(default=list(FIELDS), description="fields aligned between the files")


class TranslationMemory(Translator):
    """Looks translations up in parallel files aligned by record id; reports misses."""

    name = "translation_memory"
    Config = TranslationMemoryConfig

    def __init__(self, config: TranslationMemoryConfig | None = None):
        super().__init__(config)
        self._memory: dict[str, dict[str, str]] = {}

    def _load(self, target: str) -> dict[str, str]:
        if target not in self._memory:
            cfg = self.config
            if target not in cfg.targets:
                raise OkapiError(f"the translation memory has no {target!r} file",
                                 hint=f"add translation.translator.options.targets.{target}")
            source = _by_id(cfg.source)
            pairs: dict[str, str] = {}
            for rid, row in _by_id(cfg.targets[target]).items():
                src = source.get(rid)
                if src is None:
                    continue
                for f in cfg.fields:
                    if isinstance(src.get(f), str) and src[f].strip() and isinstance(row.get(f), str):
                        pairs[src[f]] = row[f]
            self._memory[target] = pairs
        return self._memory[target]

    def check(self, source: str, target: str) -> None:
        """Load the memory for ``target`` (files are small): a missing language or a bad file
        is reported by ``validate``, not after earlier stages have run."""
        self._load(target)

    def translate(self, texts: Sequence[str], source: str, target: str) -> list[str | None]:
        memory = self._load(target)
        return [memory.get(t) for t in texts]


def _by_id(path: Path) -> dict[str, dict]:
    """Records by id; without ids (Okapi's released files have none) the position is the id,
    so the source and target files must then list the same records in the same order."""
    rows: dict[str, dict] = {}
    for i, (where, obj) in enumerate(read_rows(path)):
        if not isinstance(obj, dict):
            raise OkapiError(f"expected a JSON object, got {type(obj).__name__}", where=where)
        rid = str(obj["id"]) if "id" in obj else f"#{i}"
        if rid in rows:
            raise OkapiError(f"duplicate id {rid!r} in a translation memory", where=where,
                             hint="each record id may appear once per file")
        rows[rid] = obj
    return rows
