"""The toy task: "what is a + b?" in English, Vietnamese and Bengali.

The rule that makes a response good does not depend on the language: the good response
gives the sum, a bad one another number. Prompts and responses are written in each
language's own words (digits stay ASCII in every language), so a reward model trained on
English pairs can only score Vietnamese or Bengali by what the languages share: the digits
and where the answer stands relative to the question.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

LANGUAGES = ("en", "vi", "bn")
MAX_OPERAND = 4  # a, b in 0..4: sums 0..8, one digit each

# Several English phrasings, so that an English reward model cannot lean on one template.
PROMPTS: dict[str, tuple[str, ...]] = {
    "en": ("What is {a} plus {b}?", "Add {a} and {b}.", "Compute {a} + {b}.", "How much is {a} + {b}?",
           "{a} + {b} = ?", "Please tell me the sum of {a} and {b}.", "If you add {b} to {a}, what do you get?",
           "Sum: {a}, {b}"),
    "vi": ("{a} cộng {b} bằng bao nhiêu?", "Hãy tính {a} + {b}."),
    "bn": ("{a} যোগ {b} কত?", "{a} + {b} গণনা করুন।"),
}
ANSWERS: dict[str, tuple[str, ...]] = {
    "en": ("The answer is {n}.", "It is {n}.", "{n}", "{n}, of course.", "The sum is {n}.",
           "That makes {n}."),
    "vi": ("Đáp án là {n}.", "Kết quả là {n}."),
    "bn": ("উত্তর হল {n}।", "ফলাফল {n}।"),
}
_INSTRUCTION = re.compile(r"### Instruction:\n(.*?)\n\n", re.S)
_NUMBER = re.compile(r"\d+")


def operands(prompt: str) -> tuple[int, int] | None:
    """The two numbers of a task prompt (raw, or inside Okapi's Alpaca template)."""
    found = _INSTRUCTION.search(prompt)
    numbers = _NUMBER.findall(found.group(1) if found else prompt)
    return (int(numbers[0]), int(numbers[1])) if len(numbers) >= 2 else None


def answer(response: str) -> int | None:
    """The first number a response gives."""
    found = _NUMBER.search(response)
    return int(found.group()) if found else None


def correct(prompts: Sequence[str], completions: Sequence[str], **_: object) -> list[float]:
    """The task's true reward (TRL's reward-function signature): 1 when the response's first
    number is the sum, else 0. For the ``callable`` reward source and the ``reward`` evaluator."""
    out = []
    for prompt, completion in zip(prompts, completions):
        ab = operands(prompt)
        out.append(float(ab is not None and answer(completion) == ab[0] + ab[1]))
    return out
