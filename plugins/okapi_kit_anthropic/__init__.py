"""First-party plugin: translator, ranker (LLM judge) and instruction generator on Claude,
through the official ``anthropic`` client and the Messages API.

The key comes from the environment variable named by ``api_key_env`` (default
``ANTHROPIC_API_KEY``). See docs/plugins/providers.md.
"""

from __future__ import annotations

from okapi_kit import hookimpl

from .chat import AnthropicChat, AnthropicOptions
from .components import AnthropicGenerator, AnthropicJudgeRanker, AnthropicTranslator

__all__ = ["AnthropicChat", "AnthropicGenerator", "AnthropicJudgeRanker", "AnthropicOptions", "AnthropicTranslator"]


@hookimpl
def okapi_register_translators(register):
    register(AnthropicTranslator)


@hookimpl
def okapi_register_rankers(register):
    register(AnthropicJudgeRanker)


@hookimpl
def okapi_register_generators(register):
    register(AnthropicGenerator)
