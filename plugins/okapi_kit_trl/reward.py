"""Reward-model training on preference pairs with TRL's RewardTrainer (Bradley-Terry)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from okapi_kit import OkapiError, Trainer, TrainJob, TrainResult

from .config import TrainConfig


class RewardConfig(TrainConfig):
    """Options of the ``reward`` trainer (Okapi: 2 epochs over the pairs)."""

    learning_rate: float = Field(1e-5, gt=0, description="Peak learning rate of AdamW.")
    num_epochs: float = Field(2.0, gt=0, description="Passes over the pairs (Okapi: 2); ignored when max_steps is set.")
    center_rewards_coefficient: float | None = Field(
        None, ge=0, description="Weight of a penalty on the squared mean reward, pulling rewards "
        "towards zero (Eisenstein et al. 2023 use 0.01); None: no penalty.")


class RewardTrainer(Trainer):
    """Reward model on {prompt, chosen, rejected} pairs (TRL RewardTrainer, Bradley-Terry loss)."""

    name = "reward"
    data: ClassVar[str] = "preference"
    produces: ClassVar[str] = "reward_model"
    Config = RewardConfig

    def train(self, job: TrainJob) -> TrainResult:
        import torch
        import trl
        from datasets import Dataset
        from okapi_kit_transformers.loading import load_sequence_classifier, load_tokenizer
        from okapi_kit_transformers.tokens import TokenRule

        from . import common

        config: RewardConfig = self.config
        records = common.check_records(job.records, ("prompt", "chosen", "rejected"), self.name)
        tokenizer = load_tokenizer(job.model, trust_remote_code=job.trust_remote_code, padding_side="right")
        rule = TokenRule.of(tokenizer)
        # Tokenized by the shared rule, as the reward_model reward source scores: BOS? + prompt +
        # response + EOS. TRL takes chosen_ids / rejected_ids as already processed.
        dataset = Dataset.from_list([{"chosen_ids": rule.sequence(r["prompt"], r["chosen"]),
                                      "rejected_ids": rule.sequence(r["prompt"], r["rejected"])}
                                     for r in records])

        def build(kwargs, callbacks):
            args = trl.RewardConfig(**kwargs, center_rewards_coefficient=config.center_rewards_coefficient)
            with _quiet_new_head():
                model = load_sequence_classifier(job.model, trust_remote_code=job.trust_remote_code)
            model = model.to(torch.float32)
            trainer = trl.RewardTrainer(model=model, args=args, train_dataset=dataset,
                                        processing_class=tokenizer, callbacks=callbacks)
            kept = len(trainer.train_dataset)
            if kept == 0:
                raise OkapiError(f"every preference pair is longer than max_length={config.max_length} tokens",
                                 where="trainer reward", hint="raise max_length")
            if kept < len(records):
                common.log.warning("reward: %d of %d pairs are longer than max_length=%d tokens and are "
                                   "left out", len(records) - kept, len(records), config.max_length)
            return trainer

        return common.run(self.name, job, config, build, tokenizer)


def _quiet_new_head():
    """Hide transformers' notice that the new score head is untrained (it is meant to be)."""
    import contextlib

    try:
        from trl.trainer.reward_trainer import suppress_seqcls_warning
    except ImportError:  # a TRL without it
        return contextlib.nullcontext()
    return suppress_seqcls_warning()
