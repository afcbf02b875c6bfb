"""First-party plugin: on-policy RL trainers (PPO, REINFORCE, RLOO, CoPG) on one rollout engine,
offline CoPG, and the ``callable`` reward source.

Importing this package is light (pydantic only): torch, transformers and peft are imported
when a trainer trains. See docs/plugins/rl.md.
"""

from __future__ import annotations

from okapi_kit import hookimpl

from .config import CoPGConfig, OfflineCoPGConfig, PPOConfig, ReinforceConfig, RLOOConfig
from .copg import CoPGTrainer, OfflineCoPGTrainer
from .ppo import PPOTrainer
from .reinforce import ReinforceTrainer
from .rewards import CallableReward, CallableRewardConfig
from .rloo import RLOOTrainer

__all__ = ["CallableReward", "CallableRewardConfig", "CoPGConfig", "CoPGTrainer", "OfflineCoPGConfig",
           "OfflineCoPGTrainer", "PPOConfig", "PPOTrainer", "RLOOConfig", "RLOOTrainer", "ReinforceConfig",
           "ReinforceTrainer"]


@hookimpl
def okapi_register_trainers(register) -> None:
    for trainer in (PPOTrainer, ReinforceTrainer, RLOOTrainer, CoPGTrainer, OfflineCoPGTrainer):
        register(trainer)


@hookimpl
def okapi_register_reward_sources(register) -> None:
    register(CallableReward)
