"""What the RL loop does differently under DeepSpeed and FSDP2.

``accelerate launch`` with the deepspeed_zero2, deepspeed_zero3 or fsdp config of
docs/accelerate hands the loop an accelerator that shards; under DDP or in one process
(:attr:`Sharding.kind` ``"none"``) every function here takes the plain path. The Session
(``engine.py``) asks this module at each point where sharding matters:

* **Before prepare()**: DeepSpeed takes its micro-batch size from its config and refuses
  ``"auto"`` when ``prepare()`` gets no data loader; :func:`fill_deepspeed_config` writes
  the loop's own settings in. The loop then drives DeepSpeed's accumulation boundary itself
  (one optimiser step per mini-batch, however many micro-batches it has).
* **Frozen models** (the reference policy) are prepared for inference:
  :func:`prepare_frozen` (a DeepSpeed inference engine, sharded under ZeRO-3; FSDP2
  shards; otherwise the model on the device).
* **Whole weights**: under ZeRO-3 and FSDP2 each process holds a shard of every weight.
  Generation gathers them for its duration (:func:`gathered_for_generation`) and every
  process runs as many generation steps as the longest (``synced_gpus``); the final model
  comes from :func:`full_state_dict`, a collective call on every process.
* **Models that stay whole** (the reward model of a reward source, the copy the final
  model is rebuilt in) are loaded under :func:`whole_model_loading`, or transformers would
  partition them at load (ZeRO-3) or leave them empty outside the local main process
  (FSDP's cpu_ram_efficient_loading).
* **Checkpoints**: with DeepSpeed or FSDP the optimiser state is sharded too, so
  checkpoints are accelerate's ``save_state`` (one set of files per process).

None of this runs on the development machines (no GPU, no DeepSpeed): beyond the config
filling and the loading context, it is written against the libraries' documented
behaviour and is untested on GPUs (docs/distributed.md).
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from okapi_kit import OkapiError

# DeepSpeed options sized from the model's hidden size when "auto" (accelerate fills them
# only for a model with a config; the loop's module has none of its own).
_HIDDEN_SIZED = {"reduce_bucket_size": lambda h: h * h,
                 "stage3_prefetch_bucket_size": lambda h: int(0.9 * h * h),
                 "stage3_param_persistence_threshold": lambda h: 10 * h}


@dataclass(frozen=True)
class Sharding:
    """How the accelerator splits the training across processes."""

    kind: str = "none"  # "none" (one process or DDP), "deepspeed" or "fsdp" (FSDP2)
    zero_stage: int = 0  # DeepSpeed's ZeRO stage
    processes: int = 1

    @property
    def whole_weights(self) -> bool:
        """Every process holds every weight (not so under ZeRO-3 and FSDP)."""
        return not (self.kind == "fsdp" or (self.kind == "deepspeed" and self.zero_stage == 3))

    @property
    def accelerate_checkpoints(self) -> bool:
        """The optimiser state is sharded (or DeepSpeed's own): checkpoints are accelerate's."""
        return self.kind != "none"


def sharding_of(accelerator: Any) -> Sharding:
    from accelerate.utils import DistributedType

    kind = accelerator.distributed_type
    processes = accelerator.num_processes
    if kind == DistributedType.DEEPSPEED:
        return Sharding("deepspeed", int(accelerator.state.deepspeed_plugin.zero_stage or 0), processes)
    if kind == DistributedType.FSDP:
        if not getattr(accelerator, "is_fsdp2", False):
            raise OkapiError("the RL trainers run under FSDP2 only, not FSDP version 1",
                             hint="set fsdp_version: 2 (docs/accelerate/fsdp.yaml)")
        return Sharding("fsdp", 0, processes)
    return Sharding("none", 0, processes)


# ------------------------------------------------------------------ DeepSpeed's config


def fill_deepspeed_config(ds_config: dict[str, Any], *, micro_batch_size: int, processes: int,
                          max_grad_norm: float, hidden_size: int | None) -> dict[str, Any]:
    """Write the loop's batch settings into DeepSpeed's config (``ds_config``, changed in
    place, the dict accelerate's DeepSpeedPlugin holds), before ``prepare()``; returns it.

    The trainer's options win over the launch config's: the same run accumulates and clips
    the same under DDP and DeepSpeed."""
    for section in ("optimizer", "scheduler"):
        if section in ds_config:
            raise OkapiError(f"the DeepSpeed config has a {section!r} section, but the RL trainers bring "
                             "their own AdamW and learning-rate schedule",
                             hint=f"remove {section!r} from the DeepSpeed config; set learning_rate, "
                                  "weight_decay and lr_scheduler in the trainer's options")
    ds_config["train_micro_batch_size_per_gpu"] = micro_batch_size
    # The loop scales each micro-batch's loss by its share of the mini-batch and marks the
    # last micro-batch itself (set_gradient_accumulation_boundary): DeepSpeed must neither
    # divide the losses by an accumulation count nor step on a count of its own.
    ds_config["gradient_accumulation_steps"] = 1
    ds_config["train_batch_size"] = micro_batch_size * processes
    ds_config["gradient_clipping"] = max_grad_norm
    zero = ds_config.setdefault("zero_optimization", {})
    for key, size in _HIDDEN_SIZED.items():
        if zero.get(key) == "auto":
            if hidden_size is None:
                raise OkapiError(f"the DeepSpeed config leaves zero_optimization.{key} to 'auto', and the "
                                 "model's hidden size is unknown", hint=f"give {key} a number")
            zero[key] = size(hidden_size)
    if zero.get("stage") == 3 and not zero.get("stage3_gather_16bit_weights_on_model_save"):
        raise OkapiError("under ZeRO-3 the RL trainers save the whole model, which DeepSpeed gathers only "
                         "with stage3_gather_16bit_weights_on_model_save",
                         hint="set zero3_save_16bit_model: true in the accelerate config "
                              "(docs/accelerate/deepspeed_zero3.yaml does)")
    return ds_config


def frozen_deepspeed_config(train_config: dict[str, Any]) -> dict[str, Any]:
    """The DeepSpeed config of a frozen model, from the training one: inference only (no
    optimiser); ZeRO-3 keeps the weights sharded, other stages hold a whole copy (ZeRO-1/2
    shard what a frozen model does not have: gradients and optimiser states)."""
    config = copy.deepcopy(train_config)
    for section in ("optimizer", "scheduler"):
        config.pop(section, None)
    stage = config.get("zero_optimization", {}).get("stage", 0)
    if stage != 3:
        config["zero_optimization"] = {"stage": 0}
    return config


# ------------------------------------------------------------------ frozen models


def prepare_frozen(accelerator: Any, sharding: Sharding, model: Any) -> Any:
    """A frozen model (eval mode, no gradients) ready for inference forward passes."""
    if sharding.kind == "deepspeed":
        import deepspeed

        config = frozen_deepspeed_config(accelerator.state.deepspeed_plugin.deepspeed_config)
        engine, *_ = deepspeed.initialize(model=model, config=config)
        engine.eval()
        return engine
    if sharding.kind == "fsdp":
        from accelerate.utils.fsdp_utils import fsdp2_prepare_model

        # not accelerator.prepare(): that would count it among the models save_state writes
        return fsdp2_prepare_model(accelerator, model)
    return model.to(accelerator.device)


@contextlib.contextmanager
def whole_model_loading() -> Iterator[None]:
    """Models loaded meanwhile by ``from_pretrained`` are whole on every process.

    Under a ZeRO-3 launch transformers builds every model partitioned (meant for the
    trained one, which DeepSpeed then takes over), and under FSDP's cpu_ram_efficient_loading
    it loads the weights on the local main process only (FSDP then spreads them): right for
    what is prepared, wrong for a model used as it is (a reward model)."""
    from transformers.integrations import deepspeed as hf_deepspeed

    saved_ref = hf_deepspeed._hf_deepspeed_config_weak_ref
    saved_env = os.environ.get("FSDP_CPU_RAM_EFFICIENT_LOADING")
    hf_deepspeed._hf_deepspeed_config_weak_ref = None
    os.environ["FSDP_CPU_RAM_EFFICIENT_LOADING"] = "false"
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = saved_ref
        if saved_env is None:
            os.environ.pop("FSDP_CPU_RAM_EFFICIENT_LOADING", None)
        else:
            os.environ["FSDP_CPU_RAM_EFFICIENT_LOADING"] = saved_env


# ------------------------------------------------------------------ whole weights


def full_state_dict(accelerator: Any, model: Any) -> dict[str, Any]:
    """The prepared model's whole state dict: a collective call, to be made on every process
    (ZeRO-3 and FSDP2 gather the shards); only the main process's is sure to be complete."""
    try:
        return accelerator.get_state_dict(model)
    except ValueError as exc:  # ZeRO-3 without stage3_gather_16bit_weights_on_model_save
        raise OkapiError(f"cannot gather the trained weights: {exc}",
                         hint="set zero3_save_16bit_model: true in the accelerate config") from None


@contextlib.contextmanager
def gathered_for_generation(sharding: Sharding, prepared: Any, lm: Any) -> Iterator[None]:
    """While generating with ``lm`` (the policy inside ``prepared``, the model prepare()
    returned), its weights are whole on every process.

    Generation runs one forward pass per token; gathering every layer's shards at each would
    cost far more than gathering them once. Without sharded weights, nothing happens."""
    if sharding.whole_weights:
        yield
    elif sharding.kind == "deepspeed":
        with _zero3_gathered(prepared, lm):
            yield
    else:
        with _fsdp2_unsharded(prepared):
            yield


@contextlib.contextmanager
def _zero3_gathered(engine: Any, lm: Any) -> Iterator[None]:
    """ZeRO-3: the weights gathered, and DeepSpeed's per-module hooks (which would partition
    them again after each module's forward) taken off meanwhile.

    The hooks are DeepSpeed internals (DeepSpeedZeRoOffload: ``forward_hooks``,
    ``backward_hooks``, ``_register_hooks_recursively``); where they are not as expected,
    the hooks stay: generation is then slower (the layers are gathered again at each token),
    not wrong, since every process generates in step (synced_gpus)."""
    import deepspeed

    offload = getattr(engine.optimizer, "parameter_offload", None) or engine.optimizer
    can_unhook = all(hasattr(offload, name) for name in ("forward_hooks", "backward_hooks", "module",
                                                         "_register_hooks_recursively"))
    with deepspeed.zero.GatheredParameters(list(lm.parameters())):
        if not can_unhook:
            yield
            return
        first_id = getattr(offload.module, "id", 0)  # re-registered with the same module ids
        for handle in [*offload.forward_hooks, *offload.backward_hooks]:
            handle.remove()
        offload.forward_hooks, offload.backward_hooks = [], []
        try:
            yield
        finally:
            for param in offload.module.parameters():
                # no module is running now; a stale mark would keep a weight from being released
                getattr(param, "ds_active_sub_modules", set()).clear()
            offload._register_hooks_recursively(offload.module, count=[first_id])


@contextlib.contextmanager
def _fsdp2_unsharded(root: Any) -> Iterator[None]:
    """FSDP2: every unit of ``root`` unsharded and kept so across forward passes. Needed,
    not only faster: generation calls the causal LM inside the root module, so the root's
    own hooks (which unshard the parameters that belong to no inner unit) never run."""
    from torch.distributed.fsdp import FSDPModule

    units = [m for m in root.modules() if isinstance(m, FSDPModule)]
    saved = [_reshard_setting(m) for m in units]
    root.set_reshard_after_forward(False, recurse=True)
    for unit in units:
        unit.unshard()
    try:
        yield
    finally:
        for unit, setting in zip(units, saved):
            _restore_reshard_setting(unit, setting)
            unit.reshard()


def _reshard_setting(unit: Any) -> Any:
    """A unit's reshard-after-forward setting (FSDP2 has a setter for it, no getter: this
    reads the state the setter writes)."""
    state = unit._get_fsdp_state()
    return (state._auto_reshard_after_forward, [g.post_forward_mesh_info for g in state._fsdp_param_groups])


def _restore_reshard_setting(unit: Any, setting: Any) -> None:
    state = unit._get_fsdp_state()
    state._auto_reshard_after_forward, infos = setting
    for group, info in zip(state._fsdp_param_groups, infos):
        group.post_forward_mesh_info = info
