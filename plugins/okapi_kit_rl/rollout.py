"""The one on-policy rollout engine of the RL trainers.

One call: encode the prompts by the shared token rule (``okapi_kit_transformers.tokens``),
sample ``k`` completions each with the KV cache, cut each at its first EOS, score the
completions with the reward source (minus ``missing_eos_penalty`` for those cut at
``max_new_tokens`` without EOS), and get the reference log-probabilities, plus, when the
algorithm needs them, the policy's log-probabilities and values at sampling time, in one
no-grad forward pass each per micro-batch.

Layout of every sequence: the prompt left-padded to the batch's prompt width, then the
completion (EOS included) right-padded to the batch's completion width. The attention mask
covers the prompt and the completion up to its EOS; ``response_mask`` marks the completion.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import torch
from torch import Tensor

from okapi_kit import OkapiError


@dataclass
class Rollout:
    input_ids: Tensor  # (N, P + W)
    attention_mask: Tensor  # (N, P + W)
    response_mask: Tensor  # (N, W) float, 1 on completion tokens (EOS included)
    scores: Tensor  # (N,) the reward source's scores (the task reward)
    rewards: Tensor  # (N,) scores minus the missing-EOS penalty
    ended: Tensor  # (N,) bool: the completion ends with EOS
    ref_logprobs: Tensor  # (N, W), 0 off the completion
    logprobs: Tensor | None = None  # (N, W) policy at sampling time (PPO)
    values: Tensor | None = None  # (N, W) values at sampling time (PPO)
    advantages: Tensor | None = None  # (N, W) set by an algorithm (PPO)
    returns: Tensor | None = None  # (N, W) set by an algorithm (PPO)
    prompts: list[str] = field(default_factory=list)
    completions: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)

    _SEQUENCE: ClassVar[tuple[str, ...]] = ("input_ids", "attention_mask")
    _TOKENS: ClassVar[tuple[str, ...]] = ("response_mask", "ref_logprobs", "logprobs", "values", "advantages",
                                          "returns")

    @property
    def width(self) -> int:
        """Completion width W (the longest completion of the batch)."""
        return self.response_mask.shape[1]

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def take(self, rows: Tensor | Sequence[int]) -> Rollout:
        """The sub-batch of ``rows``, without the padding columns that no row of it uses."""
        index = torch.as_tensor(rows, dtype=torch.long).to(self.input_ids.device)
        mask = self.attention_mask[index]
        prompt_width = self.input_ids.shape[1] - self.width
        left = int(mask.any(0).nonzero()[0]) if mask.any() else 0
        width = max(1, int(self.response_mask[index].sum(1).max()))
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                value = value[index]
                if f.name in self._SEQUENCE:
                    value = value[:, left:prompt_width + width]
                elif f.name in self._TOKENS:
                    value = value[:, :width]
            elif isinstance(value, list) and value:
                value = [value[i] for i in index.tolist()]
            out[f.name] = value
        return Rollout(**out)


class HFGenerator:
    """Samples with transformers' ``generate`` (KV cache), ``batch_size`` sequences per call.

    A generation backend takes prompt token lists and returns, for each, the sampled token
    list (up to ``max_new_tokens``; anything after the first EOS is ignored); ``sync(model)``
    is called after every optimiser update (a no-op here: it samples with the trained model).

    With sharded weights (ZeRO-3, FSDP2; see ``sharding.py``) :func:`make_generator` sets
    ``gathered`` (a context that makes the weights whole while generating) and ``synced``
    (every process runs as many generation steps as the longest: a process that stopped
    early would otherwise leave the others waiting in a collective forward pass).
    """

    gathered: Any = contextlib.nullcontext
    synced: bool = False

    def __init__(self, model, *, pad_id: int, eos_ids: list[int], max_new_tokens: int, temperature: float,
                 top_k: int, top_p: float, batch_size: int | None, autocast=contextlib.nullcontext):
        self.model = model
        self.pad_id = pad_id
        self.eos_ids = eos_ids
        self.batch_size = batch_size
        self.autocast = autocast
        self.settings = dict(do_sample=True, temperature=temperature, top_k=top_k, top_p=top_p,
                             max_new_tokens=max_new_tokens, repetition_penalty=1.0,
                             eos_token_id=eos_ids, pad_token_id=pad_id)

    def sync(self, model) -> None:
        self.model = model

    @contextlib.contextmanager
    def _clean_generation_config(self):
        """Only our sampling settings: a model's own generation_config (a hub model's top_k,
        repetition_penalty ...) must not change the distribution the policy is trained on."""
        from transformers import GenerationConfig

        from .modules import hf_model

        hf = hf_model(self.model)
        saved = hf.generation_config
        hf.generation_config = GenerationConfig(**self.settings)
        try:
            yield
        finally:
            hf.generation_config = saved

    @torch.no_grad()
    def generate(self, prompts: list[list[int]]) -> list[list[int]]:
        from okapi_kit_transformers.tokens import pad

        device = next(self.model.parameters()).device
        size = self.batch_size or len(prompts)
        out: list[list[int]] = []
        was_training = self.model.training
        self.model.eval()  # the KV cache is off in training mode under gradient checkpointing
        extra = {"synced_gpus": True} if self.synced else {}
        try:
            with self._clean_generation_config(), self.autocast(), self.gathered():
                for start in range(0, len(prompts), size):
                    enc = {k: v.to(device) for k, v in pad(prompts[start:start + size], self.pad_id, "left").items()}
                    gen = self.model.generate(**enc, **self.settings, **extra)
                    out += gen[:, enc["input_ids"].shape[1]:].tolist()
        finally:
            self.model.train(was_training)
        return out


def make_generator(session):
    """The generation backend of a session: transformers' generate or vLLM (``vllm_backend.py``)."""
    from .sharding import gathered_for_generation
    from .vllm_backend import make_generator as for_backend

    cfg = session.config
    generator = for_backend(session.raw.lm, backend=cfg.generation_backend, model_path=session.job.model,
                            pad_id=session.pad_id, eos_ids=session.eos_ids, max_new_tokens=cfg.max_new_tokens,
                            temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p,
                            batch_size=cfg.generation_batch_size, autocast=session.accelerator.autocast,
                            device=cfg.device, seed=session.job.seed + session.accelerator.process_index,
                            gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
                            max_model_len=cfg.max_prompt_length + cfg.max_new_tokens)
    split = session.sharding
    if isinstance(generator, HFGenerator) and not split.whole_weights:
        generator.gathered = lambda: gathered_for_generation(split, session.model, session.raw.lm)
        generator.synced = split.processes > 1
    return generator


