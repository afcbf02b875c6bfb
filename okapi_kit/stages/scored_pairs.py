"""Scored pairs for trainers that learn from rewards of fixed completions (``copg_offline``).

A pair is two responses of one ranking, with a reward each. The rewards are the ranking's own
per-response scores (a judge's, a reward-model ranker's, or ``chosen_reward``/``rejected_reward``
or ``scores`` in supplied data) unless a reward source scores the responses instead: the
alignment's ``reward:``, or the run's reward model when some ranking has no scores.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import combinations
from typing import Any

from ..errors import OkapiError
from ..records import Ranking

UNSCORED_HINT = ("rank with a ranker that scores each response (reward_model, a judge), give supplied "
                 "pairs chosen_reward and rejected_reward (rankings: scores), add a reward_model stage "
                 "(or models.rm) to score them, or set this alignment's reward")


def has_rewards(obj: dict[str, Any]) -> bool:
    """Whether a supplied record (a pair or a K-wise ranking) carries a reward per response."""
    if "responses" in obj:
        return obj.get("scores") is not None
    return obj.get("chosen_reward") is not None and obj.get("rejected_reward") is not None


def own_scores(rankings: Sequence[Ranking], where: str) -> list[list[float]] | None:
    """Each ranking's scores, or None when some ranking has none; bad scores are an OkapiError."""
    if any(r.scores is None for r in rankings):
        return None
    for r in rankings:
        if len(r.scores) != len(r.responses) or not all(math.isfinite(s) for s in r.scores):
            raise OkapiError(f"ranking {r.id!r} ({r.lang}) has scores {r.scores} for {len(r.responses)} "
                             "responses: one finite number per response is needed", where=where)
    return [list(r.scores) for r in rankings]


def scored_by(reward: Any, rankings: Sequence[Ranking], prompt: Callable[[Ranking], str],
              where: str) -> list[list[float]]:
    """Every response of every ranking scored by a reward source, in one call."""
    prompts, responses, languages = [], [], []
    for r in rankings:
        text = prompt(r)
        for response in r.responses:
            prompts.append(text)
            responses.append(response)
            languages.append(r.lang)
    values = [float(v) for v in reward.score(prompts, responses, languages)] if responses else []
    if len(values) != len(responses) or not all(math.isfinite(v) for v in values):
        raise OkapiError(f"reward source {getattr(reward, 'name', '?')!r} gave {len(values)} scores (some not "
                         f"finite) for {len(responses)} responses", where=where)
    out, at = [], 0
    for r in rankings:
        out.append(values[at:at + len(r.responses)])
        at += len(r.responses)
    return out


def scored_pairs(rankings: Sequence[Ranking], rewards: Sequence[Sequence[float]], selection: str,
                 prompt: Callable[[Ranking], str]) -> list[dict[str, Any]]:
    """``{prompt, chosen, rejected, chosen_reward, rejected_reward}`` per pair of each ranking: all
    C(K,2) pairs in ranked order, or ``best_worst``. Identical responses make no pair."""
    rows = []
    for r, scores in zip(rankings, rewards):
        order = r.order
        pairs = [(order[0], order[-1])] if selection == "best_worst" else list(combinations(order, 2))
        text = prompt(r)
        rows += [{"prompt": text, "chosen": r.responses[i], "rejected": r.responses[j],
                  "chosen_reward": scores[i], "rejected_reward": scores[j]}
                 for i, j in pairs if r.responses[i] != r.responses[j]]
    return rows
