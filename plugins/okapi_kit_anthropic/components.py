"""The generic LLM components (okapi_kit.llm) on a Claude model (Anthropic Messages API):
each combines the provider's options with the component's own."""

from __future__ import annotations

from pydantic import Field

from okapi_kit import ChatProvider
from okapi_kit.llm.judge import JudgeOptions, LLMJudgeRanker
from okapi_kit.llm.self_instruct import SelfInstructGenerator, SelfInstructOptions
from okapi_kit.llm.translate import LLMTranslator, LLMTranslatorOptions

from .chat import AnthropicChat, AnthropicOptions


class AnthropicTranslatorConfig(AnthropicOptions, LLMTranslatorOptions):
    """Options of the ``anthropic`` translator: the provider's and the translator's."""


class AnthropicJudgeConfig(AnthropicOptions, JudgeOptions):
    """Options of the ``anthropic`` ranker: the provider's and the judge's."""


class AnthropicGeneratorConfig(AnthropicOptions, SelfInstructOptions):
    """Options of the ``anthropic`` generator: the provider's and Self-Instruct's."""

    temperature: float | None = Field(default=1.0, ge=0, le=2, description="sampling temperature "
                                      "(Alpaca's 1.0: varied tasks); null: the server's default")


class AnthropicTranslator(LLMTranslator):
    """Translates with a Claude model (Anthropic Messages API)."""

    name = "anthropic"
    Config = AnthropicTranslatorConfig

    def chat_model(self) -> AnthropicChat:
        return AnthropicChat(self.config)


class AnthropicJudgeRanker(LLMJudgeRanker):
    """Ranks responses with a Claude model as the judge."""

    name = "anthropic"
    Config = AnthropicJudgeConfig

    def chat_model(self) -> AnthropicChat:
        return AnthropicChat(self.config)


class AnthropicGenerator(SelfInstructGenerator):
    """Writes new instructions from seed tasks (Self-Instruct) with a Claude model."""

    name = "anthropic"
    Config = AnthropicGeneratorConfig

    def chat_model(self) -> AnthropicChat:
        return AnthropicChat(self.config)


class AnthropicChatProvider(ChatProvider):
    """A Claude model (Anthropic Messages API), named by another component's options (a judge)."""

    name = "anthropic"
    Config = AnthropicOptions

    def chat_model(self) -> AnthropicChat:
        return AnthropicChat(self.config)
