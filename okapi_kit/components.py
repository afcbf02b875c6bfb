"""Base classes for the components that plugins provide, one per kind.

A component is a class with a ``name``, a pydantic ``Config`` (the options a YAML
config may pass it) and the one method of its kind. Component modules must not import
torch, transformers, trl or lm-eval at module level: import them inside the methods,
so that listing and validating stay fast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo

from .records import SampleSet

if TYPE_CHECKING:
    from .llm.chat import ChatModel


def _resolve_input(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    path = Path(value).expanduser()
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    if not path.exists():
        raise ValueError(f"file or folder does not exist: {path}")
    return path


def _plain_name(value: str) -> str:
    if not value.strip() or any(c in value for c in "/\\"):
        raise ValueError("give a plain name (not blank, no slashes)")
    return value


# A name option that becomes part of a task name or a path (an evaluator's ``task``).
PlainName = Annotated[str, AfterValidator(_plain_name)]


# A path option of a component config: relative paths are taken from the folder of the
# YAML config that names them, and the path must exist (so `okapi-kit validate` checks it).
InputPath = Annotated[Path, AfterValidator(_resolve_input)]


class ComponentConfig(BaseModel):
    """Options of a component. Unknown keys are errors.

    Every option enters the fingerprint of the units that use the component, except those
    declared with ``Field(..., json_schema_extra=NOT_IN_FINGERPRINT)``: options that cannot
    change a result (concurrency, timeouts, a cache's location), so changing them re-runs nothing.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


NOT_IN_FINGERPRINT: dict[str, Any] = {"fingerprint": False}


@dataclass(frozen=True)
class Failed:
    """Returned by a component in place of one result it could not produce (an API error,
    unparsable judge output). The stage keeps the other results, records the reason in its
    failures file and fails; the next run asks again for the failed items only."""

    reason: str


class Component:
    """Common base: a named, configurable piece of the pipeline."""

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    Config: ClassVar[type[ComponentConfig]] = ComponentConfig

    def __init__(self, config: ComponentConfig | None = None):
        self.config = config if config is not None else self.Config()

    def input_files(self) -> list[Path]:
        """Files this component reads beyond its path options (e.g. the module of a reward
        function): their content enters the fingerprint of every unit that uses it."""
        return []

    @classmethod
    def summary(cls) -> str:
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


class Translator(Component):
    """Translates texts from one language into another."""

    kind = "translator"

    def translate(self, texts: Sequence[str], source: str, target: str) -> list[str | None]:
        """One translation per text, in order; ``None`` where the text could not be translated."""
        raise NotImplementedError

    def check(self, source: str, target: str) -> None:
        """Raise OkapiError if this translator cannot translate ``source`` into ``target``.

        Called by ``validate`` and before a run starts; do no paid work here.
        """


class InstructionGenerator(Component):
    """Writes new instructions (for example Self-Instruct style, from seed tasks)."""

    kind = "generator"

    def generate(self, seeds: Sequence[Any], n: int, language: str) -> list[Any]:
        """Return ``n`` new :class:`okapi_kit.records.Instruction` records."""
        raise NotImplementedError


class Sampler(Component):
    """Generates responses to prompts with a model."""

    kind = "sampler"

    def sample(self, model: str, prompts: Sequence[str], k: int, *, seed: int) -> list[list[str]]:
        """``k`` responses for each prompt, deterministic for a given seed."""
        raise NotImplementedError


class Ranker(Component):
    """Orders the K responses sampled for each prompt, best first."""

    kind = "ranker"

    def rank(self, items: Sequence[SampleSet]) -> list[list[int] | RankResult | Failed]:
        """For each item, the indices of its responses from best to worst; or a
        :class:`RankResult` that also keeps scores and details (a judge's permutation, say);
        or :class:`Failed` with the reason."""
        raise NotImplementedError


@dataclass
class RankResult:
    """A ranking with what the ranker saw: ``scores`` per response (in the item's order)
    and ``details`` (JSON data, e.g. the shuffled order a judge was shown)."""

    order: list[int]
    scores: list[float] | None = None
    details: dict[str, Any] | None = None


class RewardSource(Component):
    """Gives a scalar reward to a response (a reward model, a rule, a transferred RM)."""

    kind = "reward_source"

    def score(
        self, prompts: Sequence[str], responses: Sequence[str], languages: Sequence[str]
    ) -> list[float]:
        raise NotImplementedError


@dataclass
class TrainJob:
    """Everything a trainer needs. ``records`` follow TRL's standard dataset formats:

    - ``data == "sft"``: ``{"prompt", "completion"}``
    - ``data == "preference"``: ``{"prompt", "chosen", "rejected"}``
    - ``data == "ranking"``: ``{"prompt", "responses"}`` with responses best first
    - ``data == "prompts"``: ``{"prompt"}`` (online RL; ``reward`` scores samples)
    """

    model: str
    output_dir: Path
    work_dir: Path
    records: list[dict[str, Any]]
    seed: int = 0
    languages: list[str] = field(default_factory=list)
    reference_model: str | None = None
    reward: RewardSource | None = None
    trust_remote_code: bool = False
    progress: Callable[[int, int], None] | None = None


@dataclass
class TrainResult:
    output_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)


