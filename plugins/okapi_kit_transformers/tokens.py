"""The one rule for the special tokens around a text, shared by every model-facing component.

For the same text, sampling, reward scoring, SFT / reward-model / DPO training and lm-eval
see the same token ids::

    generation prompt:           START + tokens(prompt)
    trained or scored sequence:  START + tokens(prompt + response) + EOS

- ``START`` is what the tokenizer itself puts before a text: BOS for Llama-style
  tokenizers, nothing for Qwen2 or BLOOM. It is added once, also when the text already
  begins with it.
- ``tokens(x)`` is the tokenizer without its special tokens. Prompt and response are
  tokenized together (as TRL does), so the split between them is where the prompt's
  tokens stop being a prefix of the whole.
- Whatever a tokenizer appends by itself (``add_eos_token=True``) is dropped: a generation
  prompt must not say that the text has ended, and a trained or scored sequence ends with
  exactly one EOS (none when the tokenizer has no EOS token).

Trained completions end with EOS so that the policy learns to stop; the reward model is
trained on, and scores, sequences that end with EOS (TRL's RewardTrainer appends it), so
the score is read at the same position in both.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from okapi_kit import OkapiError

_PROBE = "a"  # any short text that is one ordinary token or a few


@dataclass(frozen=True)
class TokenRule:
    """The special tokens of one tokenizer, and the sequences the rule builds from texts."""

    tokenizer: Any
    start: tuple[int, ...]  # put before every text
    appended: tuple[int, ...]  # what the tokenizer appends by itself; the rule drops it
    eos: int | None

    @classmethod
    def of(cls, tokenizer) -> TokenRule:
        """Find out, by encoding a probe text with and without special tokens, what the tokenizer adds."""
        plain = tokenizer(_PROBE, add_special_tokens=False)["input_ids"]
        full = tokenizer(_PROBE)["input_ids"]
        for i in range(len(full) - len(plain) + 1):
            if full[i:i + len(plain)] == plain:
                return cls(tokenizer, tuple(full[:i]), tuple(full[i + len(plain):]),
                           tokenizer.eos_token_id)
        raise OkapiError(f"cannot tell which special tokens the tokenizer {type(tokenizer).__name__} adds: "
                         f"{_PROBE!r} encodes as {plain} alone and {full} with special tokens",
                         hint="use a tokenizer whose special tokens only surround the text")

    def text(self, text: str) -> list[int]:
        """``tokens(text)``: the text's ids without any special token added."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _with_start(self, ids: list[int]) -> list[int]:
        n = len(self.start)
        return ids if n and tuple(ids[:n]) == self.start else [*self.start, *ids]

    def prompt(self, prompt: str) -> list[int]:
        """The ids a model generates from: START + tokens(prompt), never an EOS at the end."""
        return self._with_start(self.text(prompt))

    def sequence(self, prompt: str, response: str) -> list[int]:
        """The ids trained on and scored: START + tokens(prompt + response) + EOS."""
        ids = self._with_start(self.text(prompt + response))
        if self.eos is not None and (not ids or ids[-1] != self.eos):
            ids.append(self.eos)
        return ids

    def split(self, prompt: str, response: str) -> tuple[list[int], list[int]]:
        """:meth:`sequence` cut into its prompt part and its response part (which ends with EOS)."""
        head, whole = self.prompt(prompt), self.sequence(prompt, response)
        n = 0
        while n < min(len(head), len(whole)) and head[n] == whole[n]:
            n += 1
        return whole[:n], whole[n:]

    def without_start_text(self, text: str) -> str:
        """``text`` without START written out at its beginning (``<s>Hi``), for code that lets
        the tokenizer add START to a text and would otherwise get it twice."""
        lead = self.tokenizer.decode(list(self.start)) if self.start else ""
        return text[len(lead):] if lead and text.startswith(lead) else text

    def keep_end(self, ids: list[int], max_length: int) -> list[int]:
        """At most ``max_length`` ids: START and the last ids (the response's end, EOS included)."""
        if len(ids) <= max_length:
            return ids
        n = len(self.start) if tuple(ids[:len(self.start)]) == self.start else 0
        return ids[:n] + ids[len(ids) - (max_length - n):]


def rule_tokenizer(tokenizer):
    """A tokenizer whose plain ``tokenizer(text)`` follows the rule: START + tokens(text).

    For code that tokenizes texts itself (TRL's DPOTrainer, lm-eval's HFLM): a tokenizer
    that appends EOS to every text is copied with that switched off; others are returned
    as they are. The copy is for tokenizing only: save the original with a model.
    """
    rule = TokenRule.of(tokenizer)
    if not rule.appended:
        return tokenizer
    fixed = copy.deepcopy(tokenizer)
    backend = getattr(fixed, "backend_tokenizer", None)
    if backend is not None:
        from tokenizers import processors

        names = fixed.convert_ids_to_tokens(list(rule.start))
        head = "".join(f"{name}:0 " for name in names)
        backend.post_processor = processors.TemplateProcessing(
            single=f"{head}$A:0", pair=f"{head}$A:0 $B:1",
            special_tokens=sorted(set(zip(names, rule.start))))
    if hasattr(fixed, "_add_eos_token"):
        # transformers rebuilds the post-processor from this flag when add_bos_token is set
        object.__setattr__(fixed, "_add_eos_token", False)
    elif hasattr(fixed, "add_eos_token"):  # tokenizers that add special tokens in Python
        fixed.add_eos_token = False
    after = TokenRule.of(fixed)
    if after.appended or after.start != rule.start:
        raise OkapiError(f"the tokenizer {type(tokenizer).__name__} appends {list(rule.appended)} to every "
                         "text and okapi-kit cannot switch that off",
                         hint="use a fast tokenizer (tokenizer.json), or save the tokenizer with "
                         "add_eos_token=False")
    return fixed


def pad(rows: list[list[int]], pad_id: int, side: str):
    """``input_ids`` and ``attention_mask`` tensors of ``rows`` padded on ``side`` (left or right)."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        cols = slice(width - len(row), width) if side == "left" else slice(0, len(row))
        ids[i, cols] = torch.tensor(row, dtype=torch.long)
        mask[i, cols] = 1
    return {"input_ids": ids, "attention_mask": mask}
