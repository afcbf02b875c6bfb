"""The ``direct`` and ``translate_then_score`` transfer methods."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationInfo, model_validator

from okapi_kit import ComponentConfig, OkapiError, RewardSource, TransferMethod
from okapi_kit.config import ComponentChoice
from okapi_kit.prompts import ALPACA_NO_INPUT, ALPACA_WITH_INPUT
from okapi_kit.registry import create_nested


class DirectTransfer(TransferMethod):
    """Scores each response as it is written: the RM reads the other language directly."""

    name = "direct"

    def score(self, reward: RewardSource, prompts: Sequence[str], responses: Sequence[str], *,
              rm_language: str, languages: Sequence[str]) -> list[float]:
        return reward.score(prompts, responses, languages)


class TranslateThenScoreConfig(ComponentConfig):
    translator: ComponentChoice = Field(description="any registered translator, {name, options}")
    on_failure: Literal["keep", "error"] = Field(
        "keep", description="a text the translator cannot translate: keep (score it untranslated) or error")
    _translator: Any = PrivateAttr(None)

    @model_validator(mode="after")
    def _create(self, info: ValidationInfo) -> TranslateThenScoreConfig:
        """The translator is looked up and its options checked with the config, so a typo fails
        ``validate``; its relative paths are taken from the config's folder."""
        self._translator = create_nested("translator", self.translator, "translator", info)
        return self


# Okapi's Alpaca templates as (literal, field, literal, ...): only the fields are translated,
# the template stays as the RM saw it in training.
_TEMPLATES = []
for _template in (ALPACA_WITH_INPUT, ALPACA_NO_INPUT):
    _parts = re.split(r"\{(instruction|input)\}", _template)
    _pattern = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.*?)" for i, p in enumerate(_parts))
    _TEMPLATES.append((re.compile(f"^{_pattern}$", re.S), _template))


def split_prompt(prompt: str) -> tuple[str, dict[str, str]] | None:
    """(template, fields) when ``prompt`` is in Okapi's Alpaca template, else None."""
    for pattern, template in _TEMPLATES:
        found = pattern.match(prompt)
        if found:
            return template, found.groupdict()
    return None


class TranslateThenScore(TransferMethod):
    """Translates prompt and response into the RM's language with a translator, then scores.

    A prompt in Okapi's Alpaca template keeps its template: only the instruction (and input)
    are translated; the whitespace around a text stays (a chat template's newline). Texts
    already in the RM's language are not translated. Translations are
    remembered, so an RL run that scores the same prompts again does not translate them again.
    """

    name = "translate_then_score"
    Config = TranslateThenScoreConfig

    def __init__(self, config: TranslateThenScoreConfig | None = None):
        super().__init__(config)
        self._memory: dict[tuple[str, str, str], str | None] = {}
        self.untranslated = 0  # texts scored as written because the translator gave nothing

    @property
    def translator(self) -> Any:
        if self.config._translator is None:  # a config built without validation
            from okapi_kit.plugins import registry
            from okapi_kit.registry import create_component

            t = self.config.translator
            self.config._translator = create_component(registry(), "translator", t.name, t.options,
                                                       where="translator")
        return self.config._translator

    def check(self, rm_language: str, languages: Sequence[str]) -> None:
        """Raise OkapiError if the translator cannot translate a language into the RM's."""
        for lang in languages:
            if lang != rm_language:
                self.translator.check(lang, rm_language)

    def score(self, reward: RewardSource, prompts: Sequence[str], responses: Sequence[str], *,
              rm_language: str, languages: Sequence[str]) -> list[float]:
        texts: dict[str, set[str]] = {}
        split = [split_prompt(p) for p in prompts]
        for prompt, parts, response, lang in zip(prompts, split, responses, languages):
            if lang == rm_language:
                continue
            fields = [v for v in parts[1].values() if v and v.strip()] if parts else [prompt]
            texts.setdefault(lang, set()).update([*fields, response])
        for lang, wanted in texts.items():
            self._translate(sorted(wanted), lang, rm_language)
        out_prompts, out_responses = [], []
        for prompt, parts, response, lang in zip(prompts, split, responses, languages):
            if lang == rm_language:
                out_prompts.append(prompt)
                out_responses.append(response)
                continue
            if parts:
                template, fields = parts
                prompt = template.format(**{k: self._get(v, lang, rm_language) if v and v.strip() else v
                                            for k, v in fields.items() if v is not None})
            else:
                prompt = self._get(prompt, lang, rm_language)
            out_prompts.append(prompt)
            out_responses.append(self._get(response, lang, rm_language))
        return reward.score(out_prompts, out_responses, [rm_language] * len(out_prompts))

    def _translate(self, texts: list[str], source: str, target: str) -> None:
        todo = list(dict.fromkeys(t.strip() for t in texts if (source, target, t.strip()) not in self._memory))
        if not todo:
            return
        got = self.translator.translate(todo, source, target)
        if len(got) != len(todo):
            raise OkapiError(f"translator {self.config.translator.name!r} returned {len(got)} translations "
                             f"for {len(todo)} texts", where="translate_then_score")
        for text, translation in zip(todo, got):
            if translation is None and self.config.on_failure == "error":
                raise OkapiError(f"translator {self.config.translator.name!r} could not translate "
                                 f"{text[:80]!r} from {source} into {target}", where="translate_then_score",
                                 hint="set on_failure: keep to score such texts as they are written")
            self._memory[(source, target, text)] = translation

    def _get(self, text: str, source: str, target: str) -> str:
        """The translation of ``text``; the whitespace around it (a template's newline) is kept."""
        core = text.strip()
        translation = self._memory.get((source, target, core))
        if translation is None:
            self.untranslated += 1
            return text
        start = text.index(core) if core else 0
        return text[:start] + translation.strip() + text[start + len(core):]
