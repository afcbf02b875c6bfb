"""Training a reward model on K-wise rankings with transformers' Trainer.

All K responses of a prompt sit in the same batch element and each is scored by one forward
pass (all responses of a micro-batch in one padded batch); the C(K,2) pairs are formed from
the scores (see :mod:`kwise_loss`). Imported only inside ``train()``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch
from transformers import Trainer

from .kwise_loss import RankingStats, ranking_loss, reward_table

IDS = "responses_ids"


def split_held_out(records: list[dict[str, Any]], fraction: float, seed: int
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, held out): about ``fraction`` of the records held out, whole prompts at a time
    (rankings of the same prompt never straddle the split); at least one each when there are
    two prompts or more and ``fraction`` > 0."""
    prompts = sorted({r["prompt"] for r in records})
    if fraction <= 0 or len(prompts) < 2:
        return records, []
    random.Random(seed).shuffle(prompts)
    want = max(1, round(fraction * len(records)))
    held: set[str] = set()
    count = 0
    for prompt in prompts[:-1]:  # the last prompt always stays for training
        if count >= want:
            break
        held.add(prompt)
        count += sum(r["prompt"] == prompt for r in records)
    return [r for r in records if r["prompt"] not in held], [r for r in records if r["prompt"] in held]


@dataclass
class RankingCollator:
    """Rows ``{responses_ids: [ids_1, ..., ids_K]}`` -> every response of the batch as one
    right-padded batch, with ``counts`` (K of each prompt) to rebuild the rankings."""

    pad_id: int

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        from okapi_kit_transformers.tokens import pad

        flat = [ids for row in rows for ids in row[IDS]]
        batch = pad(flat, self.pad_id, "right")
        batch["counts"] = torch.tensor([len(row[IDS]) for row in rows], dtype=torch.long)
        return batch


class RankingRewardTrainer(Trainer):
    """transformers' Trainer with the K-wise loss, pairwise accuracy and margin in the logs, and
    an evaluation that reports the held-out pairwise accuracy (``eval_accuracy``)."""

    def __init__(self, *args, center_coefficient: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        # The loss is already a mean over the batch's prompts: the Trainer should divide it by
        # the accumulation steps, not expect a sum over tokens.
        self.model_accepts_loss_kwargs = False
        self.center_coefficient = center_coefficient
        self._window: RankingStats | None = None
        self.evaluated_step: int | None = None  # the step of the last evaluation of the held-out set
        self._evaluated: dict[str, float] = {}

    def _scores(self, model, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        rewards = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits[:, 0]
        return reward_table(rewards.float(), inputs["counts"])

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        table = self._scores(model, inputs)
        loss, stats = ranking_loss(table, inputs["counts"], self.center_coefficient)
        if model.training:
            self._window = stats if self._window is None else self._window.add(stats)
        return (loss, {"rewards": table}) if return_outputs else loss

    def _summed(self, stats: RankingStats) -> RankingStats:
        """The stats summed over processes (every process logs at the same steps)."""
        values = torch.tensor(stats.values(), dtype=torch.float64, device=self.args.device)
        if self.args.world_size > 1:
            values = self.accelerator.reduce(values, reduction="sum")
        return RankingStats(*values.tolist())

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._window is not None:
            window, self._window = self._summed(self._window), None
            logs = {**logs, **_figures(window)}
        super().log(logs, start_time)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """Loss, pairwise accuracy and mean margin on the held-out rankings (every process
        scores all of them: they are few, and no gathering is needed)."""
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if dataset is None or len(dataset) == 0:
            return {}
        if eval_dataset is None and self.evaluated_step == self.state.global_step:
            return self._evaluated  # the Trainer asks again at the end of an epoch and of training
        model = self.model
        was_training = model.training
        model.eval()
        total = RankingStats(0, 0, 0, 0, 0)
        size = self.args.per_device_eval_batch_size
        try:
            with torch.no_grad():
                for start in range(0, len(dataset), size):
                    batch = self.data_collator([dataset[i] for i in range(start, min(start + size, len(dataset)))])
                    batch = {k: v.to(self.args.device) for k, v in batch.items()}
                    with self.compute_loss_context_manager():
                        _, stats = ranking_loss(self._scores(model, batch), batch["counts"])
                    total = total.add(stats)
        finally:
            model.train(was_training)
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in _figures(total).items()}
        metrics[f"{metric_key_prefix}_loss"] = total.loss / total.prompts
        metrics[f"{metric_key_prefix}_pairs"] = total.pairs
        self.log(metrics)
        if eval_dataset is None:
            self.evaluated_step, self._evaluated = self.state.global_step, metrics
        return metrics


def _figures(stats: RankingStats) -> dict[str, float]:
    return {"accuracy": stats.correct / stats.pairs, "margin": stats.margin / stats.pairs}
