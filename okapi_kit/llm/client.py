"""What every API provider shares: options, the request cache, retries, concurrency, rate limit.

A provider plugin subclasses :class:`ApiChatModel` and implements one method, ``_send``:
one attempt at one request through the provider's client library, returning a
:class:`~okapi_kit.llm.chat.ChatReply` or raising :class:`ApiError`. Everything else
happens here, alike for every provider:

- answers already in the request cache are returned without sending anything, and
  identical requests within one call are sent once;
- the rest run on a pool of ``concurrency`` threads, spaced to ``requests_per_minute``;
- 429 (honouring Retry-After), 408/409, 5xx, timeouts and dropped connections are retried
  with exponential backoff up to ``max_retries`` times; every answer is stored in the
  cache as soon as it arrives, so a killed run keeps it;
- what still fails comes back as :class:`~okapi_kit.Failed` with the reason; a refused key
  or an unknown model or endpoint stops the call with an :class:`~okapi_kit.OkapiError`.

The retry loop is ours rather than the client libraries' (their ``max_retries`` is set to
0): every attempt then passes the rate limiter, the retry count is exact, and the backoff is
an option.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ..cache import RequestCache, open_cache, request_key
from ..components import NOT_IN_FINGERPRINT, ComponentConfig, Failed
from ..errors import OkapiError
from .chat import ChatModel, ChatReply, ChatRequest

log = logging.getLogger("okapi_kit.llm")

MAX_BACKOFF_S = 60.0
KEY_ONLY_PREFIX = "_"  # request params that distinguish cache entries but are never sent


class ApiOptions(ComponentConfig):
    """Options shared by the API providers. Subclasses set ``api_key_env``'s default."""

    model: str = Field(description="model name as the server knows it (e.g. gpt-4o-mini, "
                                   "claude-sonnet-4-5, or the name vLLM/Ollama serves)")
    base_url: str | None = Field(default=None, description="the server's API root (e.g. "
                                 "http://localhost:8000/v1 for vLLM); null: the provider's own API")
    api_key_env: str = Field(default="OPENAI_API_KEY", json_schema_extra=NOT_IN_FINGERPRINT,
                             description="name of the environment variable holding the API key "
                                         "(the key itself is never an option)")
    temperature: float | None = Field(default=0.0, ge=0, le=2, description="sampling temperature "
                                      "(0: the most likely reply); null: the server's default")
    max_tokens: int | None = Field(default=None, ge=1, description="most tokens per reply; null: "
                                   "the server's default (anthropic: 4096)")
    extra_params: dict[str, Any] = Field(default_factory=dict, description="more request parameters "
                                         "sent as given (e.g. top_p, or vLLM's top_k)")
    concurrency: int = Field(default=8, ge=1, le=512, json_schema_extra=NOT_IN_FINGERPRINT,
                             description="requests in flight at once")
    requests_per_minute: float | None = Field(default=None, gt=0, json_schema_extra=NOT_IN_FINGERPRINT,
                                              description="most requests started per minute "
                                                          "(retries included); null: no limit")
    timeout: float = Field(default=120.0, gt=0, json_schema_extra=NOT_IN_FINGERPRINT,
                           description="seconds to wait for one reply before retrying")
    max_retries: int = Field(default=5, ge=0, le=100, json_schema_extra=NOT_IN_FINGERPRINT,
                             description="extra attempts after a 429, 5xx, timeout or dropped connection")
    retry_backoff: float = Field(default=1.0, ge=0, json_schema_extra=NOT_IN_FINGERPRINT,
                                 description="seconds before the first retry (doubling each time, "
                                             "at most 60) when the server gives no Retry-After")
    max_retry_wait: float = Field(default=120.0, ge=0, json_schema_extra=NOT_IN_FINGERPRINT,
                                  description="a Retry-After longer than this fails the request "
                                              "instead of waiting")
    cache: bool | Path = Field(default=True, json_schema_extra=NOT_IN_FINGERPRINT,
                               description="request cache: true (the default file, $OKAPI_KIT_CACHE "
                                           "or ~/.cache/okapi-kit/requests.sqlite), a file, or false")

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {value!r}")
        return value

    @field_validator("cache")
    @classmethod
    def _cache_path(cls, value: bool | Path, info: ValidationInfo) -> bool | Path:
        # A relative cache file is taken from the folder of the file that names it.
        if isinstance(value, Path):
            value = value.expanduser()
            base = (info.context or {}).get("base_dir")
            if not value.is_absolute() and base is not None:
                value = Path(base) / value
            if value.is_dir():
                raise ValueError(f"cache must be a file, not the folder {value}")
        return value

    @field_validator("extra_params")
    @classmethod
    def _plain_params(cls, value: dict[str, Any]) -> dict[str, Any]:
        reserved = sorted({"model", "messages", "system", "stream"} & set(value))
        if reserved:
            raise ValueError(f"extra_params may not set {', '.join(reserved)}: okapi-kit sets them")
        secret = [k for k in value if any(w in k.lower() for w in ("key", "secret", "auth"))]
        if secret:
            raise ValueError(f"extra_params may not hold credentials ({', '.join(secret)}): API keys "
                             "come from the environment variable named by api_key_env")
        return value

    @model_validator(mode="after")
    def _key_is_set(self) -> ApiOptions:
        # Found by `okapi-kit validate`, not after the stages before this one have run.
        # A server of one's own (base_url) may need no key.
        if self.base_url is None and not os.environ.get(self.api_key_env, "").strip():
            raise ValueError(f"the environment variable {self.api_key_env} is not set: it must hold "
                             "the API key (export it, or name another variable with api_key_env)")
        return self


