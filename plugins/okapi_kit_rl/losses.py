"""The RL losses and estimators as pure torch functions (formulas: ALGORITHMS.md).

Shapes: ``N`` sequences, ``T`` response tokens. ``mask`` is 1.0 on the response tokens
(EOS included) and 0.0 on the padding after them; every per-token tensor is masked by it.
Sequence log-probabilities are sums over the response tokens. Functions that average over
tokens take an optional ``denominator``: with gradient accumulation, the token count of
the whole minibatch, so that the accumulated gradient equals the minibatch's.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def masked_sum(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    return (values * mask).sum() if dim is None else (values * mask).sum(dim)


def masked_mean(values: Tensor, mask: Tensor, denominator: float | Tensor | None = None) -> Tensor:
    """Mean of ``values`` where ``mask`` is 1 (divided by ``denominator`` when given)."""
    total = masked_sum(values, mask)
    return total / (mask.sum().clamp(min=1) if denominator is None else denominator)


def masked_whiten(values: Tensor, mask: Tensor, *, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """(values - mean) / std over the masked entries (population variance); 0 off the mask.

    ``shift_mean=False`` adds the mean back: only the scale changes (used for rewards).
    """
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask)
    out = (values - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask


def kl_estimate(logprobs: Tensor, ref_logprobs: Tensor, estimator: str = "k1") -> Tensor:
    """Per-token estimate of KL(pi || pi_ref) from the sampled tokens' log-probabilities.

    k1 = log pi - log pi_ref (the penalty of ALGORITHMS.md); k3 = exp(-k1) - 1 + k1
    (Schulman's low-variance, non-negative estimator).
    """
    k1 = logprobs - ref_logprobs
    if estimator == "k1":
        return k1
    if estimator == "k3":
        return torch.expm1(-k1) + k1
    raise ValueError(f"unknown KL estimator {estimator!r}")


def token_rewards(scores: Tensor, kl: Tensor, mask: Tensor, kl_coef: float) -> Tensor:
    """r_t = -beta * KL_t on every response token, plus the sequence score at its last token."""
    rewards = -kl_coef * kl * mask
    last = (mask.sum(-1).long() - 1).clamp(min=0)
    has_tokens = mask.sum(-1) > 0
    rows = torch.arange(mask.shape[0], device=mask.device)
    return rewards.index_put((rows, last), scores * has_tokens, accumulate=True)


def discounted_cumsum(values: Tensor, discount: float, block: int = 512) -> Tensor:
    """out_t = sum_{l>=0} discount^l * values_{t+l} along the last axis, without a Python loop
    over tokens: a (block x block) matrix of discount powers per block, blocks from the end."""
    n, length = values.shape
    out = torch.empty_like(values)
    carry = values.new_zeros(n)
    size = min(block, length)
    idx = torch.arange(size, device=values.device)
    gap = (idx[None, :] - idx[:, None]).to(values.dtype)  # gap[t, s] = s - t
    weights = torch.where(gap >= 0, discount ** gap.clamp(min=0), torch.zeros_like(gap))  # 0 ** 0 = 1
    for end in range(length, 0, -size):
        start = max(0, end - size)
        width = end - start
        w = weights[:width, :width]
        # the block's own terms, then what comes after it, discounted to each position
        tail = discount ** torch.arange(width, 0, -1, device=values.device, dtype=values.dtype)
        out[:, start:end] = values[:, start:end] @ w.T + carry[:, None] * tail[None, :]
        carry = out[:, start]
    return out


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) over the response tokens.

    delta_t = r_t + gamma * V_{t+1} - V_t (V is 0 after the last token), A_t = sum_l
    (gamma * lam)^l delta_{t+l}, returns R_t = A_t + V_t. Both are 0 off the mask.
    """
    values = values * mask
    next_values = torch.cat([values[:, 1:], values.new_zeros(values.shape[0], 1)], dim=1)
    deltas = (rewards + gamma * next_values - values) * mask
    advantages = discounted_cumsum(deltas, gamma * lam) * mask
    return advantages, (advantages + values) * mask


def ppo_policy_loss(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor,
                    clip_range: float, denominator: float | Tensor | None = None
                    ) -> tuple[Tensor, Tensor, Tensor]:
    """-mean_t min(rho_t A_t, clip(rho_t, 1-eps, 1+eps) A_t), rho_t = exp(log pi - log pi_old).

    Also returns the clip fraction (share of tokens where the clipped term is the one
    taken) and the approximate KL 0.5 * mean (log rho)^2 between the new and old policy.
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask, denominator)
    with torch.no_grad():
        clip_frac = masked_mean((clipped > unclipped).to(logprobs.dtype), mask)
        approx_kl = masked_mean(0.5 * log_ratio**2, mask)
    return loss, clip_frac, approx_kl


def ppo_value_loss(values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, clip_range: float,
                   denominator: float | Tensor | None = None) -> tuple[Tensor, Tensor]:
    """0.5 * mean_t max((V - R)^2, (clip(V, V_old - eps, V_old + eps) - R)^2), and its clip fraction."""
    clipped_values = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    plain = (values - returns) ** 2
    clipped = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(plain, clipped), mask, denominator)
    with torch.no_grad():
        clip_frac = masked_mean((clipped > plain).to(values.dtype), mask)
    return loss, clip_frac


class AdaptiveKLController:
    """beta <- beta * (1 + clip((KL - target) / target, -0.2, 0.2) * n / horizon) (Ziegler et al. 2019)."""

    def __init__(self, kl_coef: float, target: float | None = None, horizon: int = 10000):
        self.value = kl_coef
        self.target = target
        self.horizon = horizon

    def update(self, kl: float, n: int) -> float:
        """Move beta after a batch of ``n`` samples whose mean KL was ``kl``; a fixed beta stays."""
        if self.target is not None:
            error = min(max((kl - self.target) / self.target, -0.2), 0.2)
            self.value *= 1.0 + error * n / self.horizon
        return self.value


def sequence_rewards(scores: Tensor, logprobs: Tensor, ref_logprobs: Tensor, kl_coef: float) -> Tensor:
    """R(x, y) = r(x, y) - beta * (log pi(y|x) - log pi_ref(y|x)), with sequence log-probabilities."""
    return scores - kl_coef * (logprobs - ref_logprobs)


def update_baseline(baseline: float | None, batch_mean: float, decay: float) -> float:
    """The moving-average baseline of REINFORCE; the first batch starts it at its own mean."""
    if baseline is None or math.isnan(baseline):
        return batch_mean
    return decay * baseline + (1.0 - decay) * batch_mean


def rloo_advantages(rewards: Tensor, k: int) -> Tensor:
    """A_i = R_i - mean of the other k-1 rewards of the same prompt.

    ``rewards`` holds the k samples of each prompt next to each other: (p0 s0, ..., p0 s(k-1), p1 s0, ...).
    """
    groups = rewards.view(-1, k)
    others = (groups.sum(dim=1, keepdim=True) - groups) / (k - 1)
    return (groups - others).reshape(-1)


def policy_gradient_loss(logprobs: Tensor, advantages: Tensor, denominator: float | None = None) -> Tensor:
    """-mean_i A_i * log pi(y_i|x_i): the REINFORCE / RLOO loss (advantages are constants)."""
    total = -(advantages.detach() * logprobs).sum()
    return total / (logprobs.shape[0] if denominator is None else denominator)


def copg_loss(logprobs: Tensor, other_logprobs: Tensor, ref_logprobs: Tensor, other_ref_logprobs: Tensor,
              rewards: Tensor, other_rewards: Tensor, beta: float, denominator: float | None = None) -> Tensor:
    """CoPG on pairs (y, y') of the same prompt, averaged over pairs:

        -[(R(y) - R(y')) (log pi(y) - log pi(y')) - beta/2 (l(y) - l(y'))^2],  l = log pi - log pi_ref

    Its gradient is -(R_beta(y) - R_beta(y')) (grad log pi(y) - grad log pi(y')) with R_beta =
    R - beta * l; it equals (R(y) - R(y') - beta (l(y) - l(y')))^2 / (2 beta) up to a constant.
    """
    reward_gap = (rewards - other_rewards).detach()
    ratio_gap = (logprobs - ref_logprobs) - (other_logprobs - other_ref_logprobs)
    per_pair = -(reward_gap * (logprobs - other_logprobs) - 0.5 * beta * ratio_gap**2)
    return per_pair.sum() / (per_pair.shape[0] if denominator is None else denominator)


def ipo_loss(chosen_logprobs: Tensor, rejected_logprobs: Tensor, ref_chosen_logprobs: Tensor,
             ref_rejected_logprobs: Tensor, tau: float) -> Tensor:
    """IPO (Azar et al. 2023): mean (h - 1/(2 tau))^2, h the difference of the two log-ratios.

    CoPG with R = 1 for the chosen and 0 for the rejected completion and beta = 2 tau is
    (beta / 2) times this loss, up to a constant.
    """
    h = (chosen_logprobs - ref_chosen_logprobs) - (rejected_logprobs - ref_rejected_logprobs)
    return ((h - 1.0 / (2.0 * tau)) ** 2).mean()


def selective_log_softmax(logits: Tensor, tokens: Tensor, chunk: int = 8) -> Tensor:
    """log softmax(logits)[token] per position, in float32, a few rows at a time so that a
    full (N, T, V) log-softmax copy is never held."""
    out = []
    for start in range(0, logits.shape[0], chunk):
        rows = logits[start:start + chunk].float()
        picked = torch.gather(rows, -1, tokens[start:start + chunk, :, None]).squeeze(-1)
        out.append(picked - torch.logsumexp(rows, dim=-1))
    return torch.cat(out, dim=0)
