"""The interface between the shared RL loop (``engine.py``) and one policy-optimisation method.

Light (no torch at import): the trainer modules subclass it at import time and import
torch inside their methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from okapi_kit import Trainer, TrainJob, TrainResult


class Algorithm:
    """One method on top of the rollout engine: how a batch of samples updates the policy."""

    k: int = 1  # completions sampled per prompt (next to each other in a batch)
    needs_policy: ClassVar[bool] = False  # the policy's log-probs at sampling time (several updates per batch)
    values: str | None = None  # "head" or "reward_model" when the method learns a value function
    critic_model: str | None = None

    def __init__(self, config: Any):
        self.config = config

    def updates_per_step(self, batch: int) -> int:
        """Optimiser steps per rollout batch of ``batch`` sequences."""
        return 1

    def update(self, session: Any, ro: Any, kl_coef: float) -> dict[str, float]:
        """Learn from one rollout batch; return the step's metrics (at least ``kl``)."""
        raise NotImplementedError

    def finish_step(self, stats: dict[str, float]) -> None:
        """Called with the step's metrics averaged over processes (e.g. to move a baseline)."""

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must keep of this method (a baseline ...), JSON data."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""


def sequence_update(session: Any, ro: Any, kl_coef: float, advantages: Callable[[Any], Any],
                    group: int = 1) -> dict[str, float]:
    """One optimiser step of the REINFORCE family on a rollout batch: each completion is one
    action whose return is its KL-penalised sequence reward, ``advantages`` turns a micro-batch's
    returns into advantages (minus a baseline), and the loss is -mean A * log pi(y|x). The
    policy's log-probabilities come from this training pass (no extra forward pass).
    ``group``: completions that must share a micro-batch (RLOO's k samples of a prompt)."""
    import torch

    from .engine import micro_rollouts, sequence_logprobs
    from .losses import policy_gradient_loss, sequence_rewards

    n = len(ro)
    kls, returns, loss_total = [], [], 0.0
    for last, _, sub in micro_rollouts(session, ro, range(n), group=group):
        with session.accumulate(last):
            logps, _ = session.forward(sub.input_ids, sub.attention_mask, sub.width)
            logp = sequence_logprobs(logps, sub.response_mask)
            ref = sequence_logprobs(sub.ref_logprobs, sub.response_mask)
            reward = sequence_rewards(sub.rewards, logp.detach(), ref, kl_coef)
            loss = policy_gradient_loss(logp, advantages(reward), denominator=n)
            session.backward(loss)
        kls.append(logp.detach() - ref)
        returns.append(reward)
        loss_total += loss.item()
    grad_norm = session.update()
    kl, ret = torch.cat(kls), torch.cat(returns)
    return {"kl": float(kl.mean()), "return": float(ret.mean()), "loss": loss_total, "grad_norm": grad_norm}


class RLTrainer(Trainer):
    """An online RL trainer: samples completions of ``{"prompt"}`` records and learns from
    ``job.reward``'s scores with the method that :meth:`algorithm` returns."""

    data: ClassVar[str] = "prompts"
    produces: ClassVar[str] = "policy"

    def algorithm(self) -> Algorithm:
        raise NotImplementedError

    def train(self, job: TrainJob) -> TrainResult:
        from .engine import train_online

        return train_online(self.name, job, self.config, self.algorithm())
