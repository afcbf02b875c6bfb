"""The model an evaluation scores: a local folder, a hub id, or a PEFT adapter folder.

An adapter folder (it holds ``adapter_config.json``) names its base model in
``base_model_name_or_path``; the base is loaded, the adapter applied with ``peft`` and,
where the adapter type allows it (LoRA and kin), merged into the weights so that
scoring runs at the base model's speed. The tokenizer comes from the adapter folder
when it has one (training may add tokens), else from the base.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from okapi_kit import OkapiError

ADAPTER_CONFIG = "adapter_config.json"


def adapter_base(model: str) -> str | None:
    """The base model an adapter folder names, or None when ``model`` is not an adapter."""
    config = Path(model).expanduser() / ADAPTER_CONFIG
    if not config.is_file():
        return None
    try:
        base = json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError) as exc:
        raise OkapiError(f"cannot read {config}: {exc}", hint="is it a PEFT adapter folder?") from None
    if not isinstance(base, str) or not base:
        raise OkapiError(f"{config} names no base model (base_model_name_or_path)",
                         hint="set base_model_name_or_path to the base model's folder or hub id")
    return base


def load(model: str, *, trust_remote_code: bool, dtype: Any, device: str) -> tuple[Any, Any]:
    """(model on ``device``, in eval mode; tokenizer following okapi-kit's token rule)."""
    from okapi_kit_transformers.loading import load_causal_lm, load_tokenizer
    from okapi_kit_transformers.tokens import rule_tokenizer

    base = adapter_base(model)
    weights = base or model
    has_tokenizer = base is None or (Path(model).expanduser() / "tokenizer_config.json").is_file()
    tokenizer = load_tokenizer(model if has_tokenizer else base, trust_remote_code=trust_remote_code)
    lm = load_causal_lm(weights, trust_remote_code=trust_remote_code, dtype=dtype)
    if base is not None:
        from peft import PeftModel

        if lm.get_input_embeddings().num_embeddings < len(tokenizer):  # the adapter added tokens
            lm.resize_token_embeddings(len(tokenizer))
        try:
            lm = PeftModel.from_pretrained(lm, str(Path(model).expanduser()))
        except (OSError, ValueError, RuntimeError) as exc:
            raise OkapiError(f"could not apply the adapter {model} to {base}: {type(exc).__name__}: {exc}",
                             hint="is the adapter trained on this base model?") from None
        if hasattr(lm, "merge_and_unload"):
            try:
                lm = lm.merge_and_unload()
            except (ValueError, TypeError, NotImplementedError):  # adapter types that cannot merge
                pass
    return lm.to(device).eval(), rule_tokenizer(tokenizer)
