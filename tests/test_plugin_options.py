"""Options of the transformers and TRL plugins are checked when a config is validated.

Every bad value here used to pass ``validate`` and fail only when the component ran (after
SFT, for a sampler), or ended in a traceback.
"""

from __future__ import annotations

import pytest
from okapi_kit_transformers import okapi_build_model
from okapi_kit_transformers.reward import RewardModelSource
from okapi_kit_transformers.sampler import TransformersSampler
from okapi_kit_transformers.tiny import parse_tiny_spec, validate_tiny_spec, write_tiny_model
from okapi_kit_trl import DPOTrainer, RewardTrainer, SFTTrainer
from okapi_kit_trl.config import SCHEDULERS, USABLE_SCHEDULERS

from okapi_kit import OkapiError, TrainJob
from okapi_kit.registry import Registry, create_component


def create(kind: str, cls, options: dict):
    """A component as ``validate`` builds it from a config's options."""
    reg = Registry()
    reg.add(kind, cls, plugin="test")
    return create_component(reg, kind, cls.name, options, where=f"config.yaml: stage.{kind}")


# ---- device and dtype ---------------------------------------------------------------------------

GOOD_DEVICES = {"auto": "auto", "cpu": "cpu", "cuda": "cuda", "cuda:0": "cuda:0", "cuda:12": "cuda:12",
                "mps": "mps", "CUDA:1": "cuda:1", " cpu ": "cpu"}
BAD_DEVICES = ["banana", "gpu", "cuda:", "cuda:x", "cuda:-1", "cpu:0", "", "tpu"]


@pytest.mark.parametrize("cls, kind, base", [(TransformersSampler, "sampler", {}),
                                             (RewardModelSource, "reward_source", {"path": "rm"})])
def test_device_is_checked_at_validation(cls, kind, base):
    for given, kept in GOOD_DEVICES.items():
        assert create(kind, cls, {**base, "device": given}).config.device == kept
    for bad in BAD_DEVICES:
        with pytest.raises(OkapiError) as info:
            create(kind, cls, {**base, "device": bad})
        assert "unknown device" in info.value.message and "cuda:N" in info.value.message, bad


def test_sampler_dtype_takes_names_and_short_aliases():
    want = {"auto": "auto", "float32": "float32", "bfloat16": "bfloat16", "float16": "float16",
            "fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "BF16": "bfloat16"}
    for given, kept in want.items():
        assert create("sampler", TransformersSampler, {"dtype": given}).config.dtype == kept
    for bad in ["float64", "int8", "half", "bf", "banana", ""]:
        with pytest.raises(OkapiError, match="unknown dtype") as info:
            create("sampler", TransformersSampler, {"dtype": bad})
        assert "bf16" in info.value.message


def test_a_device_that_is_not_here_is_a_user_error():
    import torch
    from okapi_kit_transformers.device import pick_device

    assert pick_device("cpu") == "cpu"
    assert pick_device("auto") in ("cpu", "cuda")
    missing = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU, on any machine
    with pytest.raises(OkapiError, match="requested but"):
        pick_device(missing)
    if not torch.backends.mps.is_available():
        with pytest.raises(OkapiError, match="mps"):
            pick_device("mps")


# ---- learning-rate schedulers -----------------------------------------------------------------

def test_scheduler_names_are_transformers_own():
    from transformers import SchedulerType

    assert sorted(SCHEDULERS) == sorted(s.value for s in SchedulerType)
    assert len(set(SCHEDULERS)) == len(SCHEDULERS)


@pytest.mark.parametrize("name", USABLE_SCHEDULERS)
def test_every_accepted_scheduler_runs(tmp_path, name):
    """With the training arguments okapi-kit passes, transformers builds the schedule and steps it."""
    import torch
    import trl
    from okapi_kit_trl import common
    from transformers import get_scheduler

    config = SFTTrainer.Config(lr_scheduler=name, max_steps=10, warmup_ratio=0.2, device="cpu")
    args = trl.SFTConfig(**common.training_kwargs(config, TrainJob(
        model="m", output_dir=tmp_path / "out", work_dir=tmp_path / "work", records=[])))
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=args.learning_rate)
    schedule = get_scheduler(args.lr_scheduler_type, optimizer, num_warmup_steps=args.get_warmup_steps(10),
                             num_training_steps=10, scheduler_specific_kwargs=args.lr_scheduler_kwargs)
    for _ in range(10):
        optimizer.step()
        schedule.step()


