"""First-party plugin: SFT, reward-model and DPO trainers built on TRL.

Importing this package is light (pydantic only): torch, transformers, trl and datasets
are imported inside ``train()``.
"""

from __future__ import annotations

from okapi_kit import hookimpl

from .dpo import DPOConfig, DPOTrainer
from .reward import RewardConfig, RewardTrainer
from .sft import SFTConfig, SFTTrainer

__all__ = ["DPOConfig", "DPOTrainer", "RewardConfig", "RewardTrainer", "SFTConfig", "SFTTrainer"]


@hookimpl
def okapi_register_trainers(register) -> None:
    register(SFTTrainer)
    register(RewardTrainer)
    register(DPOTrainer)
