"""Loading models and tokenizers from a local path or a hub id, with clear errors."""

from __future__ import annotations

from pathlib import Path

from okapi_kit import OkapiError


def _check(name: str) -> None:
    looks_local = name.startswith(("/", ".", "~")) or Path(name).exists()
    if looks_local and not Path(name).expanduser().exists():
        raise OkapiError(f"model path does not exist: {name}",
                         hint="give an existing local folder or a hub id such as 'bigscience/bloom-560m'")


def _wrap(name: str, exc: Exception) -> OkapiError:
    return OkapiError(
        f"could not load model {name!r}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
        hint="check the path or hub id; without network access, download the model first "
        "and give its local folder",
    )


def load_tokenizer(name: str, *, trust_remote_code: bool = False, padding_side: str = "left"):
    from transformers import AutoTokenizer

    _check(name)
    try:
        tok = AutoTokenizer.from_pretrained(str(Path(name).expanduser()) if Path(name).expanduser().exists() else name,
                                            trust_remote_code=trust_remote_code)
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: a damaged sentencepiece file
        raise _wrap(name, exc) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = padding_side
    return tok


def load_causal_lm(name: str, *, trust_remote_code: bool = False, dtype=None):
    from transformers import AutoModelForCausalLM

    _check(name)
    try:
        return AutoModelForCausalLM.from_pretrained(name, trust_remote_code=trust_remote_code,
                                                    dtype=dtype or "auto")
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: a damaged sentencepiece file
        raise _wrap(name, exc) from None


def load_sequence_classifier(name: str, *, trust_remote_code: bool = False):
    from transformers import AutoModelForSequenceClassification

    _check(name)
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            name, num_labels=1, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: a damaged sentencepiece file
        raise _wrap(name, exc) from None