class ApiError(Exception):
    """One failed attempt. ``retry``: another attempt may succeed (after ``retry_after``
    seconds when the server said so); ``fatal``: no request can succeed (a refused key, an
    unknown model), so the whole call stops."""

    def __init__(self, reason: str, *, retry: bool = False, retry_after: float | None = None,
                 fatal: bool = False, hint: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry = retry
        self.retry_after = retry_after
        self.fatal = fatal
        self.hint = hint


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """The wait a response asks for: ``retry-after-ms``, or ``Retry-After`` in seconds or
    as an HTTP date; None when it names none."""
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / scale)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())
    return None


def status_error(status: int, message: str, headers: Mapping[str, str] | None, *,
                 key_env: str, base_url: str | None, model: str) -> ApiError:
    """Classify an HTTP error status the way every provider should."""
    where = base_url or "the provider's API"
    if status in (401, 403):
        # The server's message may quote part of the key: leave it out.
        return ApiError(f"HTTP {status}: {where} refused the API key", fatal=True,
                        hint=f"check the key in ${key_env}")
    if status == 404:
        return ApiError(f"HTTP 404 from {where}: {message}", fatal=True,
                        hint=f"check the model name ({model!r}) and base_url")
    retry = status in (408, 409, 429) or status >= 500
    return ApiError(f"HTTP {status}: {message}", retry=retry,
                    retry_after=retry_after_seconds(headers) if retry else None)


class RateLimiter:
    """Spaces request starts evenly: at most ``per_minute`` a minute, across threads."""

    def __init__(self, per_minute: float | None):
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self, abort: threading.Event) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            abort.wait(slot - now)


