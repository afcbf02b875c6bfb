"""Direct preference optimisation (DPO, IPO) with TRL's DPOTrainer."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from okapi_kit import TrainJob

from .base import TRLTrainer
from .config import TRLTrainConfig


class DPOConfig(TRLTrainConfig):
    """Options of the ``dpo`` trainer (defaults after Rafailov et al. 2023 / Zephyr: beta 0.1, lr 5e-7)."""

    trl_config: ClassVar[str] = "trl:DPOConfig"
    own_args: ClassVar[dict[str, str]] = {"beta": "beta", "loss_type": "loss_type",
                                          "precompute_ref_log_probs": "precompute_ref_log_probs"}

    learning_rate: float = Field(5e-7, gt=0, description="Peak learning rate of AdamW.")
    num_epochs: float = Field(1.0, gt=0, description="Passes over the pairs; ignored when max_steps is set.")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Share of the steps spent warming the learning rate up from 0.")
    beta: float = Field(0.1, gt=0, description="DPO: the KL strength beta in -log sigma(beta*h). IPO: tau, "
                        "the target margin being 1/(2*tau).")
    loss_type: Literal["sigmoid", "ipo"] = Field(
        "sigmoid", description="sigmoid: the DPO loss. ipo: (h - 1/(2*beta))^2, where TRL divides each "
        "log-ratio by its completion's token count (mean per-token log-ratios, not sums).")
    precompute_ref_log_probs: bool = Field(
        False, description="Score the pairs under the reference once before training, then free it: "
        "saves memory and time per step, costs one pass over the data first.")


class DPOTrainer(TRLTrainer):
    """Direct preference optimisation of the policy on {prompt, chosen, rejected} pairs (TRL DPOTrainer).

    The reference is ``job.reference_model`` (default: the job's model). With LoRA and the job's
    model as reference, no second copy is loaded: the reference is the policy with its adapter
    disabled.
    """

    name = "dpo"
    data: ClassVar[str] = "preference"
    produces: ClassVar[str] = "policy"
    Config = DPOConfig
    record_keys = ("prompt", "chosen", "rejected")

    def datasets(self, records, rule, job: TrainJob):
        from datasets import Dataset

        # TRL's DPOTrainer tokenizes the texts itself (it appends EOS to chosen and rejected):
        # with the rule's tokenizer (see build) and no START written out, its ids are the rule's.
        return Dataset.from_list([{**r, "prompt": rule.without_start_text(r["prompt"])} for r in records]), None

    def method_args(self, job: TrainJob) -> dict[str, Any]:
        c = self.config
        return {"beta": c.beta, "loss_type": [c.loss_type], "precompute_ref_log_probs": c.precompute_ref_log_probs}

    def build(self, *, job, args, model, train_set, held_out, tokenizer, peft_config, callbacks):
        import trl
        from okapi_kit_transformers.tokens import rule_tokenizer

        from . import models

        reference = job.reference_model or job.model
        if peft_config is not None and same_model(reference, job.model):
            ref_model = None  # TRL disables the adapter to compute the reference log-probs
        else:
            ref_model = models.load(reference, models.CAUSAL_LM, self.config, trust_remote_code=job.trust_remote_code)
        return trl.DPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=train_set,
                              processing_class=rule_tokenizer(tokenizer), callbacks=callbacks,
                              peft_config=peft_config)


def same_model(a: str, b: str) -> bool:
    """Whether two model names are the same folder (or the same hub id)."""
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    if pa.exists() and pb.exists():
        return pa.resolve() == pb.resolve()
    return a == b
