"""The InstructGPT reward-model loss on K-wise rankings (pure torch).

For a prompt with K responses ranked best first and rewards r_1..r_K::

    loss(x) = - 1/C(K,2) * sum_{i<j} log sigma(r_i - r_j)

and the batch loss is the mean over prompts, so each prompt weighs the same whatever its K
(Ouyang et al. 2022, section 3.5). K = 2 is the Bradley-Terry loss of a preference pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class RankingStats:
    """Sums over the pairs of a batch (summed again over batches, then divided for logging)."""

    correct: float  # pairs with r_i > r_j
    pairs: float
    margin: float  # sum of r_i - r_j
    prompts: float
    loss: float  # sum of the per-prompt losses

    def add(self, other: RankingStats) -> RankingStats:
        return RankingStats(*(a + b for a, b in zip(self.values(), other.values())))

    def values(self) -> tuple[float, ...]:
        return (self.correct, self.pairs, self.margin, self.prompts, self.loss)


def reward_table(rewards: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """The flat rewards of all responses (prompt after prompt, best first) as a (prompts, K_max)
    table; places past a prompt's K hold 0 (the loss masks them)."""
    k_max = int(counts.max())
    col = torch.arange(k_max, device=counts.device)
    valid = col[None, :] < counts[:, None]
    table = rewards.new_zeros((len(counts), k_max))
    return table.masked_scatter(valid, rewards)


def ranking_loss(rewards: torch.Tensor, counts: torch.Tensor,
                 center_coefficient: float | None = None) -> tuple[torch.Tensor, RankingStats]:
    """The K-wise loss of a (prompts, K_max) reward table whose row b holds ``counts[b]`` rewards,
    best first. ``center_coefficient`` adds c * mean over prompts of (2 * mean_k r_k)^2, which is
    Eisenstein et al.'s (r_w + r_l)^2 centring penalty for pairs."""
    k_max = rewards.shape[1]
    if k_max < 2 or bool((counts < 2).any()):
        raise ValueError("every ranking needs at least two responses")
    better, worse = torch.triu_indices(k_max, k_max, offset=1, device=rewards.device)
    valid = worse[None, :] < counts[:, None]  # (prompts, pairs): pair (i, j) exists when j < K
    diff = rewards[:, better] - rewards[:, worse]
    nll = torch.where(valid, -F.logsigmoid(diff), torch.zeros_like(diff))
    n_pairs = valid.sum(dim=1)  # C(K, 2) of each prompt
    per_prompt = nll.sum(dim=1) / n_pairs
    loss = per_prompt.mean()
    if center_coefficient:
        col = torch.arange(k_max, device=rewards.device)
        present = col[None, :] < counts[:, None]
        mean = torch.where(present, rewards, torch.zeros_like(rewards)).sum(dim=1) / counts
        loss = loss + center_coefficient * (2 * mean).pow(2).mean()
    with torch.no_grad():
        stats = RankingStats(correct=float(((diff > 0) & valid).sum()), pairs=float(n_pairs.sum()),
                             margin=float(torch.where(valid, diff, torch.zeros_like(diff)).sum()),
                             prompts=float(len(counts)), loss=float(per_prompt.sum()))
    return loss, stats
