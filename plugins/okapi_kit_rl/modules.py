"""The models of an RL run: the policy (full or LoRA), its value head or critic, the reference.

Every sequence is laid out as the rollout engine builds it: the prompt left-padded to a
common width, then the response right-padded to ``width`` tokens. A forward pass returns
the response tokens' log-probabilities (and values) only: logits are computed for the
last ``width + 1`` positions, never for the prompt.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from okapi_kit import OkapiError

from .losses import selective_log_softmax


def hf_model(lm: nn.Module) -> nn.Module:
    """The transformers model inside a PEFT wrapper or a DeepSpeed engine (or the model itself)."""
    if type(lm).__name__ == "DeepSpeedEngine":  # a frozen model prepared by sharding.prepare_frozen
        lm = lm.module
    get_base = getattr(lm, "get_base_model", None)
    return get_base() if callable(get_base) else lm


def _accepts(model: nn.Module, name: str) -> bool:
    return name in inspect.signature(hf_model(model).forward).parameters


def position_ids(attention_mask: Tensor) -> Tensor:
    """Positions that skip left padding, as generate() numbers them."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


def forward_kwargs(model: nn.Module, input_ids: Tensor, attention_mask: Tensor) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": False}
    if _accepts(model, "position_ids"):  # BLOOM takes its positions (ALiBi) from the mask
        kwargs["position_ids"] = position_ids(attention_mask)
    return kwargs


def lm_logprobs(lm: nn.Module, input_ids: Tensor, attention_mask: Tensor, width: int, temperature: float,
                hidden: bool = False) -> tuple[Tensor, Tensor | None]:
    """Log-probabilities of the last ``width`` tokens under ``softmax(logits / temperature)``, and the
    final hidden states at the positions that predict them (for a value head) when ``hidden``."""
    kwargs = forward_kwargs(lm, input_ids, attention_mask)
    if _accepts(lm, "logits_to_keep"):
        kwargs["logits_to_keep"] = width + 1
    out = lm(**kwargs, output_hidden_states=hidden)
    logits = out.logits[:, -(width + 1):-1]
    if temperature != 1.0:
        logits = logits / temperature
    logps = selective_log_softmax(logits, input_ids[:, -width:])
    states = out.hidden_states[-1][:, -(width + 1):-1] if hidden else None
    return logps, states


class PolicyModule(nn.Module):
    """What the optimiser trains: the causal LM and, for PPO, a value head on its backbone or a
    separate critic. One module, so that DDP wraps (and synchronises) all of it."""

    def __init__(self, lm: nn.Module, value_head: nn.Module | None = None, critic: nn.Module | None = None):
        super().__init__()
        self.lm = lm
        self.value_head = value_head
        self.critic = critic
        # the decoder-layer classes, for FSDP's wrap policy (one shard unit per layer)
        self._no_split_modules = list(getattr(hf_model(lm), "_no_split_modules", None) or [])

    def forward(self, input_ids: Tensor, attention_mask: Tensor, width: int, temperature: float = 1.0,
                values: bool = False) -> tuple[Tensor, Tensor | None]:
        use_head = values and self.value_head is not None
        logps, states = lm_logprobs(self.lm, input_ids, attention_mask, width, temperature, hidden=use_head)
        if not values:
            return logps, None
        if use_head:
            return logps, self.value_head(states.to(self.value_head.weight.dtype)).squeeze(-1)
        if self.critic is None:
            raise RuntimeError("values asked of a policy without a value head or critic")
        return logps, critic_values(self.critic, input_ids, attention_mask, width)

    def trainable_state(self) -> dict[str, Tensor]:
        """The parameters the optimiser changes (LoRA: the adapters, the value head, the critic)."""
        return {name: p.detach() for name, p in self.named_parameters() if p.requires_grad}


def critic_values(critic: nn.Module, input_ids: Tensor, attention_mask: Tensor, width: int) -> Tensor:
    """Per-token values of a sequence classifier: its score head on every position's hidden state."""
    backbone = getattr(critic, critic.base_model_prefix)
    out = backbone(**forward_kwargs(critic, input_ids, attention_mask))
    states = out.last_hidden_state[:, -(width + 1):-1]
    return score_head(critic)(states).squeeze(-1)


