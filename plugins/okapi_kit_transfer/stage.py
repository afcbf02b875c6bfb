"""The ``rm_transfer`` pipeline stage: the transfer study of ``okapi-kit rm-transfer`` inside
``okapi-kit run``, on the run's own reward models (and any you list). Example::

    model_scope: per_language
    stages:
      - name: rm_transfer
        options:
          targets: {data_dir: data/m-rewardbench, languages: [en, vi, bn]}
          transfer: [direct]
          representation: {limit: 64}
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from okapi_kit import ComponentConfig, OkapiError, Stage
from okapi_kit.config import Strict
from okapi_kit.graph import Model, Plan, Unit, check_name
from okapi_kit.languages import LANGUAGES

from .config import RepresentationConfig, TargetsConfig, TransferChoice, unique_keys
from .study import RM, Study, StudyPlan, plan_study


def _code(code: str) -> str:
    """A known language code, or a ValueError that suggests one."""
    from okapi_kit.languages import get_language

    try:
        get_language(code)
    except OkapiError as exc:
        raise ValueError(f"{exc.message}: {exc.hint}" if exc.hint else exc.message) from None
    return code


class GivenRM(Strict):
    """A reward model you have, transferred beside the run's own."""

    model: str = Field(description="a folder (relative to the config) or a hub id")
    language: str | None = Field(None, description="the language it was trained in (default: its name, "
                                 "when that is a language code)")
    base: str | None = Field(None, description="the model it was trained from, for the representation "
                             "analysis (default: none, so no comparison with a base)")

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        return None if value is None else _code(value)


