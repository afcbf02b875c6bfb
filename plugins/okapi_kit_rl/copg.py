"""Contrastive Policy Gradient, CoPG (Flet-Berliac et al. 2024, arXiv 2406.19185).

On pairs (y, y') of completions of one prompt with scalar rewards, the loss

    -[(R(y) - R(y')) (log pi(y) - log pi(y')) - beta/2 (l(y) - l(y'))^2],  l = log pi - log pi_ref

has the gradient -(R_beta(y) - R_beta(y')) (grad log pi(y) - grad log pi(y')), R_beta = R - beta l:
a policy gradient whose baseline is the other completion, valid for pairs from any policy
(no importance weights). ``copg`` samples the pairs from the current policy; ``copg_offline``
learns from a dataset of {prompt, chosen, rejected, chosen_reward, rejected_reward}.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from okapi_kit import OkapiError, Trainer, TrainJob, TrainResult

from .algorithm import Algorithm, RLTrainer
from .config import CoPGConfig, OfflineCoPGConfig


def _pair_step(session, ro, kl_coef: float) -> dict[str, float]:
    """One optimiser step of the CoPG loss on a batch whose rows are pairs (y0, y0', y1, y1', ...)."""
    import torch

    from .engine import micro_rollouts, sequence_logprobs
    from .losses import copg_loss

    n = len(ro)
    kls, loss_total = [], 0.0
    for last, _, sub in micro_rollouts(session, ro, range(n), group=2):
        with session.accumulate(last):
            logps, _ = session.forward(sub.input_ids, sub.attention_mask, sub.width)
            logp = sequence_logprobs(logps, sub.response_mask)
            ref = sequence_logprobs(sub.ref_logprobs, sub.response_mask)
            r = sub.rewards
            loss = copg_loss(logp[0::2], logp[1::2], ref[0::2], ref[1::2], r[0::2], r[1::2], kl_coef,
                             denominator=n // 2)
            session.backward(loss)
        kls.append(logp.detach() - ref)
        loss_total += loss.item()
    grad_norm = session.update()
    return {"kl": float(torch.cat(kls).mean()), "loss": loss_total, "grad_norm": grad_norm}


class CoPG(Algorithm):
    """Online CoPG: two samples of each prompt from the current policy form a pair."""

    k = 2

    def update(self, session, ro, kl_coef: float) -> dict[str, float]:
        return _pair_step(session, ro, kl_coef)


class CoPGTrainer(RLTrainer):
    """CoPG on pairs sampled from the current policy (Flet-Berliac et al. 2024); generalises IPO."""

    name = "copg"
    Config = CoPGConfig

    def algorithm(self) -> CoPG:
        return CoPG(self.config)


PAIR_KEYS = ("prompt", "chosen", "rejected", "chosen_reward", "rejected_reward")


def scored_pairs(records: list[dict[str, Any]], trainer: str) -> list[tuple[str, str, str, float, float]]:
    """The records as (prompt, y, y', R(y), R(y')); an OkapiError names the first bad one."""
    if not records:
        raise OkapiError(f"trainer {trainer!r} got no pairs", hint="check the stage's input data")
    out = []
    for i, rec in enumerate(records):
        texts_ok = all(isinstance(rec.get(k), str) for k in PAIR_KEYS[:3])
        rewards = [rec.get(k) for k in PAIR_KEYS[3:]]
        numbers_ok = all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in rewards)
        if not (texts_ok and numbers_ok):
            raise OkapiError(f"record {i} is not a scored pair", where=f"trainer {trainer}",
                             hint="each record needs prompt, chosen, rejected (strings) and chosen_reward, "
                                  "rejected_reward (numbers)")
        out.append((rec["prompt"], rec["chosen"], rec["rejected"], float(rewards[0]), float(rewards[1])))
    return out


class OfflineCoPG:
    """Offline CoPG: the pairs of a dataset, each completion tokenized after its prompt by the
    shared token rule (START + prompt + completion + EOS, as SFT and DPO train)."""

    def __init__(self, config: OfflineCoPGConfig):
        self.config = config

    def encode(self, session, pairs) -> list[tuple[list[int], list[int], list[int], float, float]]:
        cfg = self.config
        rule = session.rule
        items = []
        for prompt, a, b, ra, rb in pairs:
            head_a, tail_a = rule.split(prompt, a)
            head_b, tail_b = rule.split(prompt, b)
            items.append((rule.keep_end(head_a, cfg.max_prompt_length), tail_a[:cfg.max_completion_length],
                          rule.keep_end(head_b, cfg.max_prompt_length), tail_b[:cfg.max_completion_length], ra, rb))
        return items

    def update(self, session, batch, kl_coef: float) -> dict[str, float]:
        import torch

        from .rollout import Rollout, layout

        prompts, completions, rewards = [], [], []
        for head_a, tail_a, head_b, tail_b, ra, rb in batch:
            prompts += [head_a, head_b]
            completions += [tail_a, tail_b]
            rewards += [ra, rb]
        if any(not c for c in completions):
            raise OkapiError("a completion of a scored pair has no token", where="trainer copg_offline",
                             hint="leave out pairs with an empty completion")
        ids, mask, response_mask = layout(prompts, completions, session.pad_id, session.device)
        scores = torch.tensor(rewards, dtype=torch.float32, device=session.device)
        ref = session.reference_logprobs(ids, mask, response_mask.shape[1]) * response_mask
        ro = Rollout(input_ids=ids, attention_mask=mask, response_mask=response_mask, scores=scores,
                     rewards=scores, ended=torch.ones_like(scores, dtype=torch.bool), ref_logprobs=ref)
        stats = _pair_step(session, ro, kl_coef)
        stats.update(reward=float(scores.mean()), reward_gap=float((scores[0::2] - scores[1::2]).abs().mean()))
        return stats


class OfflineCoPGTrainer(Trainer):
    """CoPG on a dataset of pairs of completions with their rewards (no sampling, no reward model).

    In the pipeline the ``align`` stage makes the pairs from the rankings, rewarded by their own
    scores or a reward source (``okapi_kit/stages/scored_pairs.py``); ``okapi-kit train`` reads
    them from the user's file."""

    name = "copg_offline"
    data: ClassVar[str] = "scored_pairs"
    produces: ClassVar[str] = "policy"
    Config = OfflineCoPGConfig

    def train(self, job: TrainJob) -> TrainResult:
        from .engine import train_offline

        return train_offline(self.name, job, self.config, OfflineCoPG(self.config),
                             scored_pairs(job.records, self.name))
