"""Translator ``transformers_mt``: seq2seq MT models (NLLB, M2M100, Marian) through transformers.

Each family marks languages with its own tokens (``mt_codes.py``): NLLB and M2M100 put the
source language's token before the text and force the target language's token as the first
generated one; a multi-target Marian model reads a ``>>xxx<<`` token before the source text.
The input ids are built here, the same way for every tokenizer: ``prefix + tokens(text) + EOS``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from okapi_kit import ComponentConfig, Failed, OkapiError, Translator

from .model_ref import ModelRef
from .mt_codes import language_token, marian_candidates, model_code
from .options import Device, Dtype

WHERE = "transformers_mt"


class TransformersMTConfig(ComponentConfig):
    model: ModelRef = Field(description="folder or hub id of an NLLB, M2M100 or Marian model")
    family: Literal["auto", "nllb", "m2m100", "marian"] = Field(
        "auto", description="auto: read from the model's config (model_type) and tokenizer")
    codes: dict[str, str] = Field(default_factory=dict, description="the model's own code for a language, "
                                  "overriding the derived one, e.g. {sr: srp_Latn} or {zh: zho_Hant}")
    marian_target_token: Literal["auto", "always", "never"] = Field(
        "auto", description="put >>xxx<< before the source text: auto = when the vocabulary has such tokens")
    num_beams: int = Field(4, ge=1, description="beam width (1 = greedy)")
    max_input_tokens: int = Field(512, ge=4, description="longer pieces fail rather than being cut")
    max_new_tokens: int = Field(512, ge=1, description="tokens generated per piece")
    on_truncation: Literal["fail", "keep"] = Field(
        "fail", description="a translation that reached max_new_tokens without ending: fail it or keep it")
    split_lines: bool = Field(True, description="translate line by line; fenced code blocks are kept")
    batch_size: int = Field(16, ge=1, description="pieces per generate call")
    device: Device = Field("auto", description="auto (cuda when present, else cpu), cpu, cuda, cuda:N or mps")
    dtype: Dtype = Field("auto", description="auto (bf16 on a GPU that has it, else fp32), float32, "
                         "bfloat16 or float16 (fp32, bf16, fp16 also accepted)")

    @field_validator("codes")
    @classmethod
    def _codes(cls, value: dict[str, str]) -> dict[str, str]:
        for lang, code in value.items():
            if not code.strip() or any(c.isspace() for c in code):
                raise ValueError(f"codes: {lang}: {code!r} is not a language code (no spaces)")
        return value


@dataclass(frozen=True)
class LanguageTokens:
    """How a model is told the languages: ids put before the source text, and the token it
    must generate first (NLLB, M2M100)."""

    prefix: tuple[int, ...]
    forced_bos: int | None
    target_token: str | None


def detect_family(model_type: str, tokenizer: Any) -> str:
    """The family of a loaded model: Marian by ``model_type``; NLLB and M2M100 are both
    ``m2m_100`` and differ in their tokenizer's language tokens (``eng_Latn`` or ``__en__``)."""
    if model_type == "marian":
        return "marian"
    if model_type == "m2m_100":
        vocab = tokenizer.get_vocab()
        if type(tokenizer).__name__.startswith("Nllb") or "eng_Latn" in vocab:
            return "nllb"
        if "__en__" in vocab:
            return "m2m100"
        raise OkapiError("an m2m_100 model whose tokenizer has neither NLLB's (eng_Latn) nor M2M100's "
                         "(__en__) language tokens", where=WHERE, hint="set the option family")
    raise OkapiError(f"model_type {model_type!r} is not an NLLB, M2M100 or Marian model", where=WHERE,
                     hint="give a seq2seq MT model, or set family if it uses one of their language codes")


def guess_family(name: str) -> str | None:
    """The family a hub id names (``facebook/nllb-200-...``, ``Helsinki-NLP/opus-mt-...``), if any:
    lets ``validate`` check languages for a model that is not downloaded yet."""
    low = name.lower()
    for part, family in (("nllb", "nllb"), ("m2m100", "m2m100"), ("m2m_100", "m2m100"),
                         ("opus-mt", "marian"), ("marian", "marian")):
        if part in low:
            return family
    return None


def _token_id(tokenizer: Any, vocab: dict[str, int], token: str) -> int | None:
    """The id of ``token``, or None when the tokenizer does not know it (some slow tokenizers
    keep their language tokens outside ``get_vocab``, hence the second look-up)."""
    if token in vocab:
        return vocab[token]
    found = tokenizer.convert_tokens_to_ids(token)
    return found if isinstance(found, int) and found != tokenizer.unk_token_id else None


