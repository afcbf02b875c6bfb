"""Device and dtype choice shared by this plugin's components (names checked by ``options.py``)."""

from __future__ import annotations

from okapi_kit import OkapiError


def pick_device(name: str = "auto") -> str:
    """``auto`` becomes cuda when a GPU is present, else cpu; a named device must exist here."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(name.partition(":")[2] or 0)
        if index >= count:
            found = f"{count} CUDA GPU(s) found" if count else "no CUDA GPU found"
            raise OkapiError(f"device {name!r} requested but {found}", hint="set device: auto or cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise OkapiError("device 'mps' requested but Apple's MPS backend is not available",
                         hint="set device: auto or cpu")
    return name


def pick_dtype(name: str, device: str):
    """The torch dtype for a checked dtype name; ``auto`` is bf16 on a GPU that has it, else fp32."""
    import torch

    if name == "auto":
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return getattr(torch, name)


def training_precision(device: str, precision: str) -> tuple[bool, str]:
    """(train on the CPU?, bf16 | fp16 | fp32) for a trainer's ``device`` (auto, cpu, cuda) and
    ``precision`` (auto, bf16, fp16, fp32) options; ``auto`` precision is bf16 on a GPU that has it.
    Shared by the TRL and RL trainers, so both read the two options alike."""
    import torch

    cuda = torch.cuda.is_available()
    if device == "cuda" and not cuda:
        raise OkapiError("device 'cuda' requested but no CUDA GPU is available", hint="set device: auto or cpu")
    cpu = device == "cpu" or not cuda
    if precision == "auto":
        precision = "bf16" if not cpu and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "fp16" and cpu:
        raise OkapiError("fp16 training needs a GPU", hint="use precision: auto, bf16 or fp32 on CPU")
    return cpu, precision
