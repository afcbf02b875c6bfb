"""A toy translator: it reverses the order of the words (it does not translate)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from pydantic import Field

from okapi_kit import ComponentConfig, OkapiError, Translator
from okapi_kit.components import InputPath


class ReverseWordsConfig(ComponentConfig):
    tag: bool = Field(True, description="prefix every output with '[<target>] '")
    glossary: InputPath | None = Field(
        None, description="JSON file {word: replacement} applied to each word (relative to the config)")
    skip_empty: bool = Field(False, description="return None (a miss) for texts without words")


class ReverseWords(Translator):
    """Toy translator: reverses word order and tags the target language (a demo, not a translation)."""

    name = "reverse_words"
    Config = ReverseWordsConfig

    def __init__(self, config: ReverseWordsConfig | None = None):
        super().__init__(config)
        self._glossary: dict[str, str] | None = None

    def glossary(self) -> dict[str, str]:
        """The glossary, read on first use (constructing the component stays cheap)."""
        if self._glossary is None:
            self._glossary = _read_glossary(self.config.glossary) if self.config.glossary else {}
        return self._glossary

    def translate(self, texts: Sequence[str], source: str, target: str) -> list[str | None]:
        words_for = self.glossary()
        out: list[str | None] = []
        for text in texts:
            words = [words_for.get(w, w) for w in reversed(text.split())]
            if not words:  # nothing to reverse
                out.append(None if self.config.skip_empty else text)
                continue
            prefix = f"[{target}] " if self.config.tag else ""
            out.append(prefix + " ".join(words))
        return out


def _read_glossary(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise OkapiError(f"invalid JSON ({exc.msg})", where=f"{path}:{exc.lineno}") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise OkapiError("a glossary must be a JSON object of word -> replacement strings",
                         where=str(path))
    return data