class Trainer(Component):
    """Trains a model and saves it (safetensors) to ``job.output_dir``.

    Trainers should checkpoint into ``job.work_dir`` and resume from the latest
    checkpoint there, so that an interrupted run continues where it stopped.
    """

    kind = "trainer"
    data: ClassVar[str] = "sft"  # which records the trainer consumes (see TrainJob)
    produces: ClassVar[str] = "policy"  # "policy" or "reward_model"

    def train(self, job: TrainJob) -> TrainResult:
        raise NotImplementedError


@dataclass
class Score:
    """One evaluation figure.

    ``items`` (optional) holds the per-item values behind ``value`` (item id -> value, e.g.
    1.0/0.0 for a correct/incorrect multiple-choice item, or the share of a prompt's samples
    that pass): the leaderboard uses them for paired comparisons between models scored on the
    same items. Give one value per independent unit (per prompt, not per sample).
    """

    task: str
    metric: str
    value: float
    stderr: float | None = None
    n: int = 0
    protocol: str = ""
    items: dict[str, float] | None = None
    # A confidence interval of ``value`` (a bootstrap's, a Wilson interval), its level in
    # ``protocol``; kept in the unit's score file next to the figure.
    interval: tuple[float, float] | None = None


@dataclass
class EvalTarget:
    """A model to evaluate in one language, with what evaluators may need."""

    model: str
    label: str  # base, sft, dpo, ...
    language: str
    work_dir: Path
    prompts: list[str] = field(default_factory=list)  # held-out prompts in ``language``
    # For evaluators with ``uses_generations``: the responses the model gave to each prompt,
    # made once per (model, language, sampling settings) and shared by every such evaluator.
    responses: list[list[str]] | None = None
    # For evaluators with ``uses_reward_model``: the run's reward model for this language.
    reward_model: str | None = None
    seed: int = 0
    trust_remote_code: bool = False
    # For evaluators with a ``baseline_label()``: that model's label and its responses to the
    # same prompts, in the order of ``prompts`` (made by the same generate stage).
    baseline: str | None = None
    baseline_responses: list[list[str]] | None = None
    # Items the evaluator could not score ({"id", "reason"}, e.g. a judge's unparsable verdict):
    # the stage writes them to the unit's failures file and fails the unit.
    failures: list[dict[str, Any]] = field(default_factory=list)


class Evaluator(Component):
    """Scores a model in one language."""

    kind = "evaluator"
    uses_generations: ClassVar[bool] = False  # needs ``EvalTarget.responses``
    uses_reward_model: ClassVar[bool] = False  # needs ``EvalTarget.reward_model`` (the run's RM)
    target_kind: ClassVar[str] = "policy"  # "reward_model": it scores the run's RM, not each policy

    def evaluate(self, target: EvalTarget) -> list[Score]:
        raise NotImplementedError

    def check(self, language: str) -> None:
        """Raise OkapiError if this evaluator cannot score ``language`` (e.g. no data for it).

        Called by ``validate`` and before a run starts.
        """

    def baseline_label(self) -> str | None:
        """The label of the model this evaluator compares every other model against (a
        win-rate's baseline), or None. With ``uses_generations``, the pipeline then hands the
        baseline's responses over in ``EvalTarget.baseline_responses`` and scores no unit of
        the baseline against itself."""
        return None


class TransferMethod(Component):
    """How a reward model trained in one language scores responses in another: as they are
    (direct), after translating them into the RM's language, or any other way."""

    kind = "transfer"

    def score(self, reward: RewardSource, prompts: Sequence[str], responses: Sequence[str], *,
              rm_language: str, languages: Sequence[str]) -> list[float]:
        """The reward of each (prompt, response) written in ``languages[i]``, by ``reward``
        trained in ``rm_language``."""
        raise NotImplementedError


class ChatProvider(Component):
    """A chat model named in a component's options (an evaluator's ``judge:``): its ``Config``
    holds the provider's options (model, endpoint, limits)."""

    kind = "chat"

    def chat_model(self) -> ChatModel:
        """A new :class:`~okapi_kit.llm.ChatModel` on these options (nothing is sent yet)."""
        raise NotImplementedError


class Stage(Component):
    """A pipeline stage added by a plugin (e.g. a filter between rank and reward model).

    ``after`` names the stage it follows (``rank``, ``reward_model`` ...). ``plan`` returns
    the units of work, built with :class:`okapi_kit.graph.Unit` from what ``ctx`` resolves;
    a unit that produces an artifact another unit produced before it replaces that artifact
    for every stage planned later.
    """

    kind = "stage"
    after: ClassVar[str] = "rank"

    def plan(self, ctx: Any) -> list[Any]:
        raise NotImplementedError

    def results(self, plan: Any) -> list[Any]:
        """Leaderboard rows (:class:`okapi_kit.leaderboard.ResultRow`) read from this stage's
        outputs after a run, stored with the evaluation's; none by default."""
        return []


KINDS: dict[str, type[Component]] = {
    cls.kind: cls
    for cls in (Translator, InstructionGenerator, Sampler, Ranker, RewardSource, Trainer, Evaluator,
                TransferMethod, Stage, ChatProvider)
}
