"""REINFORCE leave-one-out, RLOO (Ahmadian et al. 2024, "Back to Basics").

k completions per prompt; each one's advantage is its KL-penalised sequence reward minus
the mean of the other k-1: A_i = R_i - 1/(k-1) sum_{j != i} R_j, and the loss is
-1/k sum_i A_i log pi(y_i|x). The k samples of a prompt share a micro-batch, and one
optimiser step per batch takes the policy's log-probabilities from the training pass.
"""

from __future__ import annotations

from .algorithm import Algorithm, RLTrainer
from .config import RLOOConfig


class RLOO(Algorithm):
    def __init__(self, config: RLOOConfig):
        super().__init__(config)
        self.k = config.k

    def update(self, session, ro, kl_coef: float) -> dict[str, float]:
        import torch

        from .engine import micro_rollouts, sequence_logprobs
        from .losses import policy_gradient_loss, rloo_advantages, sequence_rewards

        n = len(ro)
        kls, returns, loss_total = [], [], 0.0
        for last, _, sub in micro_rollouts(session, ro, range(n), group=self.k):
            with session.accumulate(last):
                logps, _ = session.forward(sub.input_ids, sub.attention_mask, sub.width)
                logp = sequence_logprobs(logps, sub.response_mask)
                ref = sequence_logprobs(sub.ref_logprobs, sub.response_mask)
                reward = sequence_rewards(sub.rewards, logp.detach(), ref, kl_coef)
                loss = policy_gradient_loss(logp, rloo_advantages(reward, self.k), denominator=n)
                session.backward(loss)
            kls.append(logp.detach() - ref)
            returns.append(reward)
            loss_total += loss.item()
        grad_norm = session.update()
        kl, ret = torch.cat(kls), torch.cat(returns)
        return {"kl": float(kl.mean()), "return": float(ret.mean()), "loss": loss_total, "grad_norm": grad_norm}


class RLOOTrainer(RLTrainer):
    """RLOO: k samples per prompt, each baselined by the mean reward of the others (Ahmadian et al. 2024)."""

    name = "rloo"
    Config = RLOOConfig

    def algorithm(self) -> RLOO:
        return RLOO(self.config)
