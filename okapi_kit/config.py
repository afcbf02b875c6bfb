"""The pipeline YAML, validated with pydantic. Unknown keys are errors that name their path."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import OkapiError, did_you_mean
from .languages import get_language


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ComponentChoice(Strict):
    """A component picked by name from the registry, with options for its own Config class."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class InstructionsConfig(Strict):
    path: str | None = None  # Okapi JSON, JSONL, a datasets folder or a hub id
    format: Literal["auto", "okapi", "jsonl", "hf"] = "auto"
    split: str = "train"
    limit: int | None = Field(None, ge=1)
    holdout: int = Field(0, ge=0, description="last N instructions kept for evaluation prompts")
    generator: ComponentChoice | None = None
    generate_count: int = Field(0, ge=0)
    keep_seeds: bool = Field(True, description="with a generator: keep the loaded instructions "
                             "(the seeds) before the generated ones; false keeps only the generated")

    @model_validator(mode="after")
    def _need_source(self) -> InstructionsConfig:
        if self.path is None and self.generator is None:
            raise ValueError("give instructions.path or instructions.generator")
        return self


class TranslationConfig(Strict):
    translator: ComponentChoice
    train_on_source: bool = Field(True, description="also fine-tune on the English originals")


class StageTrainer(Strict):
    trainer: ComponentChoice


PairSelection = Literal["all", "best_worst"]
PAIRS_HELP = ("which preference pairs a ranking gives: all = the C(K,2) pairs (InstructGPT), "
              "best_worst = one pair, the best against the worst response")


class RewardModelStage(StageTrainer):
    pairs: PairSelection = Field("all", description=PAIRS_HELP)


class SamplingConfig(Strict):
    sampler: ComponentChoice = ComponentChoice(name="transformers")
    k: int = Field(4, ge=2, description="responses per prompt (Okapi ranks 4)")
    chunk_size: int = Field(8, ge=1, description="prompts per resumable chunk")


class RankingConfig(Strict):
    ranker: ComponentChoice


