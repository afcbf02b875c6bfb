"""REINFORCE with a moving-average baseline (Ahmadian et al. 2024, "Back to Basics").

The whole completion is one action: R = r(x, y) - beta * log(pi(y|x) / pi_ref(y|x)), and the
loss is -mean (R - b) * log pi(y|x) with b a moving average of past batches' mean R. One
optimiser step per batch, so the policy's log-probabilities come from the training pass
itself (no extra forward pass at sampling time).
"""

from __future__ import annotations

from typing import Any

from .algorithm import Algorithm, RLTrainer, sequence_update
from .config import ReinforceConfig


class Reinforce(Algorithm):
    def __init__(self, config: ReinforceConfig):
        super().__init__(config)
        self.baseline: float | None = None

    def update(self, session, ro, kl_coef: float) -> dict[str, float]:
        # Before any update the policy is the reference (KL 0): the first baseline is the batch's mean reward.
        baseline = self.baseline if self.baseline is not None else float(ro.rewards.mean())
        stats = sequence_update(session, ro, kl_coef, lambda returns: returns - baseline)
        return {**stats, "baseline": baseline}

    def finish_step(self, stats: dict[str, float]) -> None:
        from .losses import update_baseline

        self.baseline = update_baseline(self.baseline, stats["return"], self.config.baseline_decay)

    def state_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.baseline = state.get("baseline")


class ReinforceTrainer(RLTrainer):
    """REINFORCE with a moving-average baseline and a KL-penalised sequence reward (Ahmadian et al. 2024)."""

    name = "reinforce"
    Config = ReinforceConfig

    def algorithm(self) -> Reinforce:
        return Reinforce(self.config)
