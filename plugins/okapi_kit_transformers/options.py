"""Device and dtype option types, checked by ``validate`` (pydantic only: no torch import).

Whether the named device exists is checked when the model is loaded (see ``device.py``):
a config may be validated on a machine without the GPU it will run on.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BeforeValidator

DTYPES = ("auto", "float32", "bfloat16", "float16")
DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def device_name(value: object) -> str:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (any case); anything else is a ValueError."""
    name = value.strip().lower() if isinstance(value, str) else value
    if not isinstance(name, str) or not _DEVICE.fullmatch(name):
        raise ValueError("unknown device: use auto, cpu, cuda, cuda:N (N a GPU number) or mps")
    return name


def dtype_name(value: object) -> str:
    """One of :data:`DTYPES`; ``fp32``, ``bf16`` and ``fp16`` are taken as their long names."""
    name = value.strip().lower() if isinstance(value, str) else value
    name = DTYPE_ALIASES.get(name, name) if isinstance(name, str) else name
    if name not in DTYPES:
        raise ValueError("unknown dtype: use auto, float32, bfloat16 or float16 (or fp32, bf16, fp16)")
    return name


Device = Annotated[str, BeforeValidator(device_name)]
Dtype = Annotated[Literal["auto", "float32", "bfloat16", "float16"], BeforeValidator(dtype_name)]