@pytest.mark.parametrize("trainer", [SFTTrainer, RewardTrainer, DPOTrainer])
def test_unknown_or_unusable_scheduler_fails_validation(trainer):
    with pytest.raises(OkapiError, match="did you mean 'cosine'"):
        create("trainer", trainer, {"lr_scheduler": "cosin"})
    with pytest.raises(OkapiError, match="unknown learning-rate scheduler; choose one of linear"):
        create("trainer", trainer, {"lr_scheduler": "banana"})
    for name in sorted(set(SCHEDULERS) - set(USABLE_SCHEDULERS)):
        with pytest.raises(OkapiError, match="needs an evaluation set or scheduler arguments"):
            create("trainer", trainer, {"lr_scheduler": name})


# ---- tiny-model specs -----------------------------------------------------------------------------

@pytest.mark.parametrize("spec, parsed", [
    ("tiny:llama", {"arch": "llama"}),
    ("tiny:qwen2:128x4", {"arch": "qwen2", "hidden": 128, "layers": 4}),
    ("tiny:bloom:12X1", {"arch": "bloom", "hidden": 12, "layers": 1}),  # no rotary: any head size
])
def test_good_tiny_specs(spec, parsed):
    assert parse_tiny_spec(spec) == parsed
    validate_tiny_spec(spec)


@pytest.mark.parametrize("spec, says", [
    ("tiny:llama:0x0", "0 layers"),
    ("tiny:llama:64x0", "0 layers"),
    ("tiny:llama:0x2", "hidden size 0"),
    ("tiny:llama:30x2", "not a multiple of its 4 attention heads"),
    ("tiny:llama:12x2", "even head size"),
    ("tiny:qwen2:4x1", "even head size"),
    ("tiny:llama:999999x2", "hidden size 999999"),
    ("tiny:llama:64x1000", "1000 layers"),
    ("tiny:gpt2", "unknown architecture 'gpt2'"),
    ("tiny:", "unknown architecture ''"),
    ("tiny:llama:64", "bad tiny-model spec"),
    ("tiny:llama:64x2x1", "bad tiny-model spec"),
    ("tiny:llama:-8x2", "bad tiny-model spec"),
    ("tiny:llama:axb", "bad tiny-model spec"),
    ("tiny:llama:64x2:more", "bad tiny-model spec"),
    ("tiny:llama:６４x2", "bad tiny-model spec"),  # full-width digits
])
def test_bad_tiny_specs_are_user_errors(spec, says, tmp_path):
    with pytest.raises(OkapiError, match=says):
        validate_tiny_spec(spec)
    with pytest.raises(OkapiError, match=says):
        okapi_build_model(spec=spec, out_dir=tmp_path / "m")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("spec", ["tiny:llama:8x1", "tiny:qwen2:8x1", "tiny:bloom:4x1"])
def test_smallest_accepted_sizes_build_and_run(spec, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    path = write_tiny_model(tmp_path / "m", **parse_tiny_spec(spec), max_positions=32)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model(torch.tensor([[5, 6, 7]])).logits.shape == (1, 3, model.config.vocab_size)


def test_write_tiny_model_checks_its_arguments(tmp_path):
    with pytest.raises(OkapiError, match="hidden size 0"):
        write_tiny_model(tmp_path / "m", hidden=0)
    with pytest.raises(OkapiError, match="not a multiple of its 3 attention heads"):
        write_tiny_model(tmp_path / "m", hidden=64, heads=3)
