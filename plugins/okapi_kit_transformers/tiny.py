"""Tiny models built from a transformers config, with a byte-level tokenizer.

The tokenizer is a BPE over the 256 byte-level symbols with no merges: it needs no
download and covers every script (one token per UTF-8 byte).
"""

from __future__ import annotations

from pathlib import Path

ARCHS = ("llama", "bloom", "qwen2")
ROTARY = ("llama", "qwen2")  # architectures with rotary position embeddings
DEFAULT_HIDDEN, DEFAULT_LAYERS, HEADS = 64, 2, 4
MAX_HIDDEN, MAX_LAYERS = 4096, 64  # tiny models are for tests and demos
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]


def byte_level_tokenizer(*, add_bos: bool = False, add_eos: bool = False):
    """The byte-level tokenizer; ``add_bos`` / ``add_eos`` make it put ``<s>`` before and
    ``</s>`` after every text, as Llama's tokenizer does with ``add_bos_token`` / ``add_eos_token``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    if add_bos or add_eos:
        bos, eos = ("<s>:0 " if add_bos else ""), (" </s>:0" if add_eos else "")
        core.post_processor = processors.TemplateProcessing(
            single=f"{bos}$A:0{eos}", pair=f"{bos}$A:0{eos} $B:1{eos}",
            special_tokens=[("<s>", vocab["<s>"]), ("</s>", vocab["</s>"])])
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


def write_tiny_model(out_dir: Path, *, arch: str = "llama", hidden: int = DEFAULT_HIDDEN,
                     layers: int = DEFAULT_LAYERS, heads: int = HEADS, max_positions: int = 2048, seed: int = 0,
                     add_bos: bool = False, add_eos: bool = False) -> Path:
    """Write a randomly initialised causal LM and its tokenizer to ``out_dir`` (safetensors)."""
    import torch
    from transformers import AutoModelForCausalLM

    check_tiny_size(arch, hidden, layers, heads)
    tokenizer = byte_level_tokenizer(add_bos=add_bos, add_eos=add_eos)
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


def check_tiny_size(arch: str, hidden: int, layers: int, heads: int = HEADS, *, spec: str | None = None) -> None:
    """OkapiError unless a model of this architecture and size can be built (and is tiny)."""
    from okapi_kit import OkapiError

    what = f"tiny-model spec {spec!r}" if spec else "tiny model"
    if arch not in ARCHS:
        raise OkapiError(f"{what}: unknown architecture {arch!r}", hint=f"choose one of {', '.join(ARCHS)}")
    if not 1 <= layers <= MAX_LAYERS:
        raise OkapiError(f"{what} has {layers} layers", hint=f"give 1 to {MAX_LAYERS} layers")
    size_hint = f"give a multiple of {2 * heads} up to {MAX_HIDDEN}, e.g. 64"
    if not 1 <= hidden <= MAX_HIDDEN:
        raise OkapiError(f"{what} has hidden size {hidden}", hint=size_hint)
    if heads < 1 or hidden % heads:
        raise OkapiError(f"{what}: hidden size {hidden} is not a multiple of its {heads} attention heads",
                         hint=size_hint)
    if arch in ROTARY and (hidden // heads) % 2:
        # rotary position embeddings rotate pairs of dimensions
        raise OkapiError(f"{what}: {arch} needs an even head size; hidden {hidden} / {heads} heads "
                         f"= {hidden // heads}", hint=size_hint)


def parse_tiny_spec(spec: str) -> dict:
    """``tiny:llama`` -> {arch: llama}; ``tiny:qwen2:128x4`` -> {arch, hidden: 128, layers: 4}.

    Strict and light (no torch): an OkapiError for any spec ``write_tiny_model`` cannot build,
    so a config can be checked before any work.
    """
    from okapi_kit import OkapiError

    usage = f"write tiny:<arch> or tiny:<arch>:<hidden>x<layers>, e.g. tiny:llama:64x2 ({', '.join(ARCHS)})"
    parts = spec.split(":")
    if parts[0] != "tiny" or not 2 <= len(parts) <= 3:
        raise OkapiError(f"bad tiny-model spec {spec!r}", hint=usage)
    out: dict = {"arch": parts[1]}
    if len(parts) == 3:
        size = parts[2].lower().split("x")
        if len(size) != 2 or not all(n.isascii() and n.isdigit() for n in size):
            raise OkapiError(f"bad tiny-model spec {spec!r}", hint=usage)
        out.update(hidden=int(size[0]), layers=int(size[1]))
    check_tiny_size(out["arch"], out.get("hidden", DEFAULT_HIDDEN), out.get("layers", DEFAULT_LAYERS), spec=spec)
    return out


def validate_tiny_spec(spec: str) -> None:
    """Check a ``tiny:`` model spec at config-validation time (OkapiError if it cannot be built)."""
    parse_tiny_spec(spec)
