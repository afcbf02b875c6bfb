"""The ``win_rate`` evaluator: a model's responses against a baseline's, judged pairwise by an LLM.

Each pair (the model's and the baseline's i-th response to one held-out prompt) is judged
twice, the model's response shown first (as A) and then second, which cancels the judge's
preference for a position: the two verdicts, read from the model's side, count when they
agree; when they disagree, or either is a tie, the pair is a tie. Identical responses are a
tie without asking. The win rate is (wins + ties / 2) / pairs; its interval is a seeded
percentile bootstrap over prompts (the prompt, not the sample, is the independent unit).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, PrivateAttr, ValidationInfo, model_validator

from okapi_kit import ComponentConfig, EvalTarget, Evaluator, Failed, OkapiError, PlainName, Score
from okapi_kit.config import ComponentChoice
from okapi_kit.llm.common import Messages, language_name
from okapi_kit.llm.judge import VerdictError, instruction_of
from okapi_kit.registry import create_nested

from .verdict import Judge, json_object

SYSTEM_PROMPT = """\
You are a fair and careful judge of answers written by AI assistants. You compare two responses \
to the same instruction. Neither the order in which the responses are shown nor their length says \
anything about their quality."""

CRITERIA = ("Decide which response does better what the instruction asks: whether it is correct, "
            "complete and helpful, and how clearly it is written.")

PROMPT = """\
Below is an instruction written in {language}, followed by two responses to it, labelled A and B.

[Instruction]
{instruction}

[Response A]
{a}

[Response B]
{b}

{criteria} The responses are meant to be written in {language}: one that is not is worse for it.

{format}"""

FORMAT = ('Reply with one JSON object and nothing else, in the form {"explanation": "<one or two '
          'sentences>", "verdict": "A"}: the verdict is "A" if response A is better, "B" if response B '
          'is better, or "tie" if neither is.')

Verdict = Literal["A", "B", "tie"]
Outcome = Literal["win", "tie", "loss"]
VALUE = {"win": 1.0, "tie": 0.5, "loss": 0.0}
ORDERS = ("model_first", "baseline_first")
PAIRS_FILE = "win_rate_pairs.jsonl"
SUMMARY_FILE = "win_rate.json"


class WinRateConfig(ComponentConfig):
    """Options of the ``win_rate`` evaluator."""

    judge: ComponentChoice = Field(description="the judge: a chat model, {name: openai | anthropic | "
                                   "transformers, options: {model, base_url, ...}}")
    baseline: PlainName = Field("sft", description="label of the model every other model is compared with")
    criteria: str = Field(CRITERIA, description="what the judge is told to compare")
    seed: int = Field(0, ge=0, description="seeds the bootstrap")
    bootstrap_resamples: int = Field(2000, ge=100, le=1_000_000, description="resamples of the bootstrap")
    confidence: float = Field(0.95, gt=0, lt=1, description="level of the bootstrap interval")
    task: PlainName = Field("win_rate", description="task name of the scores in the leaderboard")
    _judge: Any = PrivateAttr(None)

    @model_validator(mode="after")
    def _create(self, info: ValidationInfo) -> WinRateConfig:
        self._judge = create_nested("chat", self.judge, "judge", info)
        return self


@dataclass
class Pair:
    prompt: int
    sample: int
    model: str
    baseline: str
    verdicts: tuple[Verdict | None, Verdict | None] = (None, None)  # model_first, baseline_first

    @property
    def id(self) -> str:
        return f"prompt-{self.prompt:05d}/sample-{self.sample}"


def parse_pairwise(text: str) -> Verdict:
    """The verdict of a reply that is one JSON object ``{"verdict": "A" | "B" | "tie"}`` (an
    ``explanation`` string may come with it); raises VerdictError saying what is wrong."""
    data = json_object(text, keys={"verdict", "explanation"}, required={"verdict"})
    value = data["verdict"]
    allowed = {"a": "A", "b": "B", "tie": "tie"}
    if not isinstance(value, str) or value.strip().lower() not in allowed:
        raise VerdictError(f'the verdict is {json.dumps(value)}, not "A", "B" or "tie"')
    return allowed[value.strip().lower()]  # type: ignore[return-value]


def outcome(verdict: Verdict, order: str) -> Outcome:
    """A verdict read from the model's side (``order`` says where its response was shown)."""
    if verdict == "tie":
        return "tie"
    model_label = "A" if order == "model_first" else "B"
    return "win" if verdict == model_label else "loss"


def combine(first: Outcome, second: Outcome) -> Outcome:
    """The outcome of a pair judged in both orders: the verdicts agree, or it is a tie."""
    return first if first == second else "tie"


def bootstrap(items: dict[str, float], *, resamples: int, seed: int, level: float):
    """Percentile bootstrap of the mean of ``items`` (resampling items): the project's paired
    bootstrap against all-zero values, whose mean difference is the mean itself."""
    from okapi_kit.report.stats import paired_bootstrap

    return paired_bootstrap(dict.fromkeys(items, 0.0), items, resamples=resamples, seed=seed, level=level)


