"""What the generic LLM components share: one chat model per component, requests, usage.

A provider plugin combines a component below with its own options and says where the
model is: ``class OpenAITranslator(LLMTranslator): def chat_model(self): return OpenAIChat(self.config)``.
"""

from __future__ import annotations

import re
from typing import Any

from ..components import Failed
from ..languages import LANGUAGES
from .chat import ChatModel, ChatReply, ChatRequest

Messages = list[dict[str, str]]


class LLMComponent:
    """Mixin for components whose every model call is ``self.chat.chat_many(...)``."""

    config: Any

    def chat_model(self) -> ChatModel:
        """The model behind this component; provider plugins implement it."""
        raise NotImplementedError(f"{type(self).__name__} does not say which chat model it uses")

    @property
    def chat(self) -> ChatModel:
        """The component's one chat model, made on first use (validating a config makes none),
        so that its usage counts add up over every call."""
        model = self.__dict__.get("_chat_model")
        if model is None:
            model = self.__dict__["_chat_model"] = self.chat_model()
        return model

    def model_name(self) -> str:
        """The model the provider options name (their ``model`` option)."""
        return str(getattr(self.config, "model", "") or "")

    def request(self, messages: Messages) -> ChatRequest:
        # Sampling settings (temperature, max_tokens) belong to the provider's options.
        return ChatRequest.of(self.model_name(), messages)

    def ask(self, conversations: list[Messages]) -> list[ChatReply | Failed]:
        """One reply per conversation, all sent together (the provider runs them concurrently)."""
        if not conversations:
            return []
        replies = self.chat.chat_many([self.request(m) for m in conversations])
        if len(replies) != len(conversations):
            raise RuntimeError(f"{type(self.chat).__name__}.chat_many returned {len(replies)} replies "
                               f"for {len(conversations)} requests")
        return replies

    def forget(self, conversations: list[Messages]) -> int:
        """Unusable replies are not kept in the request cache: a rerun asks again."""
        return self.chat.forget([self.request(m) for m in conversations]) if conversations else 0

    def usage(self) -> dict[str, Any]:
        """Requests sent, cached, retried and failed, tokens, and what the component adds."""
        sent = self.__dict__.get("_chat_model")
        base = sent.stats.summary() if sent is not None else {}
        return {**base, **self.extra_usage()}

    def extra_usage(self) -> dict[str, Any]:
        return {}


_THINK = re.compile(r"^\s*<think>.*?</think>\s*", re.S)


def reply_text(reply: ChatReply) -> str:
    """The reply without a reasoning model's leading ``<think>`` block."""
    return _THINK.sub("", reply.text, count=1)


def language_name(code: str) -> str:
    lang = LANGUAGES.get(code)
    return lang.name if lang is not None else code


def shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
