"""Options shared by the TRL trainers (light: pydantic only, no torch)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from okapi_kit_transformers.options import Dtype
from pydantic import BeforeValidator, Field, field_validator

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


# Training arguments okapi-kit sets from its own options: trl_args may not set them (the
# option is the one place to change them). Values are the option's name, for the message.
SHARED_ARGS = {
    "learning_rate": "learning_rate", "num_train_epochs": "num_epochs", "max_steps": "max_steps",
    "per_device_train_batch_size": "batch_size", "gradient_accumulation_steps": "gradient_accumulation_steps",
    "max_length": "max_length", "warmup_steps": "warmup_ratio", "warmup_ratio": "warmup_ratio",
    "lr_scheduler_type": "lr_scheduler", "weight_decay": "weight_decay", "max_grad_norm": "max_grad_norm",
    "save_steps": "save_steps", "save_total_limit": "save_total_limit", "logging_steps": "logging_steps",
    "gradient_checkpointing": "gradient_checkpointing", "activation_checkpointing": "gradient_checkpointing",
    "bf16": "precision", "fp16": "precision", "use_cpu": "device",
    "model_init_kwargs": "dtype and attn_implementation",
}
# Training arguments that belong to the job or to okapi-kit's checkpointing, never to options.
RESERVED_ARGS = {
    "output_dir": "checkpoints go to the job's work folder", "seed": "the run's seed is used",
    "data_seed": "the run's seed is used", "trust_remote_code": "set trust_remote_code in the config",
    "save_strategy": "okapi-kit checkpoints every save_steps", "logging_strategy": "okapi-kit logs every logging_steps",
    "resume_from_checkpoint": "okapi-kit resumes from the work folder by itself",
}


class LoraOptions(ComponentConfig):
    """A LoRA adapter (Hu et al. 2021) trained instead of the full weights, merged into the saved model."""

    r: int = Field(16, ge=1, description="Rank of the low-rank update.")
    alpha: float = Field(32.0, gt=0, description="Scale: the update is multiplied by alpha / r.")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the adapter's input.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="Module names to adapt (e.g. [q_proj, v_proj]); all-linear: every linear "
        "layer but the output head (QLoRA, Dettmers et al. 2023).")


def _lora(value: Any) -> Any:
    """``lora: true`` takes the defaults; ``false`` or null trains the full weights."""
    if value is True:
        return {}
    if value is False:
        return None
    return value


class TRLTrainConfig(TrainConfig):
    """Options of a trainer built on a TRL (or transformers) trainer: :class:`TrainConfig`, model
    loading, LoRA and ``trl_args``. ``trl_config`` names the arguments class ``trl_args`` go to,
    ``own_args`` the arguments this trainer's options set (name: option)."""

    trl_config: ClassVar[str] = "transformers:TrainingArguments"
    own_args: ClassVar[dict[str, str]] = {}

    dtype: Dtype = Field("float32", description="Weights' dtype when loading: float32 (master weights for "
                         "mixed precision), bfloat16 or float16 (half the memory), auto (as saved).")
    attn_implementation: str | None = Field(
        None, min_length=1, description="Attention kernel: eager, sdpa, flash_attention_2, ... "
        "(None: transformers' choice).")
    lora: Annotated[LoraOptions | None, BeforeValidator(_lora)] = Field(
        None, description="Train a LoRA adapter instead of all weights (true for the defaults, or its "
        "options); the saved model has the adapter merged in.")
    trl_args: dict[str, Any] = Field(
        default_factory=dict, description="Further fields of the trainer's TRL config (transformers' "
        "TrainingArguments for reward), passed as they are; names are checked when the config is validated.")

    @field_validator("trl_args")
    @classmethod
    def _known_args(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            return value
        names = config_fields(cls.trl_config)
        owned = {**SHARED_ARGS, **cls.own_args}
        problems = []
        for key in value:
            if key in owned:
                problems.append(f"{key!r} is set by the option {owned[key]}; set that instead")
            elif key in RESERVED_ARGS:
                problems.append(f"{key!r} cannot be set: {RESERVED_ARGS[key]}")
            elif key not in names:
                problems.append(f"{key!r} is not a field of {cls.trl_config.replace(':', '.')}"
                                + _suggest(key, names, owned))
        if problems:
            raise ValueError("; ".join(problems))
        return value


def _suggest(key: str, names: set[str], owned: dict[str, str]) -> str:
    """``; did you mean ...?`` naming close fields, or the option that sets a close field."""
    import difflib

    close = difflib.get_close_matches(key, sorted(names | set(owned)), n=3, cutoff=0.6)
    said = list(dict.fromkeys(f"the option {owned[c]}" if c in owned else repr(c) for c in close))
    return f"; did you mean {' or '.join(said)}?" if said else ""


def config_fields(spec: str) -> set[str]:
    """Field names of the arguments dataclass ``module:Class`` (imports TRL or transformers)."""
    import dataclasses
    import importlib

    module, name = spec.split(":")
    return {f.name for f in dataclasses.fields(getattr(importlib.import_module(module), name)) if f.init}
