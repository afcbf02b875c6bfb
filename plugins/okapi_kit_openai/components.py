"""The generic LLM components (okapi_kit.llm) on an OpenAI-compatible chat model:
each combines the provider's options with the component's own."""

from __future__ import annotations

from pydantic import Field

from okapi_kit import ChatProvider
from okapi_kit.llm.judge import JudgeOptions, LLMJudgeRanker
from okapi_kit.llm.self_instruct import SelfInstructGenerator, SelfInstructOptions
from okapi_kit.llm.translate import LLMTranslator, LLMTranslatorOptions

from .chat import OpenAIChat, OpenAIOptions


class OpenAITranslatorConfig(OpenAIOptions, LLMTranslatorOptions):
    """Options of the ``openai`` translator: the provider's and the translator's."""


class OpenAIJudgeConfig(OpenAIOptions, JudgeOptions):
    """Options of the ``openai`` ranker: the provider's and the judge's."""


class OpenAIGeneratorConfig(OpenAIOptions, SelfInstructOptions):
    """Options of the ``openai`` generator: the provider's and Self-Instruct's."""

    temperature: float | None = Field(default=1.0, ge=0, le=2, description="sampling temperature "
                                      "(Alpaca's 1.0: varied tasks); null: the server's default")


class OpenAITranslator(LLMTranslator):
    """Translates with an OpenAI or OpenAI-compatible (vLLM, Ollama ...) chat model."""

    name = "openai"
    Config = OpenAITranslatorConfig

    def chat_model(self) -> OpenAIChat:
        return OpenAIChat(self.config)


class OpenAIJudgeRanker(LLMJudgeRanker):
    """Ranks responses with an OpenAI or OpenAI-compatible chat model as the judge."""

    name = "openai"
    Config = OpenAIJudgeConfig

    def chat_model(self) -> OpenAIChat:
        return OpenAIChat(self.config)


class OpenAIGenerator(SelfInstructGenerator):
    """Writes new instructions from seed tasks (Self-Instruct) with an OpenAI or OpenAI-compatible chat model."""

    name = "openai"
    Config = OpenAIGeneratorConfig

    def chat_model(self) -> OpenAIChat:
        return OpenAIChat(self.config)


class OpenAIChatProvider(ChatProvider):
    """An OpenAI or OpenAI-compatible (vLLM, Ollama ...) chat model, named by another component's options (a judge)."""

    name = "openai"
    Config = OpenAIOptions

    def chat_model(self) -> OpenAIChat:
        return OpenAIChat(self.config)