def score_head(critic: nn.Module) -> nn.Module:
    for name in ("score", "classifier"):
        head = getattr(critic, name, None)
        if isinstance(head, nn.Module):
            return head
    raise OkapiError(f"cannot find the score head of {type(critic).__name__} to use it as a critic",
                     hint="use critic: head")


def value_head(lm: nn.Module) -> nn.Linear:
    """A linear value head, zero-initialised: V starts at 0 and sends no gradient into the backbone
    until it has learnt something (so the first updates do not disturb the policy)."""
    config = hf_model(lm).config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    head = nn.Linear(text.hidden_size, 1)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return head


def disable_dropout(model: nn.Module) -> None:
    """No dropout anywhere: sampling, old and new log-probabilities must agree (TRL does the same)."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = 0.0
        if isinstance(getattr(module, "dropout", None), float):
            module.dropout = 0.0


def enable_checkpointing(model: nn.Module) -> None:
    """Gradient (activation) checkpointing, non-reentrant (works with frozen LoRA bases)."""
    hf = hf_model(model)
    options = {"use_reentrant": False}
    if hasattr(hf, "activation_checkpointing_enable"):  # transformers >= 5.2x renamed it
        hf.activation_checkpointing_enable(activation_checkpointing_kwargs=options)
    else:
        hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs=options)


def add_lora(lm: nn.Module, config: Any) -> nn.Module:
    """Wrap the causal LM with trainable LoRA adapters (peft); its base weights stay frozen."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=config.lora_target_modules, task_type="CAUSAL_LM", bias="none")
    try:
        with warnings.catch_warnings():
            # peft asks transformers' renamed is_gradient_checkpointing: nothing a user can act on
            warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated",
                                    category=FutureWarning)
            return get_peft_model(lm, lora)
    except ValueError as exc:
        raise OkapiError(f"cannot add LoRA adapters: {exc}", where="lora_target_modules",
                         hint="name modules the model has, or use all-linear") from None


def merged_lm(lm: nn.Module) -> nn.Module:
    """The causal LM to save: LoRA adapters merged into the base weights."""
    if hasattr(lm, "merge_and_unload"):
        return lm.merge_and_unload()
    return lm


def lm_from_state(state: dict[str, Tensor], *, model: str, config: Any, trust_remote_code: bool) -> nn.Module:
    """The causal LM to save, rebuilt on the CPU from a :class:`PolicyModule`'s whole state
    dict (gathered from the shards under ZeRO-3 or FSDP2): ``model`` loaded afresh, LoRA added
    as ``config`` says, the trained weights loaded, the adapters merged in."""
    from okapi_kit_transformers.loading import load_causal_lm

    prefix = "lm."
    weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    lm = load_causal_lm(model, dtype=torch.float32, trust_remote_code=trust_remote_code)
    if config.lora:
        lm = add_lora(lm, config)
    missing, unexpected = lm.load_state_dict(weights, strict=False)
    own = lm.state_dict()
    loaded = {own[k].data_ptr() for k in weights if k in own}
    missing = [k for k in missing if own[k].data_ptr() not in loaded]  # tied to a loaded weight: fine
    if missing or unexpected:
        raise OkapiError(f"the gathered weights do not fit {model}: missing {missing[:3]}, unexpected "
                         f"{unexpected[:3]}", hint="this is a bug in okapi-kit's saving under sharding")
    return merged_lm(lm)


def no_adapter(lm: nn.Module):
    """A context where a LoRA-wrapped model is its base model (the reference policy)."""
    return lm.disable_adapter()


def freeze(model: nn.Module) -> nn.Module:
    model.eval()
    model.requires_grad_(False)
    return model


def same_tokenizer(a, b) -> bool:
    return a.get_vocab() == b.get_vocab()


def to_dtype(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    return model.to(dtype) if dtype != torch.float32 else model
