"""Chat completions through the official ``openai`` client: OpenAI itself, or any
OpenAI-compatible server (vLLM, Ollama, LM Studio, llama.cpp ...) given by ``base_url``."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from okapi_kit.components import NOT_IN_FINGERPRINT
from okapi_kit.llm.chat import ChatReply, ChatRequest
from okapi_kit.llm.client import ApiChatModel, ApiError, ApiOptions, sendable

API_KEY_ENV = "OPENAI_API_KEY"
OPENAI_URL = "https://api.openai.com/v1"
# A server of one's own usually checks no key, but the client insists on one.
NO_KEY = "no-key"


class OpenAIOptions(ApiOptions):
    """Options of the ``openai`` provider."""

    api_key_env: str = Field(default=API_KEY_ENV, json_schema_extra=NOT_IN_FINGERPRINT,
                             description="environment variable holding the API key; with base_url "
                                         "it may be unset (servers that check no key)")


class OpenAIChat(ApiChatModel):
    """An OpenAI-compatible chat-completions endpoint."""

    provider: ClassVar[str] = "openai"
    default_base_url: ClassVar[str] = OPENAI_URL

    def _make_client(self, api_key: str | None) -> Any:
        import openai

        return openai.OpenAI(api_key=api_key or NO_KEY, base_url=self.base_url,
                             timeout=self.options.timeout, max_retries=0)

    def _send(self, request: ChatRequest) -> ChatReply:
        import openai

        client = self.client
        try:
            # Every parameter goes in the body as given: the server, not this client version,
            # decides what it accepts (vLLM takes top_k, repetition_penalty ...).
            resp = client.chat.completions.create(model=request.model, messages=request.message_dicts(),
                                                  extra_body=sendable(request.params))
        except openai.APIError as exc:
            raise self._client_error(exc, openai) from None
        if not resp.choices:
            raise ApiError("the reply has no choices")
        choice = resp.choices[0]
        text = choice.message.content if choice.message is not None else None
        if text is None:
            refusal = getattr(choice.message, "refusal", None)
            raise ApiError(f"the reply has no text (finish_reason={choice.finish_reason!r}"
                           + (f", refusal: {refusal}" if refusal else "") + ")")
        usage = resp.usage
        return ChatReply(text=text, input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                         output_tokens=int(getattr(usage, "completion_tokens", 0) or 0))
