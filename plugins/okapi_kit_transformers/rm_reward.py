"""Evaluator ``rm_reward``: the run's reward model scores each model's held-out responses.

The figure RLHF optimises, measured on prompts it never trained on: an aligned model that
learned from the reward model should score higher than SFT. The prompt is the unit (the
mean score of its responses), so the samples of one prompt are not counted as independent.
"""

from __future__ import annotations

import math

from pydantic import Field

from okapi_kit import ComponentConfig, EvalTarget, Evaluator, OkapiError, Score


class RmRewardConfig(ComponentConfig):
    batch_size: int = Field(16, ge=1, description="(prompt, response) pairs per forward pass")
    max_length: int = Field(1024, ge=8, description="tokens kept per sequence (the start and the end)")


class RmRewardEvaluator(Evaluator):
    """Mean reward-model score of a model's responses to the held-out prompts."""

    name = "rm_reward"
    Config = RmRewardConfig
    uses_generations = True
    uses_reward_model = True

    def evaluate(self, target: EvalTarget) -> list[Score]:
        from .reward import RewardModelConfig, RewardModelSource

        if not target.responses or not target.reward_model:
            raise OkapiError(f"rm_reward needs held-out responses and a reward model for {target.language!r}",
                             where=f"evaluate/rm_reward/{target.label}/{target.language}",
                             hint="add a reward_model stage (or models.rm) and held-out prompts")
        source = RewardModelSource(RewardModelConfig(path=target.reward_model, batch_size=self.config.batch_size,
                                                     max_length=self.config.max_length))
        prompts = [p for p, rs in zip(target.prompts, target.responses) for _ in rs]
        flat = [r for rs in target.responses for r in rs]
        scores = source.score(prompts, flat, [target.language] * len(flat))
        means, at = [], 0
        for rs in target.responses:
            means.append(sum(scores[at:at + len(rs)]) / len(rs))
            at += len(rs)
        m = len(means)
        mean = sum(means) / m
        var = sum((x - mean) ** 2 for x in means) / (m - 1) if m > 1 else 0.0
        return [Score(task="rm_reward", metric="reward", value=mean, stderr=math.sqrt(var / m), n=m,
                      protocol=f"reward model score; {len(flat)} responses to {m} held-out prompts",
                      items={f"prompt-{i:05d}": x for i, x in enumerate(means)})]
