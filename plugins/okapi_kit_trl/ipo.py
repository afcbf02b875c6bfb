"""IPO (Azar et al. 2023, arXiv 2310.12036) as a trainer of its own: ``dpo`` with IPO's loss."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .dpo import DPOConfig, DPOTrainer


class IPOConfig(DPOConfig):
    """Options of the ``ipo`` trainer: those of ``dpo``, with the loss fixed to IPO's."""

    beta: float = Field(0.1, gt=0, description="tau, IPO's regularisation strength: the loss is "
                        "(h - 1/(2*tau))^2, so the target log-ratio margin is 1/(2*tau) (TRL's DPOConfig.beta "
                        "is this tau; its default, 0.1).")
    loss_type: Literal["ipo"] = Field(
        "ipo", description="Always ipo: (h - 1/(2*beta))^2, where TRL divides each log-ratio by its "
        "completion's token count (mean per-token log-ratios, as the IPO authors' code).")


class IPOTrainer(DPOTrainer):
    """Identity preference optimisation on {prompt, chosen, rejected} pairs (TRL DPOTrainer with
    ``loss_type="ipo"``); the same as ``dpo`` with ``loss_type: ipo``."""

    name = "ipo"
    Config = IPOConfig
