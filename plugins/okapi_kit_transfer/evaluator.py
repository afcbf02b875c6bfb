"""The ``mean_reward`` evaluator: the mean reward of a model's responses under any reward source.

With a rule (reward source ``callable``) it measures the task itself; with a reward model, how
that RM rates the model. The responses are the pipeline's held-out generations (shared by
every generation-based evaluator); each prompt is one unit (the mean of its samples).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, PrivateAttr, ValidationInfo, model_validator

from okapi_kit import ComponentConfig, EvalTarget, Evaluator, OkapiError, PlainName, Score
from okapi_kit.config import ComponentChoice
from okapi_kit.registry import create_nested


class MeanRewardConfig(ComponentConfig):
    reward: ComponentChoice = Field(description="the reward source that scores each response, {name, options}")
    task: PlainName = Field("mean_reward", description="task name of the score in the leaderboard")
    _source: Any = PrivateAttr(None)

    @model_validator(mode="after")
    def _create(self, info: ValidationInfo) -> MeanRewardConfig:
        """The reward source is looked up and its options checked with the config."""
        self._source = create_nested("reward_source", self.reward, "reward", info)
        return self


class MeanRewardEvaluator(Evaluator):
    """Mean reward of the model's responses to held-out prompts under a reward source (a rule or an RM)."""

    name = "mean_reward"
    Config = MeanRewardConfig
    uses_generations: ClassVar[bool] = True

    def evaluate(self, target: EvalTarget) -> list[Score]:
        from okapi_kit.report.stats import standard_error

        if not target.prompts or target.responses is None:
            raise OkapiError(f"no held-out responses in {target.language!r} to score", where="mean_reward")
        cfg: MeanRewardConfig = self.config
        prompts = [p for p, rs in zip(target.prompts, target.responses) for _ in rs]
        flat = [r for rs in target.responses for r in rs]
        values = cfg._source.score(prompts, flat, [target.language] * len(flat))
        items: dict[str, float] = {}
        start = 0
        for i, rs in enumerate(target.responses):
            if rs:
                items[str(i)] = sum(values[start:start + len(rs)]) / len(rs)
            start += len(rs)
        means = list(items.values())
        return [Score(task=cfg.task, metric="mean", value=sum(means) / len(means), stderr=standard_error(means),
                      n=len(means), protocol=f"mean over prompts of the mean {cfg.reward.name} reward of "
                      f"{len(flat) // max(1, len(means))} samples", items=items)]
