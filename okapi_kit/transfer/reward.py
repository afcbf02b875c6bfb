"""A reward model of one language, read through a transfer method: what an online-RL trainer
gets as ``job.reward`` when its alignment says ``reward: {from: en}``."""

from __future__ import annotations

from collections.abc import Sequence

from ..components import RewardSource, TransferMethod


class TransferredReward(RewardSource):
    """``score(prompts, responses, languages)`` of ``reward`` (trained in ``rm_language``) through
    ``method``: the interface of every reward source, so trainers need not know about transfer."""

    name = "transferred"

    def __init__(self, reward: RewardSource, method: TransferMethod, rm_language: str):
        super().__init__()
        self.reward, self.method, self.rm_language = reward, method, rm_language

    def score(self, prompts: Sequence[str], responses: Sequence[str], languages: Sequence[str]) -> list[float]:
        return self.method.score(self.reward, prompts, responses, rm_language=self.rm_language,
                                 languages=languages)