class ApiChatModel(ChatModel):
    """Cache, retries, concurrency and rate limit around one provider's ``_send``."""

    provider: ClassVar[str] = ""
    default_base_url: ClassVar[str] = ""  # the provider's own API (enters cache keys)

    def __init__(self, options: ApiOptions):
        super().__init__()
        self.options = options
        self._limiter = RateLimiter(options.requests_per_minute)
        self._client: Any = None
        self._cache: RequestCache | None = None
        self._setup_lock = threading.Lock()
        self._secret: str | None = None

    # ---- for subclasses ---------------------------------------------------------------------

    def _make_client(self, api_key: str | None) -> Any:
        """The provider's client object (with its own retries off), built once."""
        raise NotImplementedError

    def _send(self, request: ChatRequest) -> ChatReply:
        """One attempt: send ``request`` through ``self.client`` and return the reply, or raise
        :class:`ApiError`. ``request.params`` are final; drop those starting with ``_``."""
        raise NotImplementedError

    def _fallback_params(self) -> dict[str, Any]:
        """Parameters the provider needs when neither the options nor the request give them."""
        return {}

    # ---- shared -----------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        with self._setup_lock:
            if self._client is None:
                self._client = self._make_client(self._api_key())
            return self._client

    def _api_key(self) -> str | None:
        env = self.options.api_key_env
        key = os.environ.get(env, "").strip()
        if not key and self.options.base_url is None:
            raise OkapiError(f"{self.provider}: the environment variable {env} is not set",
                             hint=f"export {env}=... (API keys are read from the environment only)")
        self._secret = key or None
        return key or None

    @property
    def base_url(self) -> str:
        return self.options.base_url or self.default_base_url

    @property
    def cache(self) -> RequestCache | None:
        """Opened on first use, so that building a component (``validate``) touches no file."""
        choice = self.options.cache
        if choice is False:
            return None
        with self._setup_lock:
            if self._cache is None:
                self._cache = open_cache(None if choice is True else choice)
            return self._cache

    def prepare(self, request: ChatRequest) -> ChatRequest:
        """The request as sent: the component's parameters, overridden by the user's options,
        completed by the provider's fallbacks."""
        params = {**self._fallback_params(), **dict(request.params)}
        o = self.options
        params.update(o.extra_params)
        if o.temperature is not None:
            params["temperature"] = o.temperature
        if o.max_tokens is not None:
            params["max_tokens"] = o.max_tokens
        return replace(request, params=tuple(sorted(params.items())))

    def cache_key(self, request: ChatRequest) -> str:
        """Key of a prepared request: provider, endpoint, model, parameters, messages."""
        return request_key({"provider": self.provider, "base_url": self.base_url, "model": request.model,
                            "params": dict(request.params),
                            "messages": [list(m) for m in request.messages]})

    def chat_many(self, requests: list[ChatRequest]) -> list[ChatReply | Failed]:
        prepared = [self.prepare(r) for r in requests]
        keys = [self.cache_key(r) for r in prepared]
        results: list[ChatReply | Failed | None] = [None] * len(prepared)
        todo: dict[str, list[int]] = {}
        cache = self.cache
        for i, key in enumerate(keys):
            hit = cache.get(key) if cache is not None and key not in todo else None
            if hit is not None:
                results[i] = _reply_from(hit)
            else:
                todo.setdefault(key, []).append(i)
        failed_retries = 0
        if todo:
            answers = self._send_all([(key, prepared[idx[0]]) for key, idx in todo.items()])
            for idx, (answer, retries) in zip(todo.values(), answers):
                results[idx[0]] = answer
                if isinstance(answer, Failed):
                    failed_retries += retries
                for j in idx[1:]:  # the same request again in this call: answered once
                    results[j] = answer if isinstance(answer, Failed) else replace(answer, cached=True, retries=0)
        out = [r for r in results if r is not None]
        assert len(out) == len(prepared)
        for req, reply in zip(prepared, out):
            self.stats.record(self.provider, req.model, reply)
        self.stats.retried += failed_retries  # a Failed does not carry its retries
        return out

    def forget(self, requests: list[ChatRequest]) -> int:
        """Drop the cached answers to ``requests``, so that the next call sends them again:
        for replies a component found unusable (a verdict it could not parse even after a
        repair request). Returns how many answers were dropped."""
        cache = self.cache
        if cache is None:
            return 0
        return sum(cache.delete(self.cache_key(self.prepare(r))) for r in requests)

    def _send_all(self, work: list[tuple[str, ChatRequest]]) -> list[tuple[ChatReply | Failed, int]]:
        abort = threading.Event()
        workers = min(self.options.concurrency, len(work))
        if workers == 1:
            return [self._call(key, req, abort) for key, req in work]
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"okapi-{self.provider}")
        interrupted = False
        try:
            futures = [pool.submit(self._call, key, req, abort) for key, req in work]
            return [f.result() for f in futures]
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            abort.set()  # the workers start nothing more
            # Requests in flight finish (and their answers are cached), except after Ctrl-C.
            pool.shutdown(wait=not interrupted, cancel_futures=True)

    def _call(self, key: str, request: ChatRequest, abort: threading.Event) -> tuple[ChatReply | Failed, int]:
        """Send one request until it succeeds, fails for good, or the call is aborted; the
        reply and the number of retries it took."""
        o = self.options
        retries = 0
        while True:
            if abort.is_set():
                return Failed("not sent: the call was stopped"), retries
            self._limiter.wait(abort)
            try:
                reply = self._send(request)
            except ApiError as err:
                reason = self._scrub(err.reason)
                if err.fatal:
                    abort.set()  # the other workers send nothing more
                    raise OkapiError(f"{self.provider}: {reason}", hint=err.hint) from None
                wait = err.retry_after if err.retry_after is not None else self._backoff(retries)
                if not err.retry or retries >= o.max_retries:
                    tries = f" (after {retries + 1} attempts)" if retries else ""
                    return Failed(f"{self.provider}: {reason}{tries}"), retries
                if wait > o.max_retry_wait:
                    return Failed(f"{self.provider}: {reason}; the server asks to wait {wait:.0f} s, "
                                  f"more than max_retry_wait ({o.max_retry_wait:g} s)"), retries
                log.info("%s: %s; retry %d of %d in %.2f s", self.provider, reason, retries + 1,
                         o.max_retries, wait)
                retries += 1
                if abort.wait(wait):
                    return Failed("not sent: the call was stopped"), retries
                continue
            reply.retries = retries
            reply.cached = False
            cache = self.cache
            if cache is not None:
                cache.put(key, {"text": reply.text, "input_tokens": reply.input_tokens,
                                "output_tokens": reply.output_tokens})
            return reply, retries

    def _client_error(self, exc: Exception, lib: Any) -> ApiError:
        """An exception of an official client library (``lib``: the ``openai`` or ``anthropic``
        module, whose error classes have the same names) as an :class:`ApiError`."""
        o = self.options
        if isinstance(exc, lib.APITimeoutError):
            return ApiError(f"no reply within {o.timeout:g} s (timeout)", retry=True)
        if isinstance(exc, lib.APIConnectionError):
            cause = exc.__cause__ or exc
            return ApiError(f"connection failed: {type(cause).__name__}: {cause}", retry=True)
        if isinstance(exc, lib.APIStatusError):
            return status_error(exc.status_code, _server_message(exc), exc.response.headers,
                                key_env=o.api_key_env, base_url=o.base_url, model=o.model)
        return ApiError(f"{type(exc).__name__}: {exc}")

    def _backoff(self, retries: int) -> float:
        base = min(self.options.retry_backoff * 2 ** retries, MAX_BACKOFF_S)
        return base * random.uniform(0.75, 1.0)  # jitter: parallel retries do not arrive together

    def _scrub(self, text: str) -> str:
        """A reason never quotes the key (some servers echo what they were sent)."""
        return text.replace(self._secret, "<api key>") if self._secret else text


def sendable(params: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    """The parameters to send: all but the key-only ones (``_sample`` and the like)."""
    return {k: v for k, v in params if not k.startswith(KEY_ONLY_PREFIX)}


def _server_message(exc: Any) -> str:
    """The error message a server gave (``{"error": {"message": ...}}``), kept short."""
    body = getattr(exc, "body", None)
    message = None
    if isinstance(body, dict):
        err = body.get("error", body)
        message = err.get("message") if isinstance(err, dict) else err
    text = str(message or getattr(exc, "message", "") or exc)
    return text if len(text) <= 300 else text[:300] + "..."


def _reply_from(stored: dict[str, Any]) -> ChatReply:
    return ChatReply(text=stored["text"], input_tokens=int(stored.get("input_tokens", 0)),
                     output_tokens=int(stored.get("output_tokens", 0)), cached=True)
