"""The one interface between LLM-backed components and the models behind them.

A provider plugin (openai, anthropic, transformers) implements :class:`ChatModel`;
the generic components (translator, judge ranker, Self-Instruct generator in this
package) only call :meth:`ChatModel.chat_many`. Caching, retries, concurrency and rate
limits live in the provider's ``chat_many``, so every component gets them alike.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ..components import Failed


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completion request. ``params`` holds sampling settings (temperature,
    max_tokens, seed ...); together with provider, model and messages they key the cache."""

    model: str
    messages: tuple[tuple[str, str], ...]  # (role, content) pairs: hashable, ordered
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, model: str, messages: list[dict[str, str]], **params: Any) -> ChatRequest:
        return cls(model, tuple((m["role"], m["content"]) for m in messages), tuple(sorted(params.items())))

    def message_dicts(self) -> list[dict[str, str]]:
        return [{"role": r, "content": c} for r, c in self.messages]


@dataclass
class ChatReply:
    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    cached: bool = False  # answered from the request cache: nothing was sent
    retries: int = 0  # how many extra attempts the provider needed


@dataclass
class UsageStats:
    """Counts for a stage summary: requests sent, answered from cache, retried, failed, and
    tokens per (provider, model)."""

    sent: int = 0
    cached: int = 0
    retried: int = 0
    failed: int = 0
    tokens: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: {"input": 0, "output": 0}))

    def record(self, provider: str, model: str, reply: ChatReply | Failed) -> None:
        if isinstance(reply, Failed):
            self.failed += 1
            return
        if reply.cached:
            self.cached += 1
        else:
            self.sent += 1
            t = self.tokens[f"{provider}/{model}"]
            t["input"] += reply.input_tokens
            t["output"] += reply.output_tokens
        self.retried += reply.retries

    def summary(self) -> dict[str, Any]:
        return {"sent": self.sent, "cached": self.cached, "retried": self.retried, "failed": self.failed,
                "tokens": {k: dict(v) for k, v in self.tokens.items()}}


class ChatModel:
    """A model that answers chat requests. Subclasses implement :meth:`chat_many`."""

    provider: str = ""

    def __init__(self) -> None:
        self.stats = UsageStats()

    def chat_many(self, requests: list[ChatRequest]) -> list[ChatReply | Failed]:
        """One reply per request, in order (concurrently where the provider allows); a request
        that still fails after retries comes back as :class:`~okapi_kit.Failed` with the reason."""
        raise NotImplementedError

    def forget(self, requests: list[ChatRequest]) -> int:
        """Drop stored answers to ``requests`` that a component found unusable, so that the
        next run asks again instead of replaying them; a model without a cache has none."""
        return 0
