"""PPO with a KL penalty, GAE and the optional pretraining mix (InstructGPT's PPO-ptx).

Per step: sample one completion per prompt; the policy's log-probs and values at sampling
time come from one forward pass, the reference's from another. Per-token rewards are
-beta * KL_t plus the sequence's score at its last token; GAE gives advantages (whitened
over the batch) and value targets; then ``ppo_epochs`` passes over the batch in
minibatches, each an optimiser step on the clipped policy loss + vf_coef * clipped value loss
(- ptx_coef * mean log-likelihood of pretraining texts).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from okapi_kit import OkapiError

from .algorithm import Algorithm, RLTrainer
from .config import PPOConfig


class PPO(Algorithm):
    needs_policy = True

    def __init__(self, config: PPOConfig, ptx_texts: list[str] | None = None):
        super().__init__(config)
        self.values = config.critic
        self.critic_model = config.critic_model
        self.ptx_texts = ptx_texts or []
        self._ptx_next = 0

    def updates_per_step(self, batch: int) -> int:
        return self.config.ppo_epochs * math.ceil(batch / (self.config.mini_batch_size or batch))

    def update(self, session, ro, kl_coef: float) -> dict[str, float]:
        import torch

        from .engine import micro_rollouts, sequence_logprobs
        from .losses import (
            gae,
            kl_estimate,
            masked_mean,
            masked_whiten,
            ppo_policy_loss,
            ppo_value_loss,
            token_rewards,
        )

        cfg: PPOConfig = self.config
        mask = ro.response_mask
        kl_tokens = kl_estimate(ro.logprobs, ro.ref_logprobs, cfg.kl_estimator) * mask
        rewards = token_rewards(ro.rewards, kl_tokens, mask, kl_coef)
        if cfg.whiten_rewards:
            rewards = masked_whiten(rewards, mask, shift_mean=False)
        ro.advantages, ro.returns = gae(rewards, ro.values, mask, cfg.gamma, cfg.lam)
        if cfg.whiten_advantages:
            ro.advantages = masked_whiten(ro.advantages, mask)
        n = len(ro)
        size = cfg.mini_batch_size or n
        sums: dict[str, float] = {}

        def add(key: str, value: float) -> None:
            sums[key] = sums.get(key, 0.0) + float(value)

        updates = 0
        for _ in range(cfg.ppo_epochs):
            order = torch.randperm(n)
            for start in range(0, n, size):
                rows = order[start:start + size]
                tokens = mask[rows.to(mask.device)].sum().clamp(min=1)
                if self.ptx_texts and cfg.ptx_coef > 0:
                    add("ptx_loss", self._ptx_step(session))
                for last, _, sub in micro_rollouts(session, ro, rows):
                    with session.accumulate(last):
                        logps, values = session.forward(sub.input_ids, sub.attention_mask, sub.width, values=True)
                        policy_loss, clip_frac, approx_kl = ppo_policy_loss(
                            logps, sub.logprobs, sub.advantages, sub.response_mask, cfg.clip_range, tokens)
                        value_loss, value_clip_frac = ppo_value_loss(
                            values, sub.values, sub.returns, sub.response_mask, cfg.value_clip_range, tokens)
                        session.backward(policy_loss + cfg.vf_coef * value_loss)
                    share = float(sub.response_mask.sum() / tokens)
                    add("policy_loss", policy_loss.item())
                    add("value_loss", value_loss.item())
                    add("clip_frac", clip_frac.item() * share)
                    add("approx_kl", approx_kl.item() * share)
                    add("value_clip_frac", value_clip_frac.item() * share)
                add("grad_norm", session.update())
                updates += 1
        stats = {key: value / updates for key, value in sums.items()}
        seq_kl = sequence_logprobs(ro.logprobs - ro.ref_logprobs, mask)
        stats.update(kl=float(seq_kl.mean()), non_score_reward=float(-kl_coef * seq_kl.mean()),
                     value=float(masked_mean(ro.values, mask)), returns=float(masked_mean(ro.returns, mask)))
        return stats

    def _ptx_step(self, session) -> float:
        """Backward of -ptx_coef * the mean token log-likelihood of the next pretraining texts
        (gradients kept locally: the minibatch's last micro-batch synchronises them)."""
        from okapi_kit_transformers.tokens import pad

        cfg: PPOConfig = self.config
        limit = cfg.max_prompt_length + cfg.max_new_tokens
        rows = []
        for _ in range(cfg.ptx_batch_size):
            text = self.ptx_texts[self._ptx_next % len(self.ptx_texts)]
            self._ptx_next += 1
            rows.append(session.rule.sequence("", text)[:limit])
        rows = [r if len(r) > 1 else r * 2 for r in rows]  # a text of one token predicts nothing
        enc = {k: v.to(session.device) for k, v in pad(rows, session.pad_id, "right").items()}
        width = enc["input_ids"].shape[1] - 1
        with session.accumulate(last=False):
            logps, _ = session.forward(enc["input_ids"], enc["attention_mask"], width)
            mask = enc["attention_mask"][:, 1:].float()
            nll = -(logps * mask).sum() / mask.sum().clamp(min=1)
            session.backward(cfg.ptx_coef * nll)
        return nll.item()

    def state_dict(self) -> dict[str, Any]:
        return {"ptx_next": self._ptx_next}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._ptx_next = int(state.get("ptx_next", 0))


def read_texts(path: Path) -> list[str]:
    """Pretraining texts: JSON or JSONL records with ``text``, or ``prompt`` and ``completion``."""
    path = Path(path)
    raw = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".jsonl":
            records = [json.loads(line) for line in raw.splitlines() if line.strip()]
        else:
            records = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise OkapiError(f"cannot read {path}: {exc}", where="ptx_data", hint="give JSON or JSONL records") from None
    if not isinstance(records, list) or not records:
        raise OkapiError(f"{path} holds no records", where="ptx_data", hint="a list of {'text': ...} records")
    texts = []
    for i, rec in enumerate(records):
        if isinstance(rec, dict) and isinstance(rec.get("text"), str):
            texts.append(rec["text"])
        elif isinstance(rec, dict) and isinstance(rec.get("prompt"), str) and isinstance(rec.get("completion"), str):
            texts.append(rec["prompt"] + rec["completion"])
        else:
            raise OkapiError(f"record {i} of {path} has no 'text' (nor 'prompt' and 'completion')",
                             where="ptx_data", hint="each record needs a 'text' string")
    return texts


class PPOTrainer(RLTrainer):
    """PPO with a KL penalty, GAE, a value head or critic, and optional PPO-ptx (InstructGPT)."""

    name = "ppo"
    Config = PPOConfig

    def algorithm(self) -> PPO:
        config: PPOConfig = self.config
        return PPO(config, read_texts(config.ptx_data) if config.ptx_data is not None else None)
