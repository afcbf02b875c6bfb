"""The device and precision options of every trainer (TRL's and the RL plugin's) are read by one
helper, ``okapi_kit_transformers.device.training_precision``."""

from __future__ import annotations

import pytest
import torch
from okapi_kit_transformers.device import training_precision

from okapi_kit import OkapiError


@pytest.mark.parametrize("cuda, bf16, device, precision, expected", [
    (False, False, "auto", "auto", (True, "fp32")),
    (False, False, "cpu", "bf16", (True, "bf16")),
    (True, True, "auto", "auto", (False, "bf16")),
    (True, False, "auto", "auto", (False, "fp32")),
    (True, True, "cpu", "auto", (True, "fp32")),
    (True, True, "cuda", "fp16", (False, "fp16")),
])
def test_device_and_precision(monkeypatch, cuda, bf16, device, precision, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert training_precision(device, precision) == expected


def test_impossible_choices_are_user_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(OkapiError, match="no CUDA GPU") as err:
        training_precision("cuda", "auto")
    assert "device: auto" in err.value.hint
    with pytest.raises(OkapiError, match="fp16 training needs a GPU"):
        training_precision("auto", "fp16")


def test_both_trainer_families_use_it(monkeypatch):
    from types import SimpleNamespace

    import okapi_kit_transformers.device as device
    from okapi_kit_rl.engine import make_accelerator
    from okapi_kit_trl.common import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = SimpleNamespace(device="auto", precision="auto")
    assert resolve_device(config) == {"use_cpu": True, "bf16": False, "fp16": False}
    with pytest.raises(OkapiError, match="fp16 training needs a GPU"):
        resolve_device(SimpleNamespace(device="cpu", precision="fp16"))
    seen = []

    def spy(*args):
        seen.append(args)
        raise OkapiError("stop")  # before an Accelerator (a process-wide singleton) is made

    monkeypatch.setattr(device, "training_precision", spy)
    with pytest.raises(OkapiError, match="stop"):
        make_accelerator(config)
    with pytest.raises(OkapiError, match="stop"):
        resolve_device(config)
    assert seen == [("auto", "auto")] * 2
