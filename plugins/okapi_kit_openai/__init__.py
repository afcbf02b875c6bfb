"""First-party plugin: translator, ranker (LLM judge), instruction generator and chat
model (a judge other components name) on any OpenAI-compatible chat-completions server,
through the official ``openai`` client.

The key comes from the environment variable named by ``api_key_env`` (default
``OPENAI_API_KEY``); ``base_url`` points at vLLM, Ollama, LM Studio and the like.
See docs/plugins/providers.md.
"""

from __future__ import annotations

from okapi_kit import hookimpl
from okapi_kit.plugins import lazy_exports

__all__ = ["OpenAIChat", "OpenAIChatProvider", "OpenAIGenerator", "OpenAIJudgeRanker", "OpenAIOptions", "OpenAITranslator"]


@hookimpl
def okapi_register_translators(register):
    from .components import OpenAITranslator

    register(OpenAITranslator)


@hookimpl
def okapi_register_rankers(register):
    from .components import OpenAIJudgeRanker

    register(OpenAIJudgeRanker)


@hookimpl
def okapi_register_generators(register):
    from .components import OpenAIGenerator

    register(OpenAIGenerator)


@hookimpl
def okapi_register_chat_models(register):
    from .components import OpenAIChatProvider

    register(OpenAIChatProvider)


# Imported on first use (okapi_kit.plugins.lazy_exports).
_EXPORTS = {
    "OpenAIChat": "chat",
    "OpenAIChatProvider": "components",
    "OpenAIGenerator": "components",
    "OpenAIJudgeRanker": "components",
    "OpenAIOptions": "chat",
    "OpenAITranslator": "components",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
