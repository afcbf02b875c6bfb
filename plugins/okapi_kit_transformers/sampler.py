"""Sampling K responses per prompt with ``transformers`` generate."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from okapi_kit import ComponentConfig, OkapiError, Sampler

from .options import Device, Dtype


class TransformersSamplerConfig(ComponentConfig):
    max_new_tokens: int = Field(128, ge=1, description="tokens generated per response")
    temperature: float = Field(1.0, ge=0, description="0 means greedy decoding")
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0, description="0 disables top-k filtering")
    batch_size: int = Field(16, ge=1, description="prompts per generate call")
    device: Device = Field("auto", description="auto (cuda when present, else cpu), cpu, cuda, cuda:N or mps")
    dtype: Dtype = Field("auto", description="auto (bf16 on a GPU that has it, else fp32), float32, "
                         "bfloat16 or float16 (fp32, bf16, fp16 also accepted)")


class TransformersSampler(Sampler):
    """Generates responses with a local or hub causal LM (transformers ``generate``).

    Prompts are encoded by the shared token rule (``tokens.py``): the tokenizer's BOS, if it
    puts one, then the prompt's tokens, never an EOS.
    """

    name = "transformers"
    Config = TransformersSamplerConfig

    def __init__(self, config: TransformersSamplerConfig | None = None):
        super().__init__(config)
        self._loaded: tuple[str, object, object] | None = None

    def _model(self, path: str):
        if self._loaded is None or self._loaded[0] != path:
            from .device import pick_device, pick_dtype
            from .loading import load_causal_lm, load_tokenizer
            from .tokens import TokenRule

            device = pick_device(self.config.device)
            rule = TokenRule.of(load_tokenizer(path, padding_side="left"))
            model = load_causal_lm(path, dtype=pick_dtype(self.config.dtype, device)).to(device).eval()
            self._loaded = (path, model, rule)
        return self._loaded[1], self._loaded[2]

    def sample(self, model: str, prompts: Sequence[str], k: int, *, seed: int) -> list[list[str]]:
        import torch

        from .tokens import pad

        lm, rule = self._model(model)
        tok = rule.tokenizer
        cfg = self.config
        greedy = cfg.temperature == 0
        out: list[list[str]] = []
        torch.manual_seed(seed)
        for start in range(0, len(prompts), cfg.batch_size):
            batch = list(prompts[start:start + cfg.batch_size])
            rows = [rule.prompt(p) for p in batch]
            if not all(rows):
                raise OkapiError("an empty prompt has no token to generate from", where="sampler",
                                 hint="leave out records whose prompt is empty")
            enc = {k_: v.to(lm.device) for k_, v in pad(rows, tok.pad_token_id, "left").items()}
            kwargs = dict(max_new_tokens=cfg.max_new_tokens, pad_token_id=tok.pad_token_id,
                          eos_token_id=tok.eos_token_id, num_return_sequences=1 if greedy else k)
            if greedy:
                kwargs.update(do_sample=False)
            else:
                kwargs.update(do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k)
            with torch.no_grad():
                gen = lm.generate(**enc, **kwargs)
            new = gen[:, enc["input_ids"].shape[1]:]
            texts = tok.batch_decode(new, skip_special_tokens=True)
            per = 1 if greedy else k
            for i in range(len(batch)):
                group = [t.strip() for t in texts[i * per:(i + 1) * per]]
                out.append(group * k if greedy else group)
        return out
