"""The interface between the shared RL loop (``engine.py``) and one policy-optimisation method.

Light (no torch at import): the trainer modules subclass it at import time and import
torch inside their methods.
"""

from __future__ import annotations

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
