"""REINFORCE with a moving-average baseline (Ahmadian et al. 2024, "Back to Basics").

The whole completion is one action: R = r(x, y) - beta * log(pi(y|x) / pi_ref(y|x)), and the
loss is -mean (R - b) * log pi(y|x) with b a moving average of past batches' mean R. One
optimiser step per batch, so the policy's log-probabilities come from the training pass
itself (no extra forward pass at sampling time).
"""

from __future__ import annotations

from typing import Any

from .algorithm import Algorithm, RLTrainer
from .config import ReinforceConfig


class Reinforce(Algorithm):
    def __init__(self, config: ReinforceConfig):
        super().__init__(config)
        self.baseline: float | None = None

    def update(self, session, ro, kl_coef: float) -> dict[str, float]:
        import torch

        from .engine import micro_rollouts, sequence_logprobs
        from .losses import policy_gradient_loss, sequence_rewards

        n = len(ro)
        # Before any update the policy is the reference (KL 0): the first baseline is the batch's mean reward.
        baseline = self.baseline if self.baseline is not None else float(ro.rewards.mean())
        kls, returns, loss_total = [], [], 0.0
        for last, _, sub in micro_rollouts(session, ro, range(n)):
            with session.accumulate(last):
                logps, _ = session.forward(sub.input_ids, sub.attention_mask, sub.width)
                logp = sequence_logprobs(logps, sub.response_mask)
                ref = sequence_logprobs(sub.ref_logprobs, sub.response_mask)
                reward = sequence_rewards(sub.rewards, logp.detach(), ref, kl_coef)
                loss = policy_gradient_loss(logp, reward - baseline, denominator=n)
                session.backward(loss)
            kls.append(logp.detach() - ref)
            returns.append(reward)
            loss_total += loss.item()
        grad_norm = session.update()
        kl, ret = torch.cat(kls), torch.cat(returns)
        return {"kl": float(kl.mean()), "return": float(ret.mean()), "baseline": baseline,
                "loss": loss_total, "grad_norm": grad_norm}

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
