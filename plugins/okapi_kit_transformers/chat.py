"""A local causal LM as an :class:`okapi_kit.llm.ChatModel` (batched transformers ``generate``).

The generic LLM components (translator, judge, Self-Instruct) call ``chat_many``; here the
requests are rendered with the tokenizer's chat template (else a plain ``role: content``
transcript), encoded by the shared token rule (``tokens.py``) and generated in batches.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from okapi_kit import ComponentConfig, Failed, OkapiError
from okapi_kit.llm.chat import ChatModel, ChatReply, ChatRequest

from .model_ref import ModelRef
from .options import Device, Dtype

# request params this model honours (they override the options); others are ignored
PARAMS = {"temperature": "temperature", "max_tokens": "max_new_tokens", "top_p": "top_p", "seed": "seed"}

# Loaded models by (model, device, dtype): a translator and a judge on the same model in one
# run share one copy in memory rather than loading it twice.
_LOADED: dict[tuple[str, str, str], tuple[Any, Any, list[int]]] = {}


class TransformersChatOptions(ComponentConfig):
    """Options of the local chat model, shared by the ``transformers`` translator, judge and generator."""

    model: ModelRef = Field(description="folder or hub id of a causal LM (an instruction-tuned one, with a "
                       "chat template, answers best)")
    max_new_tokens: int = Field(512, ge=1, description="tokens generated per reply")
    temperature: float = Field(0.0, ge=0, description="0 means greedy decoding")
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int = Field(0, ge=0, description="seeds sampling (temperature > 0): the same requests get the same replies")
    batch_size: int = Field(8, ge=1, description="requests per generate call")
    chat_template: bool = Field(True, description="use the tokenizer's chat template when it has one; "
                                "false: always the plain 'role: content' transcript")
    device: Device = Field("auto", description="auto (cuda when present, else cpu), cpu, cuda, cuda:N or mps")
    dtype: Dtype = Field("auto", description="auto (bf16 on a GPU that has it, else fp32), float32, "
                         "bfloat16 or float16 (fp32, bf16, fp16 also accepted)")


def transcript(messages: list[dict[str, str]]) -> str:
    """The plain prompt for a model without a chat template: ``role: content`` blocks, then
    ``assistant:`` for the model to continue."""
    return "\n\n".join([f"{m['role']}: {m['content']}" for m in messages] + ["assistant:"])


def render_prompt(tokenizer: Any, messages: list[dict[str, str]], *, use_template: bool = True) -> str:
    """The prompt text for ``messages``: the tokenizer's chat template with the generation
    prompt added, or :func:`transcript`. A template that refuses a system message (Gemma's)
    gets it folded into the first user message."""
    if not (use_template and getattr(tokenizer, "chat_template", None)):
        return transcript(messages)
    from jinja2 import TemplateError

    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except TemplateError as exc:  # raised by the template itself (raise_exception)
        system = [m["content"] for m in messages if m["role"] == "system"]
        rest = [dict(m) for m in messages if m["role"] != "system"]
        if not system or not rest or rest[0]["role"] != "user":
            raise OkapiError(f"the chat template of the model cannot render these messages: {exc}",
                             where="transformers", hint="set chat_template: false to use a plain transcript") from None
        rest[0]["content"] = "\n\n".join([*system, rest[0]["content"]])
        return tokenizer.apply_chat_template(rest, tokenize=False, add_generation_prompt=True)


def _load(name: str, device: str, dtype: str) -> tuple[Any, Any, list[int]]:
    from .device import pick_dtype
    from .loading import load_causal_lm, load_tokenizer
    from .tokens import TokenRule

    rule = TokenRule.of(load_tokenizer(name, padding_side="left"))
    model = load_causal_lm(name, dtype=pick_dtype(dtype, device)).to(device).eval()
    eos = getattr(model.generation_config, "eos_token_id", None)
    stops = [*(eos if isinstance(eos, list) else [eos]), rule.tokenizer.eos_token_id]
    return model, rule, list(dict.fromkeys(s for s in stops if s is not None))


class TransformersChat(ChatModel):
    """Answers chat requests with a local or hub causal LM; deterministic for a given seed."""

    provider = "transformers"

    def __init__(self, options: TransformersChatOptions):
        super().__init__()
        self.options = options
        self.model_name = str(options.model)
        self._loaded: tuple[Any, Any, list[int]] | None = None

    def _load(self) -> tuple[Any, Any, list[int]]:
        """(model, token rule, stop ids); the stop ids are the generation config's EOS ids
        (chat models often end a turn with their own token) and the tokenizer's EOS."""
        if self._loaded is None:
            from .device import pick_device

            device = pick_device(self.options.device)
            key = (self.model_name, device, self.options.dtype)
            if key not in _LOADED:
                _LOADED[key] = _load(self.model_name, device, self.options.dtype)
            self._loaded = _LOADED[key]
        return self._loaded

    def encode(self, messages: list[dict[str, str]]) -> list[int]:
        """The prompt ids for ``messages``: START + tokens(rendered prompt), as the token rule says."""
        _, rule, _ = self._load()
        text = render_prompt(rule.tokenizer, messages, use_template=self.options.chat_template)
        return rule.prompt(rule.without_start_text(text))

    def chat_many(self, requests: list[ChatRequest]) -> list[ChatReply | Failed]:
        replies: list[ChatReply | Failed | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}  # one generate setting per group
        for i, req in enumerate(requests):
            groups.setdefault(tuple((k, v) for k, v in req.params if k in PARAMS), []).append(i)
        for key, idxs in groups.items():
            settings = self.options.model_copy(update={PARAMS[k]: v for k, v in key})
            for n, start in enumerate(range(0, len(idxs), settings.batch_size)):
                batch = idxs[start:start + settings.batch_size]
                for i, reply in zip(batch, self._generate([requests[i] for i in batch], settings, n)):
                    replies[i] = reply
        for reply in replies:
            self.stats.record(self.provider, self.model_name, reply)
        return replies  # type: ignore[return-value]  # every slot was filled above

    def _generate(self, requests: list[ChatRequest], cfg: TransformersChatOptions,
                  batch_no: int) -> list[ChatReply | Failed]:
        import torch

        from .tokens import pad

        model, rule, stops = self._load()
        tok = rule.tokenizer
        limit = getattr(model.config, "max_position_embeddings", None)
        out: list[ChatReply | Failed | None] = [None] * len(requests)
        rows: dict[int, list[int]] = {}
        for i, req in enumerate(requests):
            ids = self.encode(req.message_dicts()) if req.messages else []
            if not ids:
                out[i] = Failed("the request has no prompt to generate from")
            elif limit and len(ids) + cfg.max_new_tokens > limit:
                out[i] = Failed(f"the prompt has {len(ids)} tokens; with max_new_tokens={cfg.max_new_tokens} "
                                f"it exceeds the model's {limit} positions")
            else:
                rows[i] = ids
        if rows:
            enc = {k: v.to(model.device) for k, v in pad(list(rows.values()), tok.pad_token_id, "left").items()}
            kwargs: dict[str, Any] = dict(max_new_tokens=cfg.max_new_tokens, pad_token_id=tok.pad_token_id,
                                          eos_token_id=stops)
            if cfg.temperature > 0:
                kwargs.update(do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p, top_k=0)
                # seeded per batch: the same requests in the same order get the same replies,
                # as they would from a provider's request cache
                torch.manual_seed(cfg.seed + batch_no)
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            with torch.no_grad():
                gen = model.generate(**enc, **kwargs)
            width = enc["input_ids"].shape[1]
            for (i, ids), new in zip(rows.items(), gen[:, width:].tolist()):
                end = next((j for j, t in enumerate(new) if t in stops), None)
                body = new if end is None else new[:end]
                out[i] = ChatReply(text=tok.decode(body, skip_special_tokens=True).strip(),
                                   input_tokens=len(ids), output_tokens=len(body) + (end is not None))
        return out  # type: ignore[return-value]
