"""The base of the trainers built on TRL (and transformers' Trainer): sft, reward, dpo, grpo.

A subclass says which records it takes, which model it trains and how to build its trainer;
the base does the rest the same way for all (see ``runner.run``): token rule, model loading
options, LoRA, ``trl_args``, checkpoints and resuming, metrics, saving. Light: no torch here.
"""

from __future__ import annotations

from typing import Any, ClassVar

from okapi_kit import Trainer, TrainJob, TrainResult

from .config import TRLTrainConfig


class TRLTrainer(Trainer):
    """A trainer whose loop is a TRL / transformers ``Trainer``. Subclasses set ``record_keys``,
    ``model_kind`` ("causal_lm" or "classifier") and implement :meth:`datasets` and :meth:`build`."""

    Config: ClassVar[type[TRLTrainConfig]] = TRLTrainConfig
    record_keys: ClassVar[tuple[str, ...]] = ()
    model_kind: ClassVar[str] = "causal_lm"

    def train(self, job: TrainJob) -> TrainResult:
        from . import runner

        return runner.run(self, job)

    # -- what a subclass provides (called inside train(), where torch and TRL may be imported) --

    def check(self, job: TrainJob) -> list[dict[str, Any]]:
        """The job's records, checked (an OkapiError names the first bad one)."""
        from .common import check_records

        return check_records(job.records, self.record_keys, self.name)

    def datasets(self, records: list[dict[str, Any]], rule, job: TrainJob) -> tuple[Any, Any]:
        """(training set, held-out set or None) as the trainer takes them, tokenized by ``rule``
        (:class:`okapi_kit_transformers.tokens.TokenRule`) where the trainer takes ids."""
        raise NotImplementedError

    def method_args(self, job: TrainJob) -> dict[str, Any]:
        """Fields of the TRL config that this trainer's own options set."""
        return {}

    def build(self, *, job: TrainJob, args, model, train_set, held_out, tokenizer, peft_config, callbacks):
        """The TRL / transformers trainer, ready to ``train()``."""
        raise NotImplementedError

    def finish(self, trainer) -> None:
        """After training, before saving (the reward trainer evaluates its held-out split)."""