class RewardChoice(Strict):
    """The reward of an online-RL alignment: a reward source by ``name`` (with ``options``), the
    reward model of another language (``from: en``) or one at ``path``; these two are read
    through a ``transfer`` method (default direct), e.g. ``{from: en, transfer: translate_then_score}``."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), populate_by_name=True)

    name: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    from_: str | None = Field(None, alias="from", description="use the reward model of this language")
    path: str | None = Field(None, description="a reward model's folder (relative to the config) or hub id")
    language: str | None = Field(None, description="with path: the RM's language (default: source_language)")
    transfer: ComponentChoice | None = Field(None, description="with from or path: how the RM scores other "
                                             "languages (default: direct)")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_kind(self) -> RewardChoice:
        given = [k for k, v in (("name", self.name), ("from", self.from_), ("path", self.path)) if v is not None]
        if len(given) != 1:
            raise ValueError("give the reward one of name (a reward source), from (a language's reward "
                             f"model) or path (a reward model){'; got ' + ', '.join(given) if given else ''}")
        if self.name is not None and self.transfer is not None:
            raise ValueError("transfer applies to a reward model given by from or path, not to a reward source")
        if self.options and self.name is None:
            raise ValueError("options belong to a reward source given by name")
        if self.language is not None and self.path is None:
            raise ValueError("language is for a reward model given by path (with from, it is that language)")
        return self


class AlignmentConfig(Strict):
    method: str = Field(description="label of the aligned model (dpo, ppo, ...)")
    trainer: ComponentChoice
    reward: RewardChoice | None = None
    pairs: PairSelection = Field("all", description=PAIRS_HELP)


class EvaluatorChoice(ComponentChoice):
    """An evaluator; ``label`` tells two uses of one evaluator apart (default: its name)."""

    label: str | None = None

    @property
    def key(self) -> str:
        return self.label or self.name


class EvaluationConfig(Strict):
    models: list[str] = Field(default_factory=lambda: ["base", "sft"])
    evaluators: list[EvaluatorChoice] = Field(default_factory=list)
    sampler: ComponentChoice | None = None  # for generation-based evaluators; default: sampling.sampler
    samples_per_prompt: int = Field(1, ge=1, description="responses generated per held-out prompt")


# Files given per language: one path or a list of paths.
PerLanguageFiles = dict[str, str | list[str]]


class DataConfig(Strict):
    """Your own data, supplied in place of what a stage would produce (see the user guide)."""

    translations: PerLanguageFiles = Field(
        default_factory=dict, description="instructions already in each language (SFT data)")
    eval_prompts: PerLanguageFiles = Field(
        default_factory=dict, description="held-out prompts per language for generation-based evaluators")
    samples: PerLanguageFiles = Field(
        default_factory=dict, description="K responses per prompt, to be ranked")
    rankings: PerLanguageFiles = Field(
        default_factory=dict, description="preference pairs or K-wise rankings per language")
    prompts: PerLanguageFiles = Field(
        default_factory=dict, description="prompt sets for online RL per language")
    format: Literal["auto", "okapi", "jsonl", "hf"] = "auto"
    split: str = "train"


# A supplied model: one path or hub id, or one per language (model_scope: per_language).
ModelSpec = str | dict[str, str]


class PipelineConfig(Strict):
    name: str = "okapi-run"
    seed: int = Field(0, ge=0)
    base_model: str | None = Field(None, description="hub id, local path, or tiny:<llama|bloom|qwen2>")
    trust_remote_code: bool = False
    source_language: str = "en"
    languages: list[str]
    model_scope: Literal["multilingual", "per_language"] = "multilingual"
    prompt_template: Literal["alpaca", "chat", "auto"] = "alpaca"
    data: DataConfig = DataConfig()
    models: dict[str, ModelSpec] = Field(
        default_factory=dict, description="models you already have, by label: sft, rm or your own")
    instructions: InstructionsConfig | None = None
    translation: TranslationConfig | None = None
    sft: StageTrainer | None = None
    sampling: SamplingConfig = SamplingConfig()
    ranking: RankingConfig | None = None
    reward_model: RewardModelStage | None = None
    alignment: list[AlignmentConfig] = Field(default_factory=list)
    evaluation: EvaluationConfig = EvaluationConfig()
    stages: list[ComponentChoice] = Field(default_factory=list, description="plugin stages to add")

    @field_validator("languages")
    @classmethod
    def _langs(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("list at least one target language")
        if len(set(value)) != len(value):
            raise ValueError("a language is listed twice")
        return value

    @model_validator(mode="after")
    def _methods(self) -> PipelineConfig:
        labels = [a.method for a in self.alignment]
        if len(set(labels)) != len(labels):
            twice = next(x for x in labels if labels.count(x) > 1)
            raise ValueError(f"two alignment entries have method {twice!r}: each method label names "
                             "one aligned model")
        keys = [e.key for e in self.evaluation.evaluators]
        if len(set(keys)) != len(keys):
            twice = next(x for x in keys if keys.count(x) > 1)
            raise ValueError(f"two evaluation.evaluators are named {twice!r}; give one of them a `label`")
        known = {"base", "sft", *labels, *self.models}
        for m in self.evaluation.models:
            if m not in known:
                raise ValueError(f"evaluation.models names {m!r}; known models: {sorted(known)}")
        return self

    def section(self, *keys: str) -> dict[str, Any]:
        """The named top-level fields as plain JSON data (what a stage reads)."""
        data = self.model_dump(mode="json")
        return {k: data.get(k) for k in keys}


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _one_problem(err: dict[str, Any], *, source: str, prefix: str, fields: Any) -> OkapiError:
    path = _loc(tuple(err["loc"]))
    if prefix:
        path = f"{prefix}.{path}" if err["loc"] else prefix
    if err["type"] == "extra_forbidden":
        return OkapiError(f"unknown key {path!r}", where=source, hint=_key_hint(err, fields))
    if err["type"] == "missing":
        return OkapiError(f"missing required key {path!r}", where=source)
    text = err["msg"].removeprefix("Value error, ")
    msg = f"{path}: {text}" if err["loc"] or prefix else text
    shown = err.get("input")
    # a model-level check gets the whole mapping as input: too long to be useful
    if "input" in err and not isinstance(shown, dict) and len(repr(shown)) <= 200:
        msg += f" (got {shown!r})"
    return OkapiError(msg, where=source)


def _key_hint(err: dict[str, Any], model: Any) -> str:
    """Close spellings of an unknown key among the keys allowed where it stands."""
    allowed = _keys_at(model, tuple(err["loc"][:-1]))
    bad = str(err["loc"][-1]) if err["loc"] else ""
    if allowed:
        return did_you_mean(bad, allowed)
    return "remove it or check its spelling"


def _keys_at(model: Any, loc: tuple[Any, ...]) -> list[str]:
    """The field names of the pydantic model found by following ``loc`` from ``model``."""
    import typing

    current = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        current = _model_in(fields[part].annotation, typing)
    fields = getattr(current, "model_fields", None)
    return list(fields) if fields else []


def _model_in(annotation: Any, typing: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg, typing)
        if found is not None:
            return found
    return None


# pydantic names the member of a union that failed in the error's location (``str``,
# ``list[str]``, ``constrained-int``, ``literal['auto']``): not a key the user wrote.
_UNION_TAG = re.compile(r"^(str|int|float|bool|bytes|none|(constrained|function|is|lax|literal|list|dict|set|"
                        r"frozenset|tuple|nullable|union|chain|default|json|tagged)[-\[].*)$")


def _is_tag(part: Any) -> bool:
    return isinstance(part, str) and bool(_UNION_TAG.match(part))


def _merge_unions(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One error per value that fits no member of a union (``str | list[str]`` given a number),
    not one per member; union members are dropped from every location."""
    out: list[dict[str, Any]] = []
    unions: dict[tuple[Any, ...], dict[str, Any]] = {}
    for err in errors:
        loc = tuple(err["loc"])
        member = bool(loc) and _is_tag(loc[-1]) and err["type"] not in ("extra_forbidden", "missing")
        plain = tuple(part for part in loc[:-1] if not _is_tag(part)) + (() if member else loc[-1:])
        if not member:
            out.append({**err, "loc": plain})
            continue
        wanted = err["msg"].removeprefix("Input should be ")
        if plain in unions:
            unions[plain]["msg"] += f" or {wanted}"
            continue
        unions[plain] = {**err, "loc": plain, "msg": f"Input should be {wanted}"}
        out.append(unions[plain])
    return out


