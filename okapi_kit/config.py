"""The pipeline YAML, validated with pydantic. Unknown keys are errors that name their path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import OkapiError
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


class AlignmentConfig(Strict):
    method: str = Field(description="label of the aligned model (dpo, ppo, ...)")
    trainer: ComponentChoice
    reward: ComponentChoice | None = None
    pairs: PairSelection = Field("all", description=PAIRS_HELP)


class EvaluationConfig(Strict):
    models: list[str] = Field(default_factory=lambda: ["base", "sft"])
    evaluators: list[ComponentChoice] = Field(default_factory=list)
    sampler: ComponentChoice | None = None  # for generation-based evaluators; default: sampling.sampler


class PipelineConfig(Strict):
    name: str = "okapi-run"
    seed: int = 0
    base_model: str = Field(description="hub id, local path, or tiny:<llama|bloom|qwen2>")
    trust_remote_code: bool = False
    source_language: str = "en"
    languages: list[str]
    model_scope: Literal["multilingual", "per_language"] = "multilingual"
    prompt_template: Literal["alpaca", "chat", "auto"] = "alpaca"
    instructions: InstructionsConfig
    translation: TranslationConfig
    sft: StageTrainer
    sampling: SamplingConfig = SamplingConfig()
    ranking: RankingConfig
    reward_model: RewardModelStage | None = None
    alignment: list[AlignmentConfig] = Field(default_factory=list)
    evaluation: EvaluationConfig = EvaluationConfig()

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
            raise ValueError("two alignment entries share one method label")
        known = {"base", "sft", *labels}
        for m in self.evaluation.models:
            if m not in known:
                raise ValueError(f"evaluation.models names {m!r}; known models: {sorted(known)}")
        return self

    def fingerprint_of(self, *keys: str) -> str:
        """Canonical JSON of config sections, the input to stage fingerprints."""
        data = self.model_dump(mode="json")
        return json.dumps({k: data.get(k) for k in keys}, sort_keys=True)


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def pydantic_error(exc: ValidationError, *, source: str, prefix: str = "") -> OkapiError:
    """The first validation error, as one OkapiError naming the key path."""
    err = exc.errors()[0]
    path = _loc(tuple(err["loc"]))
    if prefix:
        path = f"{prefix}.{path}" if err["loc"] else prefix
    if err["type"] == "extra_forbidden":
        msg, hint = f"unknown key {path!r}", "remove it or check its spelling"
    elif err["type"] == "missing":
        msg, hint = f"missing required key {path!r}", None
    else:
        text = err["msg"].removeprefix("Value error, ")
        msg, hint = (f"{path}: {text}" if err["loc"] or prefix else text), None
        shown = err.get("input")
        # a model-level check gets the whole mapping as input: too long to be useful
        if "input" in err and not isinstance(shown, dict) and len(repr(shown)) <= 200:
            msg += f" (got {shown!r})"
    more = len(exc.errors()) - 1
    if more:
        msg += f" (and {more} more problem{'s' if more > 1 else ''})"
    return OkapiError(msg, where=source, hint=hint)


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
                raise OkapiError(f"--set {dotted}: {part!r} is not an index of that list")
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
                raise OkapiError(f"--set {dotted}: {'.'.join(parts[:i + 1])} is a "
                                 f"{type(child).__name__}, not a section")
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


def load_config(path: Path, overrides: list[str] = ()) -> tuple[PipelineConfig, Path]:
    """Read, override and validate a config; returns it with the folder relative paths start from."""
    path = Path(path)
    if not path.exists():
        raise OkapiError(f"config file not found: {path}", hint="create one with `okapi-kit init`")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise OkapiError(f"malformed YAML: {getattr(exc, 'problem', exc)}", where=where) from None
    if not isinstance(data, dict):
        raise OkapiError("a config must be a YAML mapping of keys to values", where=str(path))
    for item in overrides:
        key, value = parse_set(item)
        set_dotted(data, key, value)
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise pydantic_error(exc, source=str(path)) from None
    for i, code in enumerate([cfg.source_language, *cfg.languages]):
        get_language(code, where=f"{path}: " + ("source_language" if i == 0 else f"languages[{i - 1}]"))
    return cfg, path.parent.resolve()
