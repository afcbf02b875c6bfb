"""Direct preference optimisation (DPO, IPO) with TRL's DPOTrainer."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from okapi_kit import Trainer, TrainJob, TrainResult

from .config import TrainConfig


class DPOConfig(TrainConfig):
    """Options of the ``dpo`` trainer (defaults after Rafailov et al. 2023 / Zephyr: beta 0.1, lr 5e-7)."""

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


class DPOTrainer(Trainer):
    """Direct preference optimisation of the policy on {prompt, chosen, rejected} pairs (TRL DPOTrainer)."""

    name = "dpo"
    data: ClassVar[str] = "preference"
    produces: ClassVar[str] = "policy"
    Config = DPOConfig

    def train(self, job: TrainJob) -> TrainResult:
        import torch
        import trl
        from datasets import Dataset
        from okapi_kit_transformers.loading import load_causal_lm, load_tokenizer
        from okapi_kit_transformers.tokens import TokenRule, rule_tokenizer

        from . import common

        config: DPOConfig = self.config
        records = common.check_records(job.records, ("prompt", "chosen", "rejected"), self.name)
        tokenizer = load_tokenizer(job.model, trust_remote_code=job.trust_remote_code, padding_side="right")
        # TRL's DPOTrainer tokenizes the texts itself (it appends EOS to chosen and rejected):
        # a tokenizer that adds only what the shared rule adds makes its ids the rule's.
        rule = TokenRule.of(tokenizer)
        records = [{**r, "prompt": rule.without_start_text(r["prompt"])} for r in records]
        trl_tokenizer = rule_tokenizer(tokenizer)
        reference = job.reference_model or job.model

        def build(kwargs, callbacks):
            args = trl.DPOConfig(**kwargs, beta=config.beta, loss_type=[config.loss_type],
                                 precompute_ref_log_probs=config.precompute_ref_log_probs)
            load = dict(trust_remote_code=job.trust_remote_code, dtype=torch.float32)
            model = load_causal_lm(job.model, **load)
            ref_model = load_causal_lm(reference, **load)
            return trl.DPOTrainer(model=model, ref_model=ref_model, args=args,
                                  train_dataset=Dataset.from_list(records), processing_class=trl_tokenizer,
                                  callbacks=callbacks)

        return common.run(self.name, job, config, build, tokenizer)
