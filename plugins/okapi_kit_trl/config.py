"""Options shared by the TRL trainers (light: pydantic only, no torch)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from okapi_kit import ComponentConfig

# The transformers schedulers the trainers can run.
USABLE_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant",
                     "constant_with_warmup", "inverse_sqrt")
# Every name of transformers.SchedulerType, written out so that this module stays torch-free
# (a test keeps it equal to transformers' list). The ones not usable need an evaluation set
# (reduce_lr_on_plateau, greedy) or scheduler arguments (min_lr, num_decay_steps) that
# okapi-kit does not pass.
SCHEDULERS = (*USABLE_SCHEDULERS, "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr",
              "warmup_stable_decay", "greedy")


class TrainConfig(ComponentConfig):
    """Optimisation, batching, checkpointing and device options common to every TRL trainer."""

    learning_rate: float = Field(2e-5, gt=0, description="Peak learning rate of AdamW.")
    num_epochs: float = Field(3.0, gt=0, description="Passes over the training records (ignored when max_steps is set).")
    max_steps: int | None = Field(None, gt=0, description="Stop after this many optimiser steps; overrides num_epochs.")
    batch_size: int = Field(4, ge=1, description="Records per device per forward pass.")
    gradient_accumulation_steps: int = Field(
        4, ge=1, description="Forward passes per optimiser step (effective batch = batch_size x this x devices).")
    max_length: int = Field(512, ge=8, description="Longest tokenized sequence, prompt plus completion, in tokens.")
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="Share of the steps spent warming the learning rate up from 0.")
    lr_scheduler: str = Field("cosine", description="Learning-rate schedule after warm-up: "
                              + ", ".join(USABLE_SCHEDULERS) + ".")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    save_steps: int = Field(500, ge=1, description="Write a resumable checkpoint into the work folder every this many steps.")
    save_total_limit: int | None = Field(2, ge=1, description="Keep at most this many checkpoints (None keeps all).")
    logging_steps: int = Field(10, ge=1, description="Append a metrics line to metrics.jsonl every this many steps.")
    gradient_checkpointing: bool = Field(
        True, description="Recompute activations in the backward pass: less memory, about 20% slower.")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto", description="Mixed precision; auto is bf16 on a GPU that supports it, else fp32.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where to train; auto takes CUDA when present.")

    @field_validator("lr_scheduler")
    @classmethod
    def _known_scheduler(cls, value: str) -> str:
        from okapi_kit.errors import did_you_mean

        if value in USABLE_SCHEDULERS:
            return value
        choices = f"choose one of {', '.join(USABLE_SCHEDULERS)}"
        if value in SCHEDULERS:
            raise ValueError("this schedule needs an evaluation set or scheduler arguments that "
                             f"okapi-kit's trainers do not take; {choices}")
        hint = did_you_mean(value, USABLE_SCHEDULERS)
        raise ValueError("unknown learning-rate scheduler; "
                         + (hint if hint.startswith("did you mean") else choices))
