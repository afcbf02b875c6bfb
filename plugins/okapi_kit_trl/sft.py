"""Supervised fine-tuning on prompt-completion records with TRL's SFTTrainer."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from okapi_kit import Trainer, TrainJob, TrainResult

from .config import TrainConfig


class SFTConfig(TrainConfig):
    """Options of the ``sft`` trainer (defaults follow Alpaca/Okapi: 3 epochs at 2e-5, cosine)."""

    completion_only_loss: bool = Field(
        True, description="Compute the loss on the completion tokens only (False: on prompt and completion).")
    packing: bool = Field(
        False, description="Pack several records into each max_length sequence (faster; needs a "
        "padding-free attention implementation such as flash-attention to keep records apart).")


class SFTTrainer(Trainer):
    """Supervised fine-tuning on {prompt, completion} records (TRL SFTTrainer)."""

    name = "sft"
    data: ClassVar[str] = "sft"
    produces: ClassVar[str] = "policy"
    Config = SFTConfig

    def train(self, job: TrainJob) -> TrainResult:
        import torch
        import trl
        from okapi_kit_transformers.loading import load_causal_lm, load_tokenizer
        from okapi_kit_transformers.tokens import TokenRule

        from . import common

        config: SFTConfig = self.config
        records = common.check_records(job.records, ("prompt", "completion"), self.name)
        tokenizer = load_tokenizer(job.model, trust_remote_code=job.trust_remote_code, padding_side="right")
        dataset = sft_dataset(TokenRule.of(tokenizer), records)

        def build(kwargs, callbacks):
            args = trl.SFTConfig(**kwargs, completion_only_loss=config.completion_only_loss,
                                 packing=config.packing)
            model = load_causal_lm(job.model, trust_remote_code=job.trust_remote_code, dtype=torch.float32)
            return trl.SFTTrainer(model=model, args=args, train_dataset=dataset,
                                  processing_class=tokenizer, callbacks=callbacks)

        return common.run(self.name, job, config, build, tokenizer)


def sft_dataset(rule, records: list[dict[str, str]]):
    """Records tokenized by the shared token rule, in the form TRL takes as already processed:
    ``input_ids`` = BOS? + prompt + completion + EOS, ``completion_mask`` 1 on the completion."""
    from datasets import Dataset

    rows = []
    for rec in records:
        head, tail = rule.split(rec["prompt"], rec["completion"])
        rows.append({"input_ids": head + tail, "completion_mask": [0] * len(head) + [1] * len(tail)})
    return Dataset.from_list(rows)
