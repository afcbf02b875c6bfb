"""LLM-backed components shared by the provider plugins (see :mod:`okapi_kit.llm.chat`)."""

from .chat import ChatModel, ChatReply, ChatRequest, UsageStats

__all__ = ["ChatModel", "ChatReply", "ChatRequest", "UsageStats"]
