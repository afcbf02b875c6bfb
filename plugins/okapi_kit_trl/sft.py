"""Supervised fine-tuning on prompt-completion records with TRL's SFTTrainer."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from okapi_kit import TrainJob

from .base import TRLTrainer
from .config import TRLTrainConfig


class SFTConfig(TRLTrainConfig):
    """Options of the ``sft`` trainer (defaults follow Alpaca/Okapi: 3 epochs at 2e-5, cosine)."""

    trl_config: ClassVar[str] = "trl:SFTConfig"
    own_args: ClassVar[dict[str, str]] = {"completion_only_loss": "completion_only_loss", "packing": "packing"}

    completion_only_loss: bool = Field(
        True, description="Compute the loss on the completion tokens only (False: on prompt and completion).")
    packing: bool = Field(
        False, description="Pack several records into each max_length sequence (faster; needs a "
        "padding-free attention implementation such as flash-attention to keep records apart).")


class SFTTrainer(TRLTrainer):
    """Supervised fine-tuning on {prompt, completion} records (TRL SFTTrainer)."""

    name = "sft"
    data: ClassVar[str] = "sft"
    produces: ClassVar[str] = "policy"
    Config = SFTConfig
    record_keys = ("prompt", "completion")

    def datasets(self, records, rule, job: TrainJob):
        return sft_dataset(rule, records), None

    def method_args(self, job: TrainJob) -> dict[str, Any]:
        return {"completion_only_loss": self.config.completion_only_loss, "packing": self.config.packing}

    def build(self, *, job, args, model, train_set, held_out, tokenizer, peft_config, callbacks):
        import trl

        return trl.SFTTrainer(model=model, args=args, train_dataset=train_set, processing_class=tokenizer,
                              callbacks=callbacks, peft_config=peft_config)


def sft_dataset(rule, records: list[dict[str, str]]):
    """Records tokenized by the shared token rule, in the form TRL takes as already processed:
    ``input_ids`` = BOS? + prompt + completion + EOS, ``completion_mask`` 1 on the completion."""
    from datasets import Dataset

    rows = []
    for rec in records:
        head, tail = rule.split(rec["prompt"], rec["completion"])
        rows.append({"input_ids": head + tail, "completion_mask": [0] * len(head) + [1] * len(tail)})
    return Dataset.from_list(rows)
