"""Generation backends of the rollout engine: transformers' ``generate`` or vLLM.

Generation is most of an RLHF step's time on a GPU, and vLLM (paged attention, continuous
batching) generates several times faster than ``model.generate``. The rollout engine asks
:func:`make_generator` for a :class:`Generator` once, calls ``generate`` on token ids every
step and ``sync`` after every optimiser update, so that vLLM samples from the current
policy (on-policy training needs it).

``backend``: ``"transformers"`` always works; ``"vllm"`` needs the extra
``okapi-kit[vllm]`` and a CUDA GPU (an :class:`OkapiError` says which is missing);
``"auto"`` takes vLLM when both are there and the training is not sharded (DeepSpeed
ZeRO-3 or FSDP would need the parameters gathered for every sync), else transformers.

vLLM runs in the training process (colocated, as TRL's ``vllm_mode="colocate"``): under
``accelerate launch`` each process holds its own engine over its own prompts
(``distributed_executor_backend="external_launcher"``), sharing the GPU with training
through ``gpu_memory_utilization``.

Nothing here imports torch, transformers or vLLM at module level.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from okapi_kit import OkapiError

Backend = Literal["transformers", "vllm", "auto"]
BACKENDS = ("transformers", "vllm", "auto")
VLLM_HINT = "install the extra with `pip install 'okapi-kit[vllm]'` on a machine with a CUDA GPU"


class Generator(Protocol):
    """What the rollout engine needs from a generation backend (``rollout.HFGenerator`` is one)."""

    def generate(self, prompts: list[list[int]]) -> list[list[int]]:
        """The sampled tokens of each prompt (up to max_new_tokens; what follows the first
        EOS is ignored by the rollout engine)."""

    def sync(self, model: Any) -> None:
        """Called after every optimiser update: the next ``generate`` samples from ``model``."""


@dataclass(frozen=True)
class Environment:
    """The facts the choice of backend depends on (gathered by :func:`environment`)."""

    vllm_installed: bool
    cuda: bool
    sharded: bool  # DeepSpeed ZeRO-3 or FSDP: parameters are split across processes


def environment(model: Any = None) -> Environment:
    """Look at this process: is vLLM installed, is there a CUDA GPU, is training sharded."""
    import torch

    return Environment(vllm_installed=importlib.util.find_spec("vllm") is not None,
                       cuda=torch.cuda.is_available(), sharded=_sharded(model))


def _sharded(model: Any) -> bool:
    """True under DeepSpeed ZeRO-3 or FSDP (from the accelerate environment or the model)."""
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true"):
        return True
    if os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3":
        return True
    if model is not None:
        # ZeRO-3 marks each partitioned parameter with ds_id; FSDP wraps the model.
        if any(hasattr(p, "ds_id") for p in model.parameters()):
            return True
        if type(model).__name__.startswith("FullyShardedDataParallel") or "FSDP" in type(model).__name__:
            return True
    return False


def select_backend(requested: str, env: Environment, *, device: str = "auto") -> str:
    """``"transformers"`` or ``"vllm"`` for a requested backend; an OkapiError when the
    request cannot be met here, naming what is missing."""
    if requested not in BACKENDS:
        raise OkapiError(f"unknown generation backend {requested!r}",
                         hint=f"choose one of {', '.join(BACKENDS)}")
    gpu_device = device in ("auto", "cuda") or device.startswith("cuda:")
    if requested == "transformers":
        return "transformers"
    if requested == "auto":
        return "vllm" if env.vllm_installed and env.cuda and gpu_device and not env.sharded else "transformers"
    missing = [what for what, ok in (("vLLM is not installed", env.vllm_installed),
                                     ("no CUDA GPU is available", env.cuda),
                                     (f"the device is {device!r}", gpu_device))
               if not ok]
    if missing:
        raise OkapiError(f"generation backend 'vllm' requested but {' and '.join(missing)}",
                         hint=f"{VLLM_HINT}, or set generation_backend: transformers (or auto)")
    if env.sharded:
        raise OkapiError("generation backend 'vllm' does not run with DeepSpeed ZeRO-3 or FSDP here: every "
                         "weight sync would have to gather the sharded parameters",
                         hint="use DDP or ZeRO-2 with vllm, or generation_backend: transformers")
    return "vllm"


def make_generator(model: Any, *, backend: str = "auto", model_path: str | None = None, pad_id: int,
                   eos_ids: list[int], max_new_tokens: int, temperature: float, top_k: int, top_p: float,
                   batch_size: int | None = None, autocast: Any = None, device: str = "auto", seed: int = 0,
                   gpu_memory_utilization: float = 0.3, max_model_len: int | None = None) -> Generator:
    """The generation backend for ``backend`` (see the module's docstring for the choice).

    Takes the arguments of ``rollout.HFGenerator`` plus the backend's: ``model`` is the
    policy being trained (a PreTrainedModel or a peft model); ``model_path`` the folder or
    hub id its weights came from (vLLM builds its engine from it, then takes the trained
    weights at each ``sync``; default: the model's ``name_or_path``).
    """
    chosen = select_backend(backend, environment(_unwrap(model)), device=device)
    if chosen == "transformers":
        import contextlib

        from .rollout import HFGenerator

        return HFGenerator(model, pad_id=pad_id, eos_ids=eos_ids, max_new_tokens=max_new_tokens,
                           temperature=temperature, top_k=top_k, top_p=top_p, batch_size=batch_size,
                           autocast=autocast or contextlib.nullcontext)
    path = model_path or getattr(_hf_config(model), "name_or_path", None) or getattr(
        _base_model(_unwrap(model)), "name_or_path", None)
    if not path:
        raise OkapiError("the vLLM backend needs the model's folder or hub id", hint="pass model_path")
    return VLLMGenerator(str(path), eos_ids=eos_ids, max_new_tokens=max_new_tokens, temperature=temperature,
                         top_k=top_k, top_p=top_p, seed=seed, gpu_memory_utilization=gpu_memory_utilization,
                         max_model_len=max_model_len)


def _hf_config(model: Any) -> Any:
    return getattr(_base_model(_unwrap(model)), "config", None)


# ---------------------------------------------------------------- vLLM


class VLLMGenerator:
    """Sampling with a vLLM engine in this process. ``sync`` only marks the weights stale;
    they are copied in before the next ``generate`` (PPO updates several times per batch,
    and only the weights at sampling time matter)."""

    name = "vllm"

    def __init__(self, model_path: str, *, eos_ids: list[int], max_new_tokens: int, temperature: float,
                 top_k: int = 0, top_p: float = 1.0, seed: int = 0, gpu_memory_utilization: float = 0.3,
                 max_model_len: int | None = None):
        from vllm import LLM, SamplingParams

        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        kwargs: dict[str, Any] = dict(model=model_path, gpu_memory_utilization=gpu_memory_utilization,
                                      max_model_len=max_model_len, seed=seed + rank, enable_prefix_caching=True,
                                      skip_tokenizer_init=True)  # token ids in, token ids out
        if world > 1:
            # One engine per training process, each over its own prompts (TRL's colocate mode).
            kwargs["distributed_executor_backend"] = "external_launcher"
        self.llm = LLM(**kwargs)
        # All stop ids end a completion; the EOS stays in its tokens, as with transformers.
        self.params = SamplingParams(n=1, temperature=temperature, top_k=top_k, top_p=top_p,
                                     max_tokens=max_new_tokens, stop_token_ids=list(eos_ids),
                                     ignore_eos=False, detokenize=False)
        self.eos_ids = list(eos_ids)
        self._stale: Any = None  # the model whose weights are still to be copied in

    def generate(self, prompts: list[list[int]]) -> list[list[int]]:
        if self._stale is not None:
            self._push(self._stale)
            self._stale = None
        outputs = self.llm.generate([{"prompt_token_ids": list(p)} for p in prompts],
                                    sampling_params=self.params, use_tqdm=False)
        completions = []
        for out in outputs:
            sample = out.outputs[0]
            ids = list(sample.token_ids)
            # A completion that stopped on a stop id ends with it, as transformers' do.
            if sample.finish_reason == "stop" and (not ids or ids[-1] not in self.eos_ids):
                stop = getattr(sample, "stop_reason", None)
                ids.append(stop if isinstance(stop, int) else self.eos_ids[0])
            completions.append(ids)
        return completions

    def sync(self, model: Any) -> None:
        self._stale = model

    def _push(self, model: Any) -> None:
        weights = named_weights(_unwrap(model))
        runner_model = _engine_model(self.llm)
        if runner_model is not None:
            runner_model.load_weights(weights)
        else:  # an engine in worker processes: ship the weights to each of them
            tensors = list(weights)
            self.llm.apply_model(lambda m: m.load_weights(tensors))
        self.llm.reset_prefix_cache()  # cached prompt states were computed with the old weights


def _engine_model(llm: Any) -> Any:
    """The engine's model when it runs in this process (vLLM's in-process executor), else None."""
    try:
        return llm.llm_engine.model_executor.driver_worker.model_runner.model
    except AttributeError:
        try:
            return llm.llm_engine.model_executor.driver_worker.worker.model_runner.model
        except AttributeError:
            return None


def named_weights(model: Any) -> Iterator[tuple[str, Any]]:
    """The policy's weights under the names of its Hugging Face checkpoint (what vLLM's
    ``load_weights`` takes): LoRA updates added in, a value head left out.

    LoRA weights are computed out of place (base + each active adapter's delta) rather than
    by peft's merge/unmerge, which would add rounding error to the frozen base at every sync.
    """
    base = _base_model(model)
    if not _is_peft(base):
        for name, param in base.named_parameters():
            yield name, param.detach()
        return
    deltas = {}
    for module_name, module in base.named_modules():
        if hasattr(module, "get_delta_weight") and hasattr(module, "base_layer") and not module.merged:
            adapters = [a for a in module.active_adapters if a in getattr(module, "lora_A", {})
                        or a in getattr(module, "lora_embedding_A", {})]
            if adapters:
                deltas[module_name] = adapters
    prefix = base.prefix  # "lora_"
    for name, param in base.named_parameters():
        if prefix in name or "original_module" in name:
            continue
        owner, _, leaf = name.rpartition(".base_layer.")
        weight = param.detach()
        if owner in deltas and leaf == "weight":
            module = base.get_submodule(owner)
            weight = weight + sum(module.get_delta_weight(a) for a in deltas[owner]).to(weight.dtype)
        name = name.removeprefix("base_model.model.").replace(".base_layer", "")
        yield name.replace("modules_to_save.default.", ""), weight


def _unwrap(model: Any) -> Any:
    """The model inside DDP (``.module``) wrappers."""
    while hasattr(model, "module") and type(model).__name__ in ("DistributedDataParallel", "DataParallel"):
        model = model.module
    return model


def _base_model(model: Any) -> Any:
    """The causal LM of a policy that carries a value head (``.policy`` or ``.pretrained_model``)."""
    for attr in ("policy", "pretrained_model"):
        inner = getattr(model, attr, None)
        if inner is not None and hasattr(inner, "named_parameters"):
            return inner
    return model


def _is_peft(model: Any) -> bool:
    return hasattr(model, "merge_adapter") and hasattr(model, "peft_config")
