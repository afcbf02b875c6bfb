"""Asking an LLM judge for short JSON verdicts: parsed strictly, one repair request for a
malformed verdict, then :class:`~okapi_kit.Failed` with the reason.

Every request goes through the chat provider's ``chat_many``: answers are cached by the API
providers, so a rerun sends only what was not answered (a verdict that stayed unparsable is
dropped from the cache, so that it is asked again).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from okapi_kit import ChatProvider, Failed
from okapi_kit.llm.common import LLMComponent, Messages, reply_text
from okapi_kit.llm.judge import VerdictError
from okapi_kit.llm.judge import json_object as any_json_object

T = TypeVar("T")

REPAIR = "Your reply could not be read: {error}. {format}"


class Judge(LLMComponent):
    """The chat model a ``judge:`` option names, asked like every LLM component (through
    ``chat_many``, with its usage counted)."""

    def __init__(self, provider: ChatProvider, label: str):
        self.provider = provider
        self.config = provider.config
        self.label = label  # e.g. "openai:gpt-4o-mini", for protocols and reports
        self.counts: Counter[str] = Counter()

    def chat_model(self) -> Any:
        return self.provider.chat_model()

    def extra_usage(self) -> dict[str, Any]:
        return {k: self.counts[k] for k in ("repair_requests", "repaired", "unparsable")}

    def verdicts(self, conversations: list[Messages], parse: Callable[[str], T],
                 format_text: str) -> list[T | Failed]:
        """One parsed verdict (or Failed) per conversation, in order."""
        results: list[T | Failed | None] = [None] * len(conversations)
        repair: list[tuple[int, Messages]] = []
        for i, (conv, reply) in enumerate(zip(conversations, self.ask(conversations))):
            if isinstance(reply, Failed):
                results[i] = reply
                continue
            text = reply_text(reply)
            try:
                results[i] = parse(text)
            except VerdictError as exc:
                repair.append((i, [*conv, {"role": "assistant", "content": text},
                                   {"role": "user", "content": REPAIR.format(error=exc, format=format_text)}]))
        self.counts["repair_requests"] += len(repair)
        for (i, conv), reply in zip(repair, self.ask([c for _, c in repair])):
            if isinstance(reply, Failed):
                results[i] = reply
                continue
            try:
                results[i] = parse(reply_text(reply))
                self.counts["repaired"] += 1
            except VerdictError as exc:
                self.counts["unparsable"] += 1
                results[i] = Failed(f"judge output unparsable: {exc} (also after a repair request)")
                self.forget([conv[:-2], conv])  # the verdict and its repair are asked again next run
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]


def json_object(text: str, keys: set[str], required: set[str]) -> dict[str, Any]:
    """The one JSON object ``text`` holds (a fenced block is accepted), with only ``keys`` and
    every key of ``required``; raises VerdictError saying what is wrong."""
    data = any_json_object(text)
    missing = sorted(required - set(data))
    extra = sorted(set(data) - keys)
    if missing or extra:
        problems = ([f"missing key(s) {', '.join(map(repr, missing))}"] if missing else []) + \
                   ([f"unexpected key(s) {', '.join(map(repr, extra))}"] if extra else [])
        raise VerdictError("; ".join(problems))
    if "explanation" in data and not isinstance(data["explanation"], str):
        raise VerdictError("the explanation must be a string")
    return data
