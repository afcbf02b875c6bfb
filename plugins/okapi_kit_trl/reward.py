"""Reward models on K-wise rankings with the InstructGPT loss (pairs are rankings with K = 2)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from okapi_kit import OkapiError, TrainJob

from .base import TRLTrainer
from .config import TRLTrainConfig


class RewardConfig(TRLTrainConfig):
    """Options of the ``reward`` trainer (Okapi: 2 epochs). ``trl_args`` go to transformers'
    ``TrainingArguments`` (the loop is transformers' Trainer with the K-wise loss)."""

    own_args: ClassVar[dict[str, str]] = {
        "eval_strategy": "eval_steps", "eval_steps": "eval_steps",
        "per_device_eval_batch_size": "batch_size", "remove_unused_columns": "(set by the trainer)"}

    learning_rate: float = Field(1e-5, gt=0, description="Peak learning rate of AdamW.")
    num_epochs: float = Field(2.0, gt=0, description="Passes over the rankings (Okapi: 2); ignored when max_steps is set.")
    batch_size: int = Field(4, ge=1, description="Rankings (prompts, each with all its K responses) per device "
                            "per forward pass.")
    center_rewards_coefficient: float | None = Field(
        None, ge=0, description="Weight of a penalty on the squared mean reward of each prompt's responses, "
        "pulling rewards towards zero (Eisenstein et al. 2023 use 0.01); None: no penalty.")
    eval_fraction: float = Field(
        0.05, ge=0, lt=1, description="Share of the rankings (whole prompts) held out to report pairwise "
        "accuracy (eval_accuracy) after training; 0: none held out.")
    eval_steps: int | None = Field(
        None, ge=1, description="Also evaluate the held-out rankings every this many steps (None: only at the end).")


class RewardTrainer(TRLTrainer):
    """Reward model on K-wise rankings {prompt, responses (best first)} with the InstructGPT loss.

    For each prompt, -1/C(K,2) * sum over its C(K,2) pairs of log sigma(r_better - r_worse),
    averaged over the prompts of a batch; all K responses of a prompt are in the same batch
    element and each is scored by one forward pass. The model is the job's model with a new
    one-output score head (a sequence classifier).
    """

    name = "reward"
    data: ClassVar[str] = "ranking"
    produces: ClassVar[str] = "reward_model"
    Config = RewardConfig
    model_kind = "classifier"

    def check(self, job: TrainJob) -> list[dict[str, Any]]:
        return check_rankings(job.records, self.name)

    def datasets(self, records, rule, job: TrainJob):
        from datasets import Dataset

        from . import common
        from .kwise import IDS, split_held_out

        train, held_out = split_held_out(records, self.config.eval_fraction, job.seed)
        limit, cut = self.config.max_length, 0

        def rows(part):
            nonlocal cut
            out = []
            for r in part:
                # the rule's sequences, as the reward_model reward source scores them; a long one
                # keeps START and its end (where the score is read), as that source does too
                seqs = [rule.sequence(r["prompt"], response) for response in r["responses"]]
                cut += sum(len(s) > limit for s in seqs)
                out.append({IDS: [rule.keep_end(s, limit) for s in seqs]})
            return Dataset.from_list(out)

        sets = rows(train), (rows(held_out) if held_out else None)
        if cut:
            common.log.warning("reward: %d responses are longer than max_length=%d tokens with their prompt; "
                               "their prompt's beginning is cut off", cut, limit)
        return sets

    def method_args(self, job: TrainJob) -> dict[str, Any]:
        c = self.config
        periodic = c.eval_steps is not None and c.eval_fraction > 0
        return {"remove_unused_columns": False, "per_device_eval_batch_size": c.batch_size,
                "eval_strategy": "steps" if periodic else "no", "eval_steps": c.eval_steps if periodic else None}

    def build(self, *, job, args, model, train_set, held_out, tokenizer, peft_config, callbacks):
        from transformers.trainer_utils import IntervalStrategy

        from .kwise import RankingCollator, RankingRewardTrainer

        if held_out is None:
            args.eval_strategy = IntervalStrategy.NO  # too few prompts to hold any out
        if peft_config is not None:
            from peft import get_peft_model

            model = get_peft_model(model, peft_config)
            if args.gradient_checkpointing:
                model.enable_input_require_grads()  # the frozen embeddings would cut the gradient off
        return RankingRewardTrainer(model=model, args=args, train_dataset=train_set, eval_dataset=held_out,
                                    data_collator=RankingCollator(model.config.pad_token_id),
                                    processing_class=tokenizer, callbacks=callbacks,
                                    center_coefficient=self.config.center_rewards_coefficient)

    def finish(self, trainer) -> None:
        trainer.evaluate()  # once per step: not again when the last step was evaluated


def check_rankings(records: list[dict[str, Any]], trainer: str) -> list[dict[str, Any]]:
    """``{prompt, responses}`` records, a repeated response kept at its best rank only; a ranking
    whose responses are all the same text teaches nothing and is left out."""
    from . import common

    if not records:
        raise OkapiError(f"trainer {trainer!r} got no training records", hint="check the stage's input data")
    out, dropped = [], 0
    for i, rec in enumerate(records):
        responses = rec.get("responses")
        if not isinstance(rec.get("prompt"), str) or not isinstance(responses, list) \
                or not all(isinstance(x, str) for x in responses) or len(responses) < 2:
            raise OkapiError(f"record {i} is not a ranking", where=f"trainer {trainer}",
                             hint='each record needs "prompt" (a string) and "responses" (two or more '
                             'strings, best first)')
        distinct = list(dict.fromkeys(responses))
        if len(distinct) < 2:
            dropped += 1
            continue
        out.append({"prompt": rec["prompt"], "responses": distinct})
    if not out:
        raise OkapiError("every ranking holds one distinct response only", where=f"trainer {trainer}",
                         hint="a ranking needs two different responses")
    if dropped:
        common.log.warning("%s: %d ranking(s) with one distinct response are left out", trainer, dropped)
    return out
