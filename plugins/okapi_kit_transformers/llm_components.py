"""The generic LLM components (okapi_kit.llm) on a local causal LM: translator, judge, generator,
and the local model as a chat provider other components name (a judge)."""

from __future__ import annotations

from pydantic import Field

from okapi_kit import ChatProvider
from okapi_kit.llm.judge import JudgeOptions, LLMJudgeRanker
from okapi_kit.llm.self_instruct import SelfInstructGenerator, SelfInstructOptions
from okapi_kit.llm.translate import LLMTranslator, LLMTranslatorOptions

from .chat import TransformersChat, TransformersChatOptions

SEED = "seeds everything random in the component: sampling (temperature > 0) and the task's own draws"


class TransformersTranslatorConfig(TransformersChatOptions, LLMTranslatorOptions):
    """Options of the ``transformers`` translator: the local model's and the translator's."""


class TransformersJudgeConfig(TransformersChatOptions, JudgeOptions):
    """Options of the ``transformers`` ranker: the local model's and the judge's."""

    seed: int = Field(0, ge=0, description=SEED + " (the order the responses are shown in)")


class TransformersGeneratorConfig(TransformersChatOptions, SelfInstructOptions):
    """Options of the ``transformers`` generator: the local model's and Self-Instruct's."""

    # Self-Instruct needs varied replies: Alpaca sampled at temperature 1
    temperature: float = Field(1.0, ge=0, description="0 means greedy decoding (1.0, as Alpaca)")
    seed: int = Field(0, ge=0, description=SEED + " (the seed tasks shown in each request)")


class TransformersTranslator(LLMTranslator):
    """Translates with a local causal LM prompted as a translator (chat template if it has one)."""

    name = "transformers"
    Config = TransformersTranslatorConfig

    def chat_model(self) -> TransformersChat:
        return TransformersChat(self.config)


class TransformersJudgeRanker(LLMJudgeRanker):
    """Ranks responses with a local causal LM as the judge (two-turn Okapi method or direct)."""

    name = "transformers"
    Config = TransformersJudgeConfig

    def chat_model(self) -> TransformersChat:
        return TransformersChat(self.config)


class TransformersSelfInstructGenerator(SelfInstructGenerator):
    """Generates instructions Self-Instruct style with a local causal LM."""

    name = "transformers"
    Config = TransformersGeneratorConfig

    def chat_model(self) -> TransformersChat:
        return TransformersChat(self.config)


class TransformersChatProvider(ChatProvider):
    """A local causal LM as a chat model, named by another component's options (a judge)."""

    name = "transformers"
    Config = TransformersChatOptions

    def chat_model(self) -> TransformersChat:
        return TransformersChat(self.config)
