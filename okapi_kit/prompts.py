"""Prompt formatting: Okapi's Alpaca-style template, or the model's own chat template."""

from __future__ import annotations

from functools import lru_cache

from .errors import OkapiError

ALPACA_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"
)


def format_alpaca(instruction: str, input: str = "") -> str:
    if input.strip():
        return ALPACA_WITH_INPUT.format(instruction=instruction, input=input)
    return ALPACA_NO_INPUT.format(instruction=instruction)


@lru_cache(maxsize=8)
def _chat_template_of(model: str, trust_remote_code: bool):
    from transformers import AutoTokenizer  # only when a chat template is asked for

    try:
        tok = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise OkapiError(f"could not load the tokenizer of {model!r}: {exc}") from None
    return tok if getattr(tok, "chat_template", None) else None


class PromptFormatter:
    """Turns (instruction, input) into the prompt string a model sees.

    ``alpaca``: Okapi's template (for base models). ``chat``: the model's chat template
    (an error if it has none). ``auto``: chat when the model has a template, else alpaca.
    """

    def __init__(self, style: str, model: str, *, trust_remote_code: bool = False):
        self.style = style
        self._tokenizer = None
        if style in ("chat", "auto"):
            self._tokenizer = _chat_template_of(model, trust_remote_code)
            if self._tokenizer is None and style == "chat":
                raise OkapiError(f"prompt_template is 'chat' but {model!r} has no chat template",
                                 hint="set prompt_template: alpaca (or auto)")

    def __call__(self, instruction: str, input: str = "") -> str:
        if self._tokenizer is None:
            return format_alpaca(instruction, input)
        content = f"{instruction}\n\n{input}" if input.strip() else instruction
        return self._tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True)
