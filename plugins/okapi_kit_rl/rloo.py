"""REINFORCE leave-one-out, RLOO (Ahmadian et al. 2024, "Back to Basics").

k completions per prompt; each one's advantage is its KL-penalised sequence reward minus
the mean of the other k-1: A_i = R_i - 1/(k-1) sum_{j != i} R_j, and the loss is
-1/k sum_i A_i log pi(y_i|x). The k samples of a prompt share a micro-batch, and one
optimiser step per batch takes the policy's log-probabilities from the training pass.
"""

from __future__ import annotations

from .algorithm import Algorithm, RLTrainer, sequence_update
from .config import RLOOConfig


class RLOO(Algorithm):
    def __init__(self, config: RLOOConfig):
        super().__init__(config)
        self.k = config.k

    def update(self, session, ro, kl_coef: float) -> dict[str, float]:
        from .losses import rloo_advantages

        return sequence_update(session, ro, kl_coef, lambda returns: rloo_advantages(returns, self.k), group=self.k)


class RLOOTrainer(RLTrainer):
    """RLOO: k samples per prompt, each baselined by the mean reward of the others (Ahmadian et al. 2024)."""

    name = "rloo"
    Config = RLOOConfig

    def algorithm(self) -> RLOO:
        return RLOO(self.config)