def cut_at_eos(tokens: list[int], eos_ids: set[int], max_new_tokens: int) -> tuple[list[int], bool]:
    """The completion up to and including its first EOS, and whether it has one."""
    for i, t in enumerate(tokens[:max_new_tokens]):
        if t in eos_ids:
            return tokens[:i + 1], True
    return tokens[:max_new_tokens], False


def encode_prompts(rule, prompts: Sequence[str], max_length: int) -> list[list[int]]:
    rows = []
    for i, prompt in enumerate(prompts):
        ids = rule.keep_end(rule.prompt(prompt), max_length)
        if not ids:
            raise OkapiError(f"prompt {i} is empty: there is no token to generate from",
                             hint="leave out records whose prompt is empty")
        rows.append(ids)
    return rows


def layout(prompts: list[list[int]], completions: list[list[int]], pad_id: int, device) -> tuple[Tensor, ...]:
    """(input_ids, attention_mask, response_mask) of prompts left-padded and completions right-padded."""
    width_p = max(len(p) for p in prompts)
    width_c = max(1, max(len(c) for c in completions))
    n = len(prompts)
    ids = torch.full((n, width_p + width_c), pad_id, dtype=torch.long)
    mask = torch.zeros((n, width_p + width_c), dtype=torch.long)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        ids[i, width_p - len(p):width_p] = torch.tensor(p, dtype=torch.long)
        ids[i, width_p:width_p + len(c)] = torch.tensor(c, dtype=torch.long)
        mask[i, width_p - len(p):width_p + len(c)] = 1
    return ids.to(device), mask.to(device), mask[:, width_p:].float().to(device)


def score(reward, prompts: list[str], completions: list[str], languages: list[str]) -> list[float]:
    """The reward source's scores, checked: one finite number per completion."""
    import math

    where = f"reward source {getattr(reward, 'name', type(reward).__name__)!r}"
    values = list(reward.score(prompts, completions, languages))
    if len(values) != len(completions):
        raise OkapiError(f"the reward source gave {len(values)} scores for {len(completions)} completions",
                         where=where)
    out = []
    for v in values:
        try:
            number = float(v)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise OkapiError(f"the reward source gave a score that is not a finite number: {v!r}", where=where)
        out.append(number)
    return out


def rollout(session, prompts: Sequence[str], languages: Sequence[str], k: int = 1, *,
            policy: bool = False, values: bool = False) -> Rollout:
    """Sample ``k`` completions per prompt (the k of a prompt next to each other), score them, and
    compute the reference log-probabilities (and the policy's, and values, when asked)."""
    cfg = session.config
    prompt_rows = [row for row in encode_prompts(session.rule, prompts, cfg.max_prompt_length) for _ in range(k)]
    sampled = session.generator.generate(prompt_rows)
    eos = set(session.eos_ids)
    cut = [cut_at_eos(tokens, eos, cfg.max_new_tokens) for tokens in sampled]
    texts = session.tokenizer.batch_decode([c[:-1] if ended else c for c, ended in cut], skip_special_tokens=True)
    all_prompts = [p for p in prompts for _ in range(k)]
    all_langs = [lang for lang in languages for _ in range(k)]
    with session.loading_whole_models():  # a reward model loads on its first call
        task = score(session.reward, all_prompts, texts, all_langs)
    device = session.device
    input_ids, attention_mask, response_mask = layout(prompt_rows, [c for c, _ in cut], session.pad_id, device)
    scores = torch.tensor(task, dtype=torch.float32, device=device)
    ended = torch.tensor([e for _, e in cut], dtype=torch.bool, device=device)
    rewards = scores - (cfg.missing_eos_penalty or 0.0) * (~ended).float()
    width = response_mask.shape[1]
    ref = session.reference_logprobs(input_ids, attention_mask, width) * response_mask
    logprobs = value = None
    if policy or values:
        logprobs, value = session.sampling_logprobs(input_ids, attention_mask, width, values=values)
        logprobs = logprobs * response_mask
        value = value * response_mask if value is not None else None
    return Rollout(input_ids=input_ids, attention_mask=attention_mask, response_mask=response_mask,
                   scores=scores, rewards=rewards, ended=ended, ref_logprobs=ref, logprobs=logprobs,
                   values=value, prompts=all_prompts, completions=texts, languages=all_langs)


def rollout_stats(ro: Rollout) -> dict[str, float]:
    """Metrics every online trainer logs about its samples."""
    return {"reward": float(ro.scores.mean()), "reward_std": float(ro.scores.std()) if len(ro) > 1 else 0.0,
            "eos_rate": float(ro.ended.float().mean()),
            "response_length": float(ro.response_mask.sum(-1).mean())}
