"""Claude through the official ``anthropic`` client and the Messages API."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from okapi_kit.components import NOT_IN_FINGERPRINT
from okapi_kit.llm.chat import ChatReply, ChatRequest
from okapi_kit.llm.client import ApiChatModel, ApiError, ApiOptions, sendable

API_KEY_ENV = "ANTHROPIC_API_KEY"
ANTHROPIC_URL = "https://api.anthropic.com"
DEFAULT_MAX_TOKENS = 4096  # the Messages API requires max_tokens; a reply is billed by its length
NO_KEY = "no-key"


class AnthropicOptions(ApiOptions):
    """Options of the ``anthropic`` provider."""

    api_key_env: str = Field(default=API_KEY_ENV, json_schema_extra=NOT_IN_FINGERPRINT,
                             description="environment variable holding the API key")


class AnthropicChat(ApiChatModel):
    """Anthropic's Messages API (or a server that speaks it, given by ``base_url``)."""

    provider: ClassVar[str] = "anthropic"
    default_base_url: ClassVar[str] = ANTHROPIC_URL

    def _make_client(self, api_key: str | None) -> Any:
        import anthropic

        return anthropic.Anthropic(api_key=api_key or NO_KEY, base_url=self.base_url,
                                   timeout=self.options.timeout, max_retries=0)

    def _fallback_params(self) -> dict[str, Any]:
        return {"max_tokens": DEFAULT_MAX_TOKENS}

    def _send(self, request: ChatRequest) -> ChatReply:
        import anthropic

        params = sendable(request.params)
        # The Messages API has no seed: it still tells cache entries apart, but is not sent.
        params.pop("seed", None)
        if "stop" in params:
            stop = params.pop("stop")
            params["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        max_tokens = int(params.pop("max_tokens"))
        # System prompts are a parameter here, not a message.
        system = "\n\n".join(c for r, c in request.messages if r == "system")
        messages = [{"role": r, "content": c} for r, c in request.messages if r != "system"]
        extra: dict[str, Any] = {"system": system} if system else {}
        try:
            resp = self.client.messages.create(model=request.model, max_tokens=max_tokens, messages=messages,
                                               extra_body={**params, **extra})
        except anthropic.APIError as exc:
            raise self._client_error(exc, anthropic) from None
        texts = [b.text for b in resp.content or [] if getattr(b, "type", None) == "text"]
        if not texts:
            raise ApiError(f"the reply has no text (stop_reason={resp.stop_reason!r})")
        usage = resp.usage
        return ChatReply(text="".join(texts), input_tokens=int(getattr(usage, "input_tokens", 0) or 0),
                         output_tokens=int(getattr(usage, "output_tokens", 0) or 0))
