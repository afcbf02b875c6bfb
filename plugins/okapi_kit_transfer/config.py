"""The ``okapi-kit rm-transfer`` config, validated with pydantic (unknown keys are errors).

Relative paths are taken from the config's folder. Example::

    name: rm-transfer
    base_model: tiny:llama:64x2
    sources:                       # one reward model each: trained on data, or given
      en: {data: data/train/en.jsonl}
      vi: {data: data/train/vi.jsonl}
      ko: {model: path/or/hub-id, language: ko}
    targets: {data_dir: data/test, languages: [en, vi, bn]}
    trainer: {name: reward, options: {max_steps: 200}}
    transfer: [direct]
    representation: {limit: 64}
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from okapi_kit.config import PAIRS_HELP, ComponentChoice, PairSelection, Strict
from okapi_kit.errors import OkapiError
from okapi_kit.languages import LANGUAGES, get_language


class SourceConfig(Strict):
    """A reward model to transfer: trained on preference data in one language, or given."""

    data: str | list[str] | None = Field(
        None, description="preference pairs or K-wise rankings to train the RM on (JSON, JSONL, Okapi, TRL)")
    model: str | None = Field(None, description="a reward model you already have: a folder or a hub id")
    language: str | None = Field(None, description="the language the RM was trained in (default: the "
                                 "source's name when that is a language code)")
    base: str | None = Field(None, description="for a given model: the model it was trained from, for the "
                             "representation analysis (default: base_model)")

    @model_validator(mode="after")
    def _one_origin(self) -> SourceConfig:
        if (self.data is None) == (self.model is None):
            raise ValueError("give a source either data (to train a reward model on) or model (one you have)")
        if self.base is not None and self.model is None:
            raise ValueError("base is for a given model; a trained one starts from base_model")
        return self


class TargetsConfig(Strict):
    """The test sets, in Multilingual RewardBench's schema: rows of prompt, chosen, rejected and
    a category column, in ``<data_dir>/<lang>.jsonl`` or ``<data_dir>/<lang>/test.jsonl``."""

    data_dir: str
    languages: list[str] = Field(min_length=1)
    limit: int | None = Field(None, ge=1, description="score only the first N rows of each language")
    category_column: str | None = Field(
        None, description="the column that groups rows (default: the first of category, subset, source present)")


class RepresentationConfig(Strict):
    """Per-layer similarity of pooled hidden states for parallel inputs: rows with the same id
    in every language's file (the same preference pair, translated)."""

    data_dir: str | None = Field(None, description="parallel test files, as targets.data_dir (default: it)")
    languages: list[str] | None = Field(None, description="languages compared (default: targets.languages)")
    limit: int = Field(64, ge=2, description="parallel rows used (the first ones shared by every language)")
    pooling: Literal["last", "mean"] = Field(
        "last", description="last: the last token's state (where a reward model reads its score); mean: "
        "the mean over the sequence's tokens")
    response: Literal["chosen", "rejected"] = Field("chosen", description="which response follows the prompt")
    batch_size: int = Field(16, ge=1)
    device: str = Field("auto", description="auto (cuda when present, else cpu), cpu, cuda, cuda:N or mps")


class TransferChoice(ComponentChoice):
    """A transfer method; ``label`` tells two uses of one method apart (default: its name)."""

    label: str | None = None

    @property
    def key(self) -> str:
        return self.label or self.name


def unique_keys(value: list[TransferChoice]) -> list[TransferChoice]:
    """Transfer methods with distinct keys (each names a row of the matrix), else a ValueError."""
    keys = [t.key for t in value]
    if len(set(keys)) != len(keys):
        twice = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"two transfer methods are named {twice!r}; give one of them a `label`")
    return value


class TransferConfig(Strict):
    name: str = "rm-transfer"
    seed: int = Field(0, ge=0)
    base_model: str | None = Field(None, description="the model every trained RM starts from (hub id, "
                                   "local folder or tiny:<arch>)")
    trust_remote_code: bool = False
    prompt_template: Literal["raw", "alpaca", "chat", "auto"] = Field(
        "alpaca", description="how prompts are shown to the RMs, in training and testing alike: as they "
        "are (raw), in Okapi's Alpaca template, or the base model's chat template")
    sources: dict[str, SourceConfig] = Field(min_length=1)
    targets: TargetsConfig
    trainer: ComponentChoice = Field(default_factory=lambda: ComponentChoice(name="reward"))
    pairs: PairSelection = Field("all", description=PAIRS_HELP)
    transfer: list[TransferChoice] = Field(default_factory=lambda: [TransferChoice(name="direct")], min_length=1)
    scoring: dict[str, Any] = Field(
        default_factory=dict, description="options of the reward_model reward source that scores with "
        "each RM (batch_size, max_length, device)")
    representation: RepresentationConfig | None = None

    @field_validator("transfer")
    @classmethod
    def _labels(cls, value: list[TransferChoice]) -> list[TransferChoice]:
        return unique_keys(value)

    @model_validator(mode="after")
    def _needs_base(self) -> TransferConfig:
        trained = [k for k, s in self.sources.items() if s.data is not None]
        if trained and self.base_model is None:
            raise ValueError(f"source(s) {', '.join(trained)} train a reward model: set base_model")
        return self

    def language_of(self, source: str) -> str:
        lang = self.sources[source].language
        return lang if lang is not None else source

    def languages(self) -> list[str]:
        """Every language the run touches: the sources', the targets', the representation's."""
        langs = [self.language_of(s) for s in self.sources] + list(self.targets.languages)
        if self.representation is not None and self.representation.languages:
            langs += self.representation.languages
        return list(dict.fromkeys(langs))


def language_problems(cfg: TransferConfig, source: str) -> list[OkapiError]:
    """Unknown language codes, and sources whose language is neither given nor their name."""
    problems = []
    for key, src in cfg.sources.items():
        if src.language is None and key not in LANGUAGES:
            problems.append(OkapiError(f"source {key!r} is not a language code, so its language is unknown",
                                       where=f"{source}: sources.{key}", hint="add language: <code>"))
    codes = [(f"sources.{k}.language", s.language) for k, s in cfg.sources.items() if s.language is not None]
    codes += [(f"targets.languages[{i}]", c) for i, c in enumerate(cfg.targets.languages)]
    if cfg.representation is not None and cfg.representation.languages:
        codes += [(f"representation.languages[{i}]", c) for i, c in enumerate(cfg.representation.languages)]
    for where, code in codes:
        try:
            get_language(code, where=f"{source}: {where}")
        except OkapiError as exc:
            problems.append(exc)
    if len(set(cfg.targets.languages)) != len(cfg.targets.languages):
        problems.append(OkapiError("a language is listed twice", where=f"{source}: targets.languages"))
    return problems


def load_transfer_config(data: dict[str, Any], source: str) -> TransferConfig:
    """Validate config data; every problem is reported at once."""
    from pydantic import ValidationError

    from okapi_kit.config import pydantic_problems
    from okapi_kit.errors import raise_all

    try:
        cfg = TransferConfig.model_validate(data)
    except ValidationError as exc:
        raise_all(pydantic_problems(exc, source=source, model=TransferConfig))
        raise  # pragma: no cover - raise_all raised
    raise_all(language_problems(cfg, source))
    return cfg
