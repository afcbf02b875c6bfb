"""Ranker ``reward_model``: orders each prompt's K responses by a local reward model's scores."""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import Field

from okapi_kit import Failed, Ranker, RankResult
from okapi_kit.records import SampleSet

from .model_ref import ModelRef
from .reward import RewardModelConfig, RewardModelSource


class RewardModelRankerConfig(RewardModelConfig):
    """The reward source's options; ``path`` is found from the config's folder."""

    path: ModelRef = Field(description="folder or hub id of a reward model (num_labels=1)")


class RewardModelRanker(Ranker):
    """Ranks the K responses of a prompt by a sequence-classification model's score, best first.

    Scoring is the ``reward_model`` reward source's: prompt + response + EOS by the shared
    token rule (``tokens.py``), the classifier's single logit read at the end. Ties keep the
    sampling order. The scores are kept in the ranking records.
    """

    name = "reward_model"
    Config = RewardModelRankerConfig

    def __init__(self, config: RewardModelRankerConfig | None = None):
        super().__init__(config)
        self.model_name = str(self.config.path)
        self.source = RewardModelSource(RewardModelConfig(**{**self.config.model_dump(), "path": self.model_name}))
        self._counts = {"scored": 0, "failed": 0}

    def rank(self, items: Sequence[SampleSet]) -> list[list[int] | RankResult | Failed]:
        # every response of every item in one scoring call, so batches fill across items
        pairs = [(item.prompt, r, item.lang) for item in items for r in item.responses]
        scores = self.source.score(*zip(*pairs)) if pairs else []
        out: list[list[int] | RankResult | Failed] = []
        at = 0
        for item in items:
            mine = scores[at:at + len(item.responses)]
            at += len(item.responses)
            if not mine:
                out.append(Failed("the sample set has no responses to rank"))
            elif not all(math.isfinite(s) for s in mine):
                out.append(Failed(f"the reward model gave a non-finite score: {mine}"))
            else:
                order = sorted(range(len(mine)), key=lambda i: (-mine[i], i))
                out.append(RankResult(order, [float(s) for s in mine], {"ranker": "reward_model",
                                                                        "model": self.model_name}))
        self._counts["scored"] += len(scores)
        self._counts["failed"] += sum(isinstance(o, Failed) for o in out)
        return out

    def usage(self) -> dict[str, int]:
        """Responses scored and sample sets that could not be ranked (for the stage summary)."""
        return dict(self._counts)