def language_tokens(tokenizer: Any, family: str, source: str, target: str, *,
                    codes: dict[str, str] | None = None, marian_target_token: str = "auto") -> LanguageTokens:
    """The language tokens for translating ``source`` into ``target`` with this tokenizer;
    OkapiError if the model's vocabulary lacks one."""
    vocab = tokenizer.get_vocab()
    if family == "marian":
        known = sorted(t for t in vocab if t.startswith(">>") and t.endswith("<<"))
        if marian_target_token == "never" or (marian_target_token == "auto" and not known):
            return LanguageTokens((), None, None)  # a single-pair model: the pair is in its weights
        wanted = [codes[target]] if codes and target in codes else marian_candidates(target)
        for code in wanted:
            token = language_token("marian", code)
            found = _token_id(tokenizer, vocab, token)
            if found is not None:
                return LanguageTokens((found,), None, token)
        shown = ", ".join(known[:12]) + (f" ... ({len(known)} in all)" if len(known) > 12 else "")
        raise OkapiError(f"this Marian model has no target token for {target!r} (tried "
                         f"{', '.join(language_token('marian', c) for c in wanted)}); it knows {shown or 'none'}",
                         where=WHERE, hint=f"pick a model that translates into {target!r}, or name its "
                         f"token's code under codes: {{{target}: ...}}")
    ids, token = [], ""
    for lang in (source, target):
        token = language_token(family, model_code(family, lang, codes))
        found = _token_id(tokenizer, vocab, token)
        if found is None:
            raise OkapiError(f"the {family} model's vocabulary has no token {token!r} for {lang!r}",
                             where=WHERE, hint=f"check the model, or give its code for {lang!r} under codes:")
        ids.append(found)
    return LanguageTokens((ids[0],), ids[1], token)