def pydantic_problems(exc: ValidationError, *, source: str, prefix: str = "",
                      model: Any = None) -> list[OkapiError]:
    """Every validation error, each as an OkapiError naming its key path."""
    return [_one_problem(err, source=source, prefix=prefix, fields=model) for err in _merge_unions(exc.errors())]


def pydantic_error(exc: ValidationError, *, source: str, prefix: str = "", model: Any = None) -> OkapiError:
    """All validation errors as one OkapiError (an :class:`OkapiErrors` when several)."""
    from .errors import OkapiErrors

    problems = pydantic_problems(exc, source=source, prefix=prefix, model=model)
    return problems[0] if len(problems) == 1 else OkapiErrors(problems)


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Apply one ``--set key.path=value`` override (lists indexed by number).

    A component given by name alone (``ranker: reference_chrf``) is expanded to
    ``{name: ..., options: {}}`` when the path goes into its ``name`` or ``options``.
    """
    parts = dotted.split(".")
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise OkapiError(f"--set {dotted}: {part!r} is not an index of that list",
                                 hint=f"the list has {len(node)} item(s), numbered from 0")
            key: Any = int(part)
        elif isinstance(node, dict):
            key = part
        else:
            raise OkapiError(f"--set {dotted}: cannot descend into a {type(node).__name__}")
        if last:
            node[key] = value
            return
        child = node[key] if isinstance(node, list) else node.get(key)
        if isinstance(child, str) and parts[i + 1] in ("name", "options"):
            child = {"name": child}
        elif not isinstance(child, dict | list):
            if child is not None:
                here = ".".join(parts[:i + 1])
                raise OkapiError(f"--set {dotted}: {here} holds the value {child!r}, not a section",
                                 hint=f"set it whole: --set {here}=VALUE")
            child = {}
        node[key] = child
        node = child


def parse_set(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise OkapiError(f"--set {item!r} has no '='", hint="write --set key.path=value")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def load_config_data(path: Path, overrides: list[str] = ()) -> dict[str, Any]:
    """The config file as data, with ``--set`` overrides applied."""
    path = Path(path).expanduser()
    if not path.exists():
        raise OkapiError(f"config file not found: {path}", hint="create one with `okapi-kit init`")
    from .yamlfile import load_yaml

    data = load_yaml(path, "config file")
    if not isinstance(data, dict):
        what = "this file is empty" if data is None else f"this file holds a {type(data).__name__}"
        raise OkapiError(f"a config must be a YAML mapping of keys to values; {what}", where=str(path),
                         hint="`okapi-kit init` writes a starter config")
    for item in overrides:
        key, value = parse_set(item)
        set_dotted(data, key, value)
    return data


def validate_config(data: dict[str, Any], source: str) -> PipelineConfig:
    """Validate config data; every problem is reported at once."""
    from .errors import raise_all

    problems = _language_problems(data, source)  # also when other keys are wrong: all at once
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise_all(pydantic_problems(exc, source=source, model=PipelineConfig) + problems)
        raise  # pragma: no cover - raise_all raised
    raise_all(problems)
    return cfg


def _language_problems(data: dict[str, Any], source: str) -> list[OkapiError]:
    """Unknown language codes among ``source_language`` and ``languages`` (strings only: a value
    of the wrong type is pydantic's to report)."""
    codes = [("source_language", data.get("source_language", "en"))]
    if isinstance(data.get("languages"), list):
        codes += [(f"languages[{i}]", code) for i, code in enumerate(data["languages"])]
    problems = []
    for key, code in codes:
        if isinstance(code, str):
            try:
                get_language(code, where=f"{source}: {key}")
            except OkapiError as exc:
                problems.append(exc)
    return problems


def load_config(path: Path, overrides: list[str] = ()) -> tuple[PipelineConfig, Path]:
    """Read, override and validate a config; returns it with the folder relative paths start from."""
    path = Path(path).expanduser()
    cfg = validate_config(load_config_data(path, overrides), str(path))
    return cfg, path.parent.resolve()
