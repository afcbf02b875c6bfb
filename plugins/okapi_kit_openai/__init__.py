"""First-party plugin: translator, ranker (LLM judge), instruction generator and chat
model (a judge other components name) on any OpenAI-compatible chat-completions server,
through the official ``openai`` client.

The key comes from the environment variable named by ``api_key_env`` (default
``OPENAI_API_KEY``); ``base_url`` points at vLLM, Ollama, LM Studio and the like.
See docs/plugins/providers.md.
"""

from __future__ import annotations

from okapi_kit import hookimpl

from .chat import OpenAIChat, OpenAIOptions
from .components import OpenAIChatProvider, OpenAIGenerator, OpenAIJudgeRanker, OpenAITranslator

__all__ = ["OpenAIChat", "OpenAIChatProvider", "OpenAIGenerator", "OpenAIJudgeRanker", "OpenAIOptions", "OpenAITranslator"]


@hookimpl
def okapi_register_translators(register):
    register(OpenAITranslator)


@hookimpl
def okapi_register_rankers(register):
    register(OpenAIJudgeRanker)


@hookimpl
def okapi_register_generators(register):
    register(OpenAIGenerator)


@hookimpl
def okapi_register_chat_models(register):
    register(OpenAIChatProvider)
