"""Fixtures shared by the tests that train or sample tiny models on a CPU: ``tiny`` (a model
written once per module) and ``one_thread``, which a module turns on for all its tests with
``pytestmark = pytest.mark.usefixtures("one_thread")``."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest (and steadiest on a shared machine) on one CPU thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    """A random Llama, 32 wide and 1 layer, with the byte-level tokenizer, written once per module."""
    from okapi_kit_transformers.tiny import write_tiny_model

    return str(write_tiny_model(tmp_path_factory.mktemp("tiny") / "llama", hidden=32, layers=1, heads=2))
