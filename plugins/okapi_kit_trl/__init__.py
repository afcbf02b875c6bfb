"""First-party plugin: SFT, K-wise reward-model, DPO, IPO and GRPO trainers built on TRL.

Importing this package is light (pydantic only): torch, transformers, trl, peft and
datasets are imported inside ``train()`` (and TRL when a config sets ``trl_args``).
"""

from __future__ import annotations

from okapi_kit import hookimpl
from okapi_kit.plugins import lazy_exports

__all__ = ["DPOConfig", "DPOTrainer", "GRPOConfig", "GRPOTrainer", "IPOConfig", "IPOTrainer", "LoraOptions",
           "RewardConfig", "RewardTrainer", "SFTConfig", "SFTTrainer", "TRLTrainConfig", "TRLTrainer"]


@hookimpl
def okapi_register_trainers(register) -> None:
    from .dpo import DPOTrainer
    from .grpo import GRPOTrainer
    from .ipo import IPOTrainer
    from .reward import RewardTrainer
    from .sft import SFTTrainer

    register(SFTTrainer)
    register(RewardTrainer)
    register(DPOTrainer)
    register(IPOTrainer)
    register(GRPOTrainer)


# Imported on first use (okapi_kit.plugins.lazy_exports).
_EXPORTS = {
    "DPOConfig": "dpo",
    "DPOTrainer": "dpo",
    "GRPOConfig": "grpo",
    "GRPOTrainer": "grpo",
    "IPOConfig": "ipo",
    "IPOTrainer": "ipo",
    "LoraOptions": "config",
    "RewardConfig": "reward",
    "RewardTrainer": "reward",
    "SFTConfig": "sft",
    "SFTTrainer": "sft",
    "TRLTrainConfig": "config",
    "TRLTrainer": "base",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
