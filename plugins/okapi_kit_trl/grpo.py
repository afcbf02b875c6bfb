"""Group relative policy optimisation (GRPO, Shao et al. 2024) with TRL's GRPOTrainer.

The job's reward source scores the sampled completions: it is handed to TRL as a reward
function with TRL's signature ``f(prompts, completions, **kwargs) -> list[float]``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from okapi_kit import OkapiError, RewardSource, TrainJob

from .base import TRLTrainer
from .config import TRLTrainConfig


class GRPOConfig(TRLTrainConfig):
    """Options of the ``grpo`` trainer. Defaults follow DeepSeekMath (Shao et al. 2024: lr 1e-6,
    KL 0.04) and TRL (8 completions per prompt, temperature 1); the rest of TRL's GRPOConfig
    (loss_type, epsilon, scale_rewards, num_iterations, ...) is reachable through ``trl_args``."""

    trl_config: ClassVar[str] = "trl:GRPOConfig"
    own_args: ClassVar[dict[str, str]] = {
        "num_generations": "num_generations", "max_completion_length": "max_completion_length",
        "temperature": "temperature", "beta": "beta"}

    learning_rate: float = Field(1e-6, gt=0, description="Peak learning rate of AdamW.")
    num_epochs: float = Field(1.0, gt=0, description="Passes over the prompts; ignored when max_steps is set.")
    batch_size: int = Field(8, ge=1, description="Completions (not prompts) per device per forward pass.")
    max_length: int = Field(768, ge=8, description="Longest prompt plus completion in tokens; prompts longer "
                            "than max_length - max_completion_length are left out.")
    num_generations: int = Field(8, ge=2, description="Completions sampled per prompt; each one's advantage "
                                 "is its reward against the group's mean (and spread).")
    max_completion_length: int = Field(256, ge=1, description="Most tokens sampled per completion.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the completions.")
    beta: float = Field(0.04, ge=0, description="Weight of the KL penalty to the reference (the starting "
                        "policy; with LoRA the policy with its adapter disabled); 0: no reference model.")

    @model_validator(mode="after")
    def _groups_fit(self) -> GRPOConfig:
        if self.max_completion_length >= self.max_length:
            raise ValueError(f"max_length ({self.max_length}) leaves no room for a prompt before "
                             f"max_completion_length ({self.max_completion_length}) tokens")
        if {"generation_batch_size", "steps_per_generation"} & set(self.trl_args):
            return self  # TRL checks its own batch sizes
        per_step = self.batch_size * self.gradient_accumulation_steps
        if per_step % self.num_generations:
            raise ValueError(f"batch_size x gradient_accumulation_steps ({per_step}) completions per step "
                             f"must be a multiple of num_generations ({self.num_generations})")
        return self


class GRPOTrainer(TRLTrainer):
    """GRPO on {prompt, language?} records, rewarded by the job's reward source (TRL GRPOTrainer)."""

    name = "grpo"
    data: ClassVar[str] = "prompts"
    produces: ClassVar[str] = "policy"
    Config = GRPOConfig
    record_keys = ("prompt",)

    def check(self, job: TrainJob) -> list[dict[str, Any]]:
        if job.reward is None:
            raise OkapiError("trainer 'grpo' needs a reward source", where="trainer grpo",
                             hint="give a reward model (or module:function) as the alignment's reward")
        if job.reference_model and self.config.beta > 0:
            from .dpo import same_model

            if not same_model(job.reference_model, job.model):
                raise OkapiError("trainer 'grpo' takes its starting policy as the reference; "
                                 f"{job.reference_model!r} is another model", where="trainer grpo",
                                 hint="train from the reference model, or set beta: 0")
        default = job.languages[0] if len(job.languages) == 1 else ""
        checked = super().check(job)
        out = []
        for i, (rec, kept) in enumerate(zip(job.records, checked)):
            language = rec.get("language", default)
            if not isinstance(language, str):
                raise OkapiError(f"record {i} has a language that is not a string", where="trainer grpo")
            out.append({**kept, "language": language})
        return out

    def datasets(self, records, rule, job: TrainJob):
        from datasets import Dataset

        from . import common

        room = self.config.max_length - self.config.max_completion_length
        # TRL tokenizes the prompts itself, with the rule's tokenizer (see build): no START written out
        rows = [{**r, "prompt": rule.without_start_text(r["prompt"])} for r in records
                if len(rule.prompt(r["prompt"])) <= room]
        if not rows:
            raise OkapiError(f"every prompt is longer than max_length - max_completion_length = {room} tokens",
                             where="trainer grpo", hint="raise max_length")
        if len(rows) < len(records):
            common.log.warning("grpo: %d of %d prompts are longer than %d tokens and are left out",
                               len(records) - len(rows), len(records), room)
        return Dataset.from_list(rows), None

    def method_args(self, job: TrainJob) -> dict[str, Any]:
        c = self.config
        return {"num_generations": c.num_generations, "max_completion_length": c.max_completion_length,
                "temperature": c.temperature, "beta": c.beta}

    def build(self, *, job, args, model, train_set, held_out, tokenizer, peft_config, callbacks):
        import trl
        from okapi_kit_transformers.tokens import rule_tokenizer

        return trl.GRPOTrainer(model=model, reward_funcs=[reward_function(job.reward)], args=args,
                               train_dataset=train_set, processing_class=rule_tokenizer(tokenizer),
                               callbacks=callbacks, peft_config=peft_config)


def reward_function(source: RewardSource):
    """``source`` as a TRL reward function; TRL passes the records' ``language`` column."""

    def reward(prompts, completions, language=None, **kwargs) -> list[float]:
        languages = list(language) if language is not None else [""] * len(prompts)
        return [float(x) for x in source.score(list(prompts), list(completions), languages)]

    reward.__name__ = source.name or "reward"  # TRL logs rewards/<name>/mean
    return reward
