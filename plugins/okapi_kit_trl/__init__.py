"""First-party plugin: SFT, K-wise reward-model, DPO, IPO and GRPO trainers built on TRL.

Importing this package is light (pydantic only): torch, transformers, trl, peft and
datasets are imported inside ``train()`` (and TRL when a config sets ``trl_args``).
"""

from __future__ import annotations

from okapi_kit import hookimpl

from .base import TRLTrainer
from .config import LoraOptions, TRLTrainConfig
from .dpo import DPOConfig, DPOTrainer
from .grpo import GRPOConfig, GRPOTrainer
from .ipo import IPOConfig, IPOTrainer
from .reward import RewardConfig, RewardTrainer
from .sft import SFTConfig, SFTTrainer

__all__ = ["DPOConfig", "DPOTrainer", "GRPOConfig", "GRPOTrainer", "IPOConfig", "IPOTrainer", "LoraOptions",
           "RewardConfig", "RewardTrainer", "SFTConfig", "SFTTrainer", "TRLTrainConfig", "TRLTrainer"]


@hookimpl
def okapi_register_trainers(register) -> None:
    register(SFTTrainer)
    register(RewardTrainer)
    register(DPOTrainer)
    register(IPOTrainer)
    register(GRPOTrainer)
