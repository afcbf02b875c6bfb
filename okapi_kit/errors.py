"""The one error type a user sees. The CLI prints its message and exits with code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class OkapiError(Exception):
    """A problem the user can fix: bad input, a bad config, a missing file.

    ``where`` says where (``file:line``, ``config.sft.trainer``); ``hint`` says how to fix it.
    """

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


def did_you_mean(word: str, choices: Iterable[str], n: int = 3) -> str:
    """A hint naming the closest choices, or listing them all when none is close."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(word, choices, n=n, cutoff=0.5)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    if not choices:
        return "none is available"
    shown = ", ".join(choices[:30]) + (" ..." if len(choices) > 30 else "")
    return f"choose one of: {shown}"


class OkapiErrors(OkapiError):
    """Several problems found at once (``validate`` reports every problem of a config)."""

    def __init__(self, problems: list[OkapiError]):
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problems")

    def render(self) -> str:
        if len(self.problems) == 1:
            return self.problems[0].render()
        lines = [f"{len(self.problems)} problems:"]
        for p in self.problems:
            lines.append("  - " + p.render().replace("\n", "\n    "))
        return "\n".join(lines)


def raise_all(problems: list[OkapiError]) -> None:
    """Raise nothing, the one problem, or all of them together."""
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise OkapiErrors(problems)
