"""Prompt formatting: Okapi's Alpaca template by default, the model's chat template on request."""

from __future__ import annotations

import pytest

from okapi_kit import OkapiError
from okapi_kit.prompts import PromptFormatter, format_alpaca

TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")


@pytest.fixture(scope="module")
def tokenizer_dirs(tmp_path_factory):
    from okapi_kit_transformers.tiny import byte_level_tokenizer

    root = tmp_path_factory.mktemp("tok")
    plain = byte_level_tokenizer()
    plain.save_pretrained(root / "plain")
    chat = byte_level_tokenizer()
    chat.chat_template = TEMPLATE
    chat.save_pretrained(root / "chat")
    return root / "plain", root / "chat"


def test_chat_template_is_used_when_asked(tokenizer_dirs):
    _, chat = tokenizer_dirs
    fmt = PromptFormatter("chat", str(chat))
    assert fmt("Name a colour.") == "<|user|>Name a colour.\n<|assistant|>"
    assert fmt("Translate.", "hello") == "<|user|>Translate.\n\nhello\n<|assistant|>"


def test_auto_falls_back_to_alpaca_without_a_template(tokenizer_dirs):
    plain, chat = tokenizer_dirs
    assert PromptFormatter("auto", str(plain))("Name a colour.") == format_alpaca("Name a colour.")
    assert PromptFormatter("auto", str(chat))("Hi").startswith("<|user|>Hi")


def test_chat_without_a_template_is_a_clear_error(tokenizer_dirs):
    plain, _ = tokenizer_dirs
    with pytest.raises(OkapiError, match="has no chat template"):
        PromptFormatter("chat", str(plain))


def test_alpaca_ignores_the_model(tokenizer_dirs):
    _, chat = tokenizer_dirs
    assert PromptFormatter("alpaca", str(chat))("Hi") == format_alpaca("Hi")