class TransformersMTTranslator(Translator):
    """Translates with a local or hub seq2seq MT model (NLLB, M2M100, Marian)."""

    name = "transformers_mt"
    Config = TransformersMTConfig

    def __init__(self, config: TransformersMTConfig | None = None):
        super().__init__(config)
        self.model_name = str(self.config.model)
        self._tokenizer: Any = None
        self._family: str | None = None
        self._model: Any = None
        self._counts = {"pieces": 0, "reused": 0, "input_tokens": 0, "output_tokens": 0,
                        "too_long": 0, "truncated": 0, "empty": 0}

    # ---- loading ----------------------------------------------------------------------------

    def _describe(self, *, need_tokenizer: bool) -> tuple[str, Any]:
        """(family, tokenizer). For ``check`` (need_tokenizer False) a hub id is looked up in
        the local cache only, never on the network: when it is not there the tokenizer is None
        and the languages are checked by the family (the option, or guessed from the name)."""
        if self._tokenizer is None:
            local_only = not need_tokenizer and not isinstance(self.config.model, Path)
            try:
                tok = self._load_tokenizer(local_only)
            except OkapiError:
                family = self.config.family if self.config.family != "auto" else guess_family(self.model_name)
                if not local_only:
                    raise
                if family is None:
                    raise OkapiError(f"cannot tell the family of {self.model_name!r}: it is not in the local "
                                     "model cache and its name says nothing", where=WHERE,
                                     hint="set the option family (nllb, m2m100 or marian), or download the "
                                     "model first") from None
                return family, None
            family = self.config.family
            if family == "auto":
                family = detect_family(self._model_type(local_only), tok)
            self._tokenizer, self._family = tok, family
        return self._family, self._tokenizer

    def _load_tokenizer(self, local_only: bool) -> Any:
        from transformers import AutoTokenizer

        from .loading import _wrap, load_tokenizer

        try:
            if local_only:
                return AutoTokenizer.from_pretrained(self.model_name, local_files_only=True)
            return load_tokenizer(self.model_name, padding_side="right")
        except ImportError as exc:  # M2M100's and Marian's tokenizers are sentencepiece models
            first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            raise OkapiError(f"the tokenizer of {self.model_name} needs a library that is not installed: {first}",
                             where=WHERE, hint="pip install sentencepiece (M2M100 and Marian need it; "
                             "NLLB does not)") from None
        except (OSError, ValueError, RuntimeError) as exc:
            raise _wrap(self.model_name, exc) from None

    def _model_type(self, local_only: bool = False) -> str:
        from transformers import AutoConfig

        from .loading import _wrap

        try:
            return AutoConfig.from_pretrained(self.model_name, local_files_only=local_only).model_type
        except (OSError, ValueError, RuntimeError) as exc:
            raise _wrap(self.model_name, exc) from None

    def _load(self) -> tuple[str, Any, Any]:
        family, tok = self._describe(need_tokenizer=True)
        if self._model is None:
            from transformers import AutoModelForSeq2SeqLM

            from .device import pick_device, pick_dtype
            from .loading import _wrap

            device = pick_device(self.config.device)
            try:
                model = AutoModelForSeq2SeqLM.from_pretrained(self.model_name,
                                                              dtype=pick_dtype(self.config.dtype, device))
            except (OSError, ValueError, RuntimeError) as exc:
                raise _wrap(self.model_name, exc) from None
            self._model = model.to(device).eval()
        return family, tok, self._model

    # ---- the component ----------------------------------------------------------------------

    def check(self, source: str, target: str) -> None:
        family, tok = self._describe(need_tokenizer=False)
        if tok is not None:
            language_tokens(tok, family, source, target, codes=self.config.codes,
                            marian_target_token=self.config.marian_target_token)
        elif family == "marian":
            model_code(family, target, self.config.codes)
        else:
            model_code(family, source, self.config.codes)
            model_code(family, target, self.config.codes)

    def translate(self, texts: Sequence[str], source: str, target: str) -> list[str | None | Failed]:
        from .mt_text import join, pieces

        if not texts:
            return []
        family, tok, model = self._load()
        langs = language_tokens(tok, family, source, target, codes=self.config.codes,
                                marian_target_token=self.config.marian_target_token)
        parts = [pieces(t, split_lines=self.config.split_lines) for t in texts]
        wanted = list(dict.fromkeys(p.text for ps in parts for p in ps if p.translate))
        self._counts["reused"] += sum(p.translate for ps in parts for p in ps) - len(wanted)
        done = self._translate_pieces(wanted, langs, tok, model)
        out: list[str | None | Failed] = []
        for ps in parts:
            bad = next((done[p.text] for p in ps if p.translate and isinstance(done[p.text], Failed)), None)
            out.append(bad if bad is not None else join(ps, done))
        return out

    def usage(self) -> dict[str, Any]:
        """Pieces translated and reused, tokens, and why any failed (for the stage summary)."""
        return {"model": self.model_name, **self._counts}

    # ---- generation -------------------------------------------------------------------------

    def _translate_pieces(self, texts: list[str], langs: LanguageTokens, tok: Any,
                          model: Any) -> dict[str, str | Failed]:
        import torch

        from .tokens import pad

        cfg = self.config
        eos = tok.eos_token_id
        if eos is None:
            raise OkapiError(f"the tokenizer of {self.model_name} has no EOS token", where=WHERE)
        done: dict[str, str | Failed] = {}
        rows: dict[str, list[int]] = {}
        for text in texts:
            row = [*langs.prefix, *tok(text, add_special_tokens=False)["input_ids"], eos]
            if len(row) > cfg.max_input_tokens:
                self._counts["too_long"] += 1
                done[text] = Failed(f"a piece of {len(row)} tokens is longer than max_input_tokens="
                                    f"{cfg.max_input_tokens} (raise it, or keep split_lines on)")
            else:
                rows[text] = row
        # longest first: pieces of similar length share a batch, so little padding is computed
        order = sorted(rows, key=lambda t: -len(rows[t]))
        stops = {eos, tok.pad_token_id}
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else eos
        for start in range(0, len(order), cfg.batch_size):
            batch = order[start:start + cfg.batch_size]
            enc = {k: v.to(model.device) for k, v in pad([rows[t] for t in batch], pad_id, "right").items()}
            kwargs: dict[str, Any] = dict(max_new_tokens=cfg.max_new_tokens, num_beams=cfg.num_beams,
                                          do_sample=False, pad_token_id=pad_id, eos_token_id=eos)
            if langs.forced_bos is not None:
                kwargs["forced_bos_token_id"] = langs.forced_bos
            with torch.no_grad():
                gen = model.generate(**enc, **kwargs)
            for text, ids, src in zip(batch, gen.tolist(), enc["attention_mask"].sum(1).tolist()):
                done[text] = self._result(ids, langs, stops, tok, int(src))
        self._counts["pieces"] += len(texts)
        return done

    def _result(self, ids: list[int], langs: LanguageTokens, stops: set[int | None], tok: Any,
                input_tokens: int) -> str | Failed:
        """One generated sequence as text: EOS ends it; no EOS within the budget is a truncation."""
        generated = ids[1:]  # after the decoder start token
        end = next((i for i, t in enumerate(generated) if t in stops), None)
        ended = end is not None
        body = generated[:end] if ended else generated
        self._counts["input_tokens"] += input_tokens
        self._counts["output_tokens"] += len(body) + ended
        if langs.forced_bos is not None and body[:1] == [langs.forced_bos]:
            body = body[1:]  # the target language's token is not part of the text
        text = tok.decode(body, skip_special_tokens=True).strip()
        if not ended:
            self._counts["truncated"] += 1
            if self.config.on_truncation == "fail":
                return Failed(f"the translation reached max_new_tokens={self.config.max_new_tokens} "
                              "without ending (raise max_new_tokens, or set on_truncation: keep)")
        if not text:
            self._counts["empty"] += 1
            return Failed("the model produced an empty translation")
        return text