class RMTransferStageConfig(ComponentConfig):
    sources: list[str] | None = Field(
        None, description="languages whose reward model of this run is transferred (default: every language "
        "of the run that has one; needs model_scope: per_language)")
    models: dict[str, GivenRM] = Field(default_factory=dict, description="reward models you have, by name")
    targets: TargetsConfig
    transfer: list[TransferChoice] = Field(default_factory=lambda: [TransferChoice(name="direct")], min_length=1)
    scoring: dict[str, Any] = Field(
        default_factory=dict, description="options of the reward_model reward source that scores with "
        "each RM (batch_size, max_length, device)")
    representation: RepresentationConfig | None = None

    @field_validator("sources")
    @classmethod
    def _sources(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("a language is listed twice")
        return None if value is None else [_code(c) for c in value]

    @field_validator("targets")
    @classmethod
    def _targets(cls, value: TargetsConfig) -> TargetsConfig:
        if len(set(value.languages)) != len(value.languages):
            raise ValueError("a language is listed twice in targets.languages")
        for code in value.languages:
            _code(code)
        return value

    @field_validator("representation")
    @classmethod
    def _representation(cls, value: RepresentationConfig | None) -> RepresentationConfig | None:
        for code in (value.languages or []) if value is not None else []:
            _code(code)
        return value

    @field_validator("transfer")
    @classmethod
    def _labels(cls, value: list[TransferChoice]) -> list[TransferChoice]:
        return unique_keys(value)


class RMTransferStage(Stage):
    """Scores the run's reward models (and any listed) on every target language's preference test
    set, compares their hidden states across languages, and writes the transfer matrix and the
    representation report into the run folder and the accuracies into the leaderboard."""

    name = "rm_transfer"
    Config = RMTransferStageConfig
    # right after the RMs are trained: the matrix is there before alignment, whose
    # `reward: {from: LANG}` it helps to choose
    after = "reward_model"

    def __init__(self, config: RMTransferStageConfig | None = None):
        super().__init__(config)
        self.planned: StudyPlan | None = None

    def plan(self, ctx: Plan) -> list[Unit]:
        at = _where(ctx, self)
        first = next(i for i, c in enumerate(ctx.cfg.stages) if c.name == self.name)
        if at != f"stages[{first}]":  # its units would have the same keys as the first one's
            ctx.problem(f"the {self.name} stage is listed twice", where=at,
                        hint=f"one {self.name} stage transfers every reward model: merge the two")
            return []
        where = f"{at}.options"
        known = len(ctx.problems)
        rms = _run_rms(ctx, self.config, where) + _given_rms(ctx, self.config, where)
        if not rms:
            if len(ctx.problems) == known:  # else a problem above already says why there are none
                ctx.problem("no reward model to transfer", where=where,
                            hint="train one per language (model_scope: per_language with reward_model), or "
                            "list yours under models")
            return []
        study = Study(name=ctx.cfg.name, rms=rms, targets=self.config.targets, transfer=self.config.transfer,
                      scoring=self.config.scoring, representation=self.config.representation,
                      prompt_template=ctx.cfg.prompt_template, trust_remote_code=ctx.cfg.trust_remote_code,
                      where=f"{where}.")
        self.planned = plan_study(ctx, study)
        return self.planned.units

    def results(self, plan: Plan) -> list[Any]:
        from .report import result_rows

        return result_rows(self.planned, plan) if self.planned is not None else []


def _where(ctx: Plan, stage: RMTransferStage) -> str:
    """This stage's config key, ``stages[i]``."""
    for i in range(len(ctx.cfg.stages)):
        try:
            if ctx.get_component(f"stages[{i}]") is stage:
                return f"stages[{i}]"
        except KeyError:
            continue
    return "stages"  # pragma: no cover - planned outside build_plan


def _run_rms(ctx: Plan, cfg: RMTransferStageConfig, where: str) -> list[RM]:
    """The run's per-language reward models that ``sources`` names (default: all of them)."""
    per_language = ctx.cfg.model_scope == "per_language"
    if cfg.sources is None:
        langs = [lang for lang in ctx.cfg.languages if per_language and ctx.has(Model("rm", lang))]
    elif not per_language:
        ctx.problem("sources names the run's reward models per language, but this run has one "
                    "multilingual reward model", where=f"{where}.sources",
                    hint="set model_scope: per_language, or list reward models under models")
        return []
    else:
        langs = []
        for i, lang in enumerate(cfg.sources):
            if lang not in ctx.cfg.languages or not ctx.has(Model("rm", lang)):
                ctx.problem(f"{lang!r} has no reward model in this run", where=f"{where}.sources[{i}]",
                            hint=f"add {lang!r} to languages with its rankings (or models.rm.{lang}), or "
                            "leave it out")
                continue
            langs.append(lang)
    return [RM(lang, lang, Model("rm", lang), _trained_from(ctx, Model("rm", lang)),
               name=ctx.cfg.base_model or "-") for lang in langs]


def _trained_from(ctx: Plan, art: Model) -> Model | None:
    """The model a unit of this run trained ``art`` from (its first consumed model); None for a
    supplied one (what it was trained from is unknown)."""
    producer = ctx.produced_by(art)
    inputs = ctx.inputs.get(producer or "", {})
    return next((a for a in inputs if isinstance(a, Model)), None)


def _given_rms(ctx: Plan, cfg: RMTransferStageConfig, where: str) -> list[RM]:
    taken = set(cfg.sources if cfg.sources is not None else ctx.cfg.languages)
    rms = []
    for key, given in cfg.models.items():
        at = f"{where}.models.{key}"
        try:
            check_name(key, where=f"{ctx.source_name}: {at}")
        except OkapiError as exc:
            ctx.problems.append(exc)
            continue
        if key in taken:
            ctx.problem(f"{key!r} is also a language whose reward model this run transfers", where=at,
                        hint="give your reward model another name (its language goes under language:)")
            continue
        language = given.language or (key if key in LANGUAGES else None)
        if language is None:
            ctx.problem(f"{key!r} is not a language code, so its language is unknown", where=at,
                        hint="add language: <code>")
            continue
        # labels of their own: a given RM named like a run's model never stands in for it
        model, base = Model("transfer_rm", key), Model("transfer_base", key)
        ctx.supply_model(model, given.model, f"{at}.model")
        if given.base is not None:
            ctx.supply_model(base, given.base, f"{at}.base")
        rms.append(RM(key, language, model, base if given.base is not None else None, name=given.model))
    return rms
