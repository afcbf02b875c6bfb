"""First-party plugin: translator, ranker (LLM judge), instruction generator and chat
model (a judge other components name) on Claude,
through the official ``anthropic`` client and the Messages API.

The key comes from the environment variable named by ``api_key_env`` (default
``ANTHROPIC_API_KEY``). See docs/plugins/providers.md.
"""

from __future__ import annotations

from okapi_kit import hookimpl
from okapi_kit.plugins import lazy_exports

__all__ = ["AnthropicChat", "AnthropicChatProvider", "AnthropicGenerator", "AnthropicJudgeRanker", "AnthropicOptions", "AnthropicTranslator"]


@hookimpl
def okapi_register_translators(register):
    from .components import AnthropicTranslator

    register(AnthropicTranslator)


@hookimpl
def okapi_register_rankers(register):
    from .components import AnthropicJudgeRanker

    register(AnthropicJudgeRanker)


@hookimpl
def okapi_register_generators(register):
    from .components import AnthropicGenerator

    register(AnthropicGenerator)


@hookimpl
def okapi_register_chat_models(register):
    from .components import AnthropicChatProvider

    register(AnthropicChatProvider)


# Imported on first use (okapi_kit.plugins.lazy_exports).
_EXPORTS = {
    "AnthropicChat": "chat",
    "AnthropicChatProvider": "components",
    "AnthropicGenerator": "components",
    "AnthropicJudgeRanker": "components",
    "AnthropicOptions": "chat",
    "AnthropicTranslator": "components",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
