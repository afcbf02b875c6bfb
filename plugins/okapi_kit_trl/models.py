"""Loading the model a trainer trains (dtype, attention kernel), its LoRA adapter, and merging it.

Imported only inside ``train()``: it pulls in transformers and peft.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from okapi_kit import OkapiError

from .config import LoraOptions, TRLTrainConfig

CAUSAL_LM, CLASSIFIER = "causal_lm", "classifier"


def load(name: str, kind: str, config: TRLTrainConfig, *, trust_remote_code: bool = False):
    """The model at ``name`` as a causal LM or a one-output sequence classifier (a new, seeded
    score head on the LM's backbone), loaded with the configured dtype and attention kernel."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    kwargs["dtype"] = "auto" if config.dtype == "auto" else getattr(torch, config.dtype)
    if config.attn_implementation is not None:
        kwargs["attn_implementation"] = config.attn_implementation
    local = Path(name).expanduser()
    source = str(local) if local.exists() else name
    try:
        if kind == CLASSIFIER:
            with _quiet_new_head():
                return AutoModelForSequenceClassification.from_pretrained(source, num_labels=1, **kwargs)
        return AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (OSError, ValueError, ImportError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise OkapiError(f"could not load model {name!r}: {type(exc).__name__}: {first}",
                         hint="check the path or hub id, and dtype / attn_implementation (flash_attention_2 "
                         "needs the flash-attn package and a GPU)") from None


def lora_config(options: LoraOptions, kind: str):
    """The peft ``LoraConfig`` of the options; for a classifier, peft also trains the score head."""
    from peft import LoraConfig

    return LoraConfig(r=options.r, lora_alpha=options.alpha, lora_dropout=options.dropout,
                      target_modules=options.target_modules,
                      task_type="SEQ_CLS" if kind == CLASSIFIER else "CAUSAL_LM")


def is_peft(model) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def merged(name: str, kind: str, config: TRLTrainConfig, adapter_dir: Path, *, trust_remote_code: bool = False):
    """The base model at ``name`` with the adapter saved in ``adapter_dir`` merged into its weights.

    Loaded afresh (on CPU) rather than merged in the trained model, so that it works the same
    whether that model is whole, wrapped for DDP or sharded by DeepSpeed / FSDP.
    """
    from peft import PeftModel

    base = load(name, kind, config, trust_remote_code=trust_remote_code)
    return PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()


def _quiet_new_head():
    """Hide transformers' notice that the new score head is untrained (it is meant to be)."""
    try:
        from trl.trainer.reward_trainer import suppress_seqcls_warning
    except ImportError:  # a TRL without it
        return contextlib.nullcontext()
    return suppress_seqcls_warning()
