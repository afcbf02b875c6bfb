"""First-party plugin: on-policy RL trainers (PPO, REINFORCE, RLOO, CoPG) on one rollout engine,
offline CoPG, and the ``callable`` reward source.

Importing this package is light (pydantic only): torch, transformers and peft are imported
when a trainer trains. See docs/plugins/rl.md.
"""

from __future__ import annotations

from okapi_kit import hookimpl
from okapi_kit.plugins import lazy_exports

__all__ = ["CallableReward", "CallableRewardConfig", "CoPGConfig", "CoPGTrainer", "OfflineCoPGConfig",
           "OfflineCoPGTrainer", "PPOConfig", "PPOTrainer", "RLOOConfig", "RLOOTrainer", "ReinforceConfig",
           "ReinforceTrainer"]


@hookimpl
def okapi_register_trainers(register) -> None:
    from .copg import CoPGTrainer, OfflineCoPGTrainer
    from .ppo import PPOTrainer
    from .reinforce import ReinforceTrainer
    from .rloo import RLOOTrainer

    for trainer in (PPOTrainer, ReinforceTrainer, RLOOTrainer, CoPGTrainer, OfflineCoPGTrainer):
        register(trainer)


@hookimpl
def okapi_register_reward_sources(register) -> None:
    from .rewards import CallableReward

    register(CallableReward)


# Imported on first use (okapi_kit.plugins.lazy_exports).
_EXPORTS = {
    "CallableReward": "rewards",
    "CallableRewardConfig": "rewards",
    "CoPGConfig": "config",
    "CoPGTrainer": "copg",
    "OfflineCoPGConfig": "config",
    "OfflineCoPGTrainer": "copg",
    "PPOConfig": "config",
    "PPOTrainer": "ppo",
    "RLOOConfig": "config",
    "RLOOTrainer": "rloo",
    "ReinforceConfig": "config",
    "ReinforceTrainer": "reinforce",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
