"""First-party plugin: translator, ranker (LLM judge), instruction generator and chat
model (a judge other components name) on Claude,
through the official ``anthropic`` client and the Messages API.

The key comes from the environment variable named by ``api_key_env`` (default
``ANTHROPIC_API_KEY``). See docs/plugins/providers.md.
"""

from __future__ import annotations

from okapi_kit import hookimpl

from .chat import AnthropicChat, AnthropicOptions
from .components import (
    AnthropicChatProvider,
    AnthropicGenerator,
    AnthropicJudgeRanker,
    AnthropicTranslator,
)

__all__ = ["AnthropicChat", "AnthropicChatProvider", "AnthropicGenerator", "AnthropicJudgeRanker", "AnthropicOptions", "AnthropicTranslator"]


@hookimpl
def okapi_register_translators(register):
    register(AnthropicTranslator)


@hookimpl
def okapi_register_rankers(register):
    register(AnthropicJudgeRanker)


@hookimpl
def okapi_register_generators(register):
    register(AnthropicGenerator)


@hookimpl
def okapi_register_chat_models(register):
    register(AnthropicChatProvider)