class WinRateEvaluator(Evaluator):
    """Win rate against a baseline model, judged pairwise in both orders by an LLM (ties allowed)."""

    name = "win_rate"
    Config = WinRateConfig
    uses_generations: ClassVar[bool] = True

    def __init__(self, config: WinRateConfig | None = None):
        super().__init__(config)
        choice = self.config.judge
        self.judge = Judge(self.config._judge, f"{choice.name}:{choice.options.get('model', '?')}")

    def baseline_label(self) -> str:
        return self.config.baseline

    def usage(self) -> dict[str, Any]:
        return self.judge.usage()

    def evaluate(self, target: EvalTarget) -> list[Score]:
        pairs = self._pairs(target)
        asked = [p for p in pairs if p.model.strip() != p.baseline.strip()]
        conversations = [self._conversation(target, p, order) for p in asked for order in ORDERS]
        got = self.judge.verdicts(conversations, parse_pairwise, FORMAT)
        for n, p in enumerate(asked):
            first, second = got[2 * n], got[2 * n + 1]
            for order, v in zip(ORDERS, (first, second)):
                if isinstance(v, Failed):
                    target.failures.append({"id": f"{p.id}/{order}", "reason": v.reason})
            p.verdicts = (None if isinstance(first, Failed) else first, None if isinstance(second, Failed) else second)
        if target.failures:
            return []  # the unit fails with these; the verdicts received are in the request cache
        return self._scores(target, pairs)

    def _pairs(self, target: EvalTarget) -> list[Pair]:
        where = f"evaluate/{target.label}/{target.language}/{self.name}"
        if not target.prompts or target.responses is None:
            raise OkapiError(f"no held-out responses in {target.language!r} to compare", where=where,
                             hint="set instructions.holdout, or supply data.eval_prompts")
        base = target.baseline_responses
        if base is None or len(base) != len(target.prompts):
            raise OkapiError(f"win_rate got no responses of the baseline {self.config.baseline!r} to the "
                             f"{len(target.prompts)} prompts", where=where)
        pairs = [Pair(i, s, m, b) for i, (ms, bs) in enumerate(zip(target.responses, base))
                 for s, (m, b) in enumerate(zip(ms, bs))]
        if not pairs:
            raise OkapiError("no pair of responses to compare", where=where)
        return pairs

    def _conversation(self, target: EvalTarget, pair: Pair, order: str) -> Messages:
        a, b = (pair.model, pair.baseline) if order == "model_first" else (pair.baseline, pair.model)
        user = PROMPT.format(language=language_name(target.language), criteria=self.config.criteria,
                             instruction=instruction_of(target.prompts[pair.prompt]), a=a.strip(), b=b.strip(),
                             format=FORMAT)
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]

    def protocol(self, target: EvalTarget, samples: int) -> str:
        cfg: WinRateConfig = self.config
        criteria = "" if cfg.criteria == CRITERIA else \
            f"; criteria {hashlib.sha256(cfg.criteria.encode()).hexdigest()[:8]}"
        return (f"pairwise judge {self.judge.label} vs {cfg.baseline}, both orders, disagreement = tie"
                f"{criteria}; {samples} sample(s) x {len(target.prompts)} prompts; "
                f"{cfg.confidence:.0%} bootstrap over prompts")

    def _scores(self, target: EvalTarget, pairs: list[Pair]) -> list[Score]:
        cfg: WinRateConfig = self.config
        outcomes: list[Outcome] = []
        for p in pairs:
            first, second = p.verdicts
            if first is None or second is None:  # identical responses: not asked
                outcomes.append("tie")
            else:
                outcomes.append(combine(outcome(first, "model_first"), outcome(second, "baseline_first")))
        per_prompt: dict[str, list[float]] = {}
        for p, o in zip(pairs, outcomes):
            per_prompt.setdefault(f"prompt-{p.prompt:05d}", []).append(VALUE[o])
        items = {k: sum(v) / len(v) for k, v in per_prompt.items()}
        counts = {o: outcomes.count(o) for o in ("win", "tie", "loss")}
        value = (counts["win"] + 0.5 * counts["tie"]) / len(pairs)
        boot = bootstrap(items, resamples=cfg.bootstrap_resamples, seed=cfg.seed, level=cfg.confidence)
        interval = (boot.low, boot.high) if boot is not None else None
        protocol = self.protocol(target, max(len(v) for v in per_prompt.values()))
        self._write(target, pairs, outcomes, counts, value, interval)
        n = len(pairs)
        return [Score(task=cfg.task, metric="win_rate", value=value, stderr=boot.se if boot else None,
                      n=len(items), protocol=protocol, items=items, interval=interval),
                *[Score(task=cfg.task, metric=metric, value=float(counts[o]), n=n, protocol=protocol)
                  for o, metric in (("win", "wins"), ("tie", "ties"), ("loss", "losses"))]]

    def _write(self, target: EvalTarget, pairs: list[Pair], outcomes: list[Outcome], counts: dict[str, int],
               value: float, interval: tuple[float, float] | None) -> None:
        work = Path(target.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        with open(work / PAIRS_FILE, "w", encoding="utf-8") as fh:
            for p, o in zip(pairs, outcomes):
                fh.write(json.dumps({"id": p.id, "model_first": p.verdicts[0], "baseline_first": p.verdicts[1],
                                     "outcome": o, "identical": p.verdicts == (None, None)},
                                    ensure_ascii=False) + "\n")
        summary = {"model": target.label, "baseline": self.config.baseline, "language": target.language,
                   "judge": self.judge.label, "pairs": len(pairs), "wins": counts["win"], "ties": counts["tie"],
                   "losses": counts["loss"], "win_rate": value, "confidence": self.config.confidence,
                   "interval": list(interval) if interval else None, "usage": self.judge.usage()}
        (work / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
