"""Tiny models built from a transformers config, with a byte-level tokenizer.

The tokenizer is a BPE over the 256 byte-level symbols with no merges: it needs no
download and covers every script (one token per UTF-8 byte).
"""

from __future__ import annotations

from pathlib import Path

ARCHS = ("llama", "bloom", "qwen2")
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]


def byte_level_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        unk_token="<unk>", model_max_length=4096,
    )


def tiny_config(arch: str, vocab_size: int, *, hidden: int, layers: int, heads: int,
                max_positions: int, pad_id: int, bos_id: int, eos_id: int):
    from transformers import BloomConfig, LlamaConfig, Qwen2Config

    common = dict(vocab_size=vocab_size, pad_token_id=pad_id, bos_token_id=bos_id,
                  eos_token_id=eos_id, tie_word_embeddings=True)
    if arch == "llama":
        return LlamaConfig(hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
                           num_attention_heads=heads, num_key_value_heads=heads,
                           max_position_embeddings=max_positions, **common)
    if arch == "qwen2":
        return Qwen2Config(hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
                           num_attention_heads=heads, num_key_value_heads=heads,
                           max_position_embeddings=max_positions, **common)
    if arch == "bloom":
        return BloomConfig(hidden_size=hidden, n_layer=layers, n_head=heads, **common)
    raise ValueError(arch)


def write_tiny_model(out_dir: Path, *, arch: str = "llama", hidden: int = 64, layers: int = 2,
                     heads: int = 4, max_positions: int = 2048, seed: int = 0) -> Path:
    """Write a randomly initialised causal LM and its tokenizer to ``out_dir`` (safetensors)."""
    import torch
    from transformers import AutoModelForCausalLM

    from okapi_kit import OkapiError

    if arch not in ARCHS:
        raise OkapiError(f"unknown tiny-model architecture {arch!r}", hint=f"choose one of {', '.join(ARCHS)}")
    tokenizer = byte_level_tokenizer()
    config = tiny_config(arch, len(tokenizer), hidden=hidden, layers=layers, heads=heads,
                         max_positions=max_positions, pad_id=tokenizer.pad_token_id,
                         bos_id=tokenizer.bos_token_id, eos_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def parse_tiny_spec(spec: str) -> dict:
    """``tiny:llama`` -> {arch: llama}; ``tiny:qwen2:128x4`` -> {arch, hidden: 128, layers: 4}."""
    from okapi_kit import OkapiError

    parts = spec.split(":")
    out: dict = {"arch": parts[1] if len(parts) > 1 else "llama"}
    if len(parts) > 2:
        try:
            hidden, layers = parts[2].lower().split("x")
            out.update(hidden=int(hidden), layers=int(layers))
        except ValueError:
            raise OkapiError(f"bad tiny-model spec {spec!r}", hint="write tiny:<arch> or tiny:<arch>:<hidden>x<layers>") from None
    if len(parts) > 3 or out["arch"] not in ARCHS:
        raise OkapiError(f"bad tiny-model spec {spec!r}", hint=f"architectures: {', '.join(ARCHS)}")
    return out
