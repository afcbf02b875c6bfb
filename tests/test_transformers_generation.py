"""Local models for data generation: seq2seq MT (``transformers_mt``), a causal LM as chat
model behind the generic translator, judge and generator (``transformers``), and the
reward-model ranker (``reward_model``). Every model is tiny, random and built from a config.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from okapi_kit_transformers.chat import TransformersChat, TransformersChatOptions, transcript
from okapi_kit_transformers.mt import (
    TransformersMTTranslator,
    detect_family,
    guess_family,
    language_tokens,
)
from okapi_kit_transformers.mt_codes import m2m100_code, marian_candidates, model_code, nllb_code
from okapi_kit_transformers.reward import RewardModelConfig, RewardModelSource
from okapi_kit_transformers.tiny import byte_level_tokenizer, tiny_config, write_tiny_model
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForSequenceClassification,
    M2M100Config,
    M2M100ForConditionalGeneration,
    MarianConfig,
    MarianMTModel,
)

from okapi_kit import Failed, OkapiError, RankResult
from okapi_kit.languages import LANGUAGES, OKAPI_LANGUAGES
from okapi_kit.llm.chat import ChatReply, ChatRequest
from okapi_kit.plugins import build_plugin_manager
from okapi_kit.records import Instruction, SampleSet
from okapi_kit.registry import Registry, create_component

pytestmark = pytest.mark.usefixtures("one_thread")

# FLORES-200 codes as NLLB's model card lists them, written out by hand (not derived).
FLORES = {
    "en": "eng_Latn", "ru": "rus_Cyrl", "de": "deu_Latn", "zh": "zho_Hans", "fr": "fra_Latn",
    "es": "spa_Latn", "it": "ita_Latn", "nl": "nld_Latn", "vi": "vie_Latn", "id": "ind_Latn",
    "ar": "arb_Arab", "hu": "hun_Latn", "ro": "ron_Latn", "da": "dan_Latn", "sk": "slk_Latn",
    "uk": "ukr_Cyrl", "ca": "cat_Latn", "sr": "srp_Cyrl", "hr": "hrv_Latn", "hi": "hin_Deva",
    "bn": "ben_Beng", "ta": "tam_Taml", "ne": "npi_Deva", "ml": "mal_Mlym", "mr": "mar_Deva",
    "te": "tel_Telu", "kn": "kan_Knda", "eu": "eus_Latn", "gu": "guj_Gujr", "hy": "hye_Armn",
    "pt": "por_Latn", "is": "isl_Latn", "nb": "nob_Latn", "sv": "swe_Latn",
}


def create(kind: str, name: str, options: dict, base_dir: Path | None = None):
    """A component as ``validate`` builds it, from the installed plugins."""
    reg = Registry.from_plugins(build_plugin_manager())
    return create_component(reg, kind, name, options, where=f"config.yaml: {kind}", base_dir=base_dir)


# ---- tiny models --------------------------------------------------------------------------------


def _tokenizer(language_tokens: list[str]):
    tok = byte_level_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": language_tokens})
    return tok


def _save(model, tok, out: Path) -> str:
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def _nllb_tokenizer():
    """transformers' own NllbTokenizer (with all of NLLB's language tokens) over a vocabulary
    of printable ASCII characters: the real class, with no sentencepiece file to download."""
    from transformers import NllbTokenizer

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "\u2581": 4}
    for code in range(33, 127):
        vocab[chr(code)] = len(vocab)
    return NllbTokenizer(vocab=vocab, merges=[])


def _m2m100(out: Path, language_tokens: list[str] | None) -> str:
    tok = _tokenizer(language_tokens) if language_tokens is not None else _nllb_tokenizer()
    # a large init spread makes the random model's output depend on its input
    cfg = M2M100Config(vocab_size=len(tok), d_model=32, encoder_layers=1, decoder_layers=1,
                       encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                       decoder_ffn_dim=64, max_position_embeddings=256, init_std=1.0,
                       pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                       eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    model = M2M100ForConditionalGeneration(cfg)
    with torch.no_grad():
        # NLLB's 200 language tokens outnumber the characters: with their (tied) embeddings at
        # zero the random model writes characters, as a trained one does
        ordinary = {tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id}
        model.get_input_embeddings().weight[[i for i in tok.all_special_ids if i not in ordinary]] = 0
    return _save(model, tok, out)


def _marian(out: Path, language_tokens: list[str]) -> str:
    tok = _tokenizer(language_tokens)
    cfg = MarianConfig(vocab_size=len(tok), d_model=32, encoder_layers=1, decoder_layers=1,
                       encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                       decoder_ffn_dim=64, max_position_embeddings=256, init_std=1.0,
                       pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                       decoder_start_token_id=tok.pad_token_id, forced_eos_token_id=None)
    torch.manual_seed(0)
    return _save(MarianMTModel(cfg), tok, out)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("models")
    return {
        "nllb": _m2m100(root / "nllb", None),
        "m2m100": _m2m100(root / "m2m100", [f"__{c}__" for c in ("en", "vi", "bn", "de", "no")]),
        "marian_multi": _marian(root / "marian_multi", [">>vie<<", ">>ben<<", ">>srp_Cyrl<<", ">>srp_Latn<<"]),
        "marian_pair": _marian(root / "marian_pair", []),
    }


def mt(model: str, **options) -> TransformersMTTranslator:
    return create("translator", "transformers_mt", {"model": model, "device": "cpu", **options})


class GenerateSpy:
    """Wraps a model class's ``generate``: records its inputs, options and outputs."""

    def __init__(self, monkeypatch, cls):
        self.calls: list[tuple[dict, torch.Tensor]] = []
        original = cls.generate

        def generate(model, **kwargs):
            out = original(model, **kwargs)
            self.calls.append((kwargs, out))
            return out

        monkeypatch.setattr(cls, "generate", generate)


# ---- language codes -----------------------------------------------------------------------------


def test_every_language_of_the_table_has_its_flores_code():
    assert set(FLORES) == set(LANGUAGES)  # the Okapi 26, English and lm-eval's extras
    for code in LANGUAGES:
        assert nllb_code(code) == FLORES[code], code
    assert set(OKAPI_LANGUAGES) <= set(FLORES)


def test_every_derived_code_is_a_language_token_of_the_nllb_tokenizer():
    tok = _nllb_tokenizer()  # transformers' NllbTokenizer, with its own list of FLORES-200 codes
    for code in LANGUAGES:
        assert tok.convert_tokens_to_ids(nllb_code(code)) != tok.unk_token_id, code


def test_the_input_is_what_the_nllb_tokenizer_itself_builds():
    tok = _nllb_tokenizer()
    for source in ("en", "vi", "hi"):
        tok.src_lang = nllb_code(source)
        prefix = language_tokens(tok, "nllb", source, "bn").prefix
        text = "Name three colours."
        assert tok(text)["input_ids"] == [*prefix, *tok(text, add_special_tokens=False)["input_ids"],
                                          tok.eos_token_id]
    assert detect_family("m2m_100", tok) == "nllb"


def test_m2m100_codes_and_the_languages_it_lacks():
    for code in set(OKAPI_LANGUAGES) - {"te"}:
        assert m2m100_code(code) == code
    assert m2m100_code("nb") == "no"  # M2M100 has Norwegian as a whole
    for lacking in ("te", "eu"):
        with pytest.raises(OkapiError, match="M2M100 does not cover") as info:
            m2m100_code(lacking)
        assert "nllb" in info.value.hint


def test_marian_candidates_go_from_most_specific_to_iso_639_1():
    assert marian_candidates("vi") == ["vie_Latn", "vie", "vi"]
    assert marian_candidates("sr") == ["srp_Cyrl", "srp", "sr"]
    assert marian_candidates("zh")[:2] == ["zho_Hans", "zho"] and "cmn_Hans" in marian_candidates("zh")
    assert "ara" in marian_candidates("ar")


def test_a_language_outside_the_table_needs_an_override():
    with pytest.raises(OkapiError, match="'ja'") as info:
        nllb_code("ja")
    assert "codes" in info.value.hint
    assert model_code("nllb", "ja", {"ja": "jpn_Jpan"}) == "jpn_Jpan"
    assert model_code("nllb", "sr", {"sr": "srp_Latn"}) == "srp_Latn"


def test_guess_family_from_a_hub_id():
    assert guess_family("facebook/nllb-200-distilled-600M") == "nllb"
    assert guess_family("facebook/m2m100_418M") == "m2m100"
    assert guess_family("Helsinki-NLP/opus-mt-en-vi") == "marian"
    assert guess_family("my-org/some-model") is None


def test_a_hub_model_not_downloaded_is_checked_by_its_family_without_the_network():
    # check() looks in the local cache only: these ids are not there, and nothing is fetched
    mt("facebook/nllb-200-distilled-600M").check("en", "te")
    with pytest.raises(OkapiError, match="M2M100 does not cover Telugu"):
        mt("facebook/m2m100_418M").check("en", "te")
    mt("okapi-kit-tests/no-such-model", family="m2m100").check("en", "vi")
    with pytest.raises(OkapiError, match="cannot tell the family of 'okapi-kit-tests/no-such-model'") as info:
        mt("okapi-kit-tests/no-such-model").check("en", "vi")
    assert "family" in info.value.hint


# ---- family and language tokens -----------------------------------------------------------------


def test_family_is_read_from_config_and_tokenizer(models, tmp_path):
    for family, path in [("nllb", models["nllb"]), ("m2m100", models["m2m100"]), ("marian", models["marian_pair"])]:
        tok = AutoTokenizer.from_pretrained(path)
        assert detect_family(AutoConfig.from_pretrained(path).model_type, tok) == family
    llama = write_tiny_model(tmp_path / "llama")
    with pytest.raises(OkapiError, match="'llama' is not an NLLB, M2M100 or Marian model"):
        mt(str(llama)).check("en", "vi")


def test_language_tokens_per_family(models):
    nllb = AutoTokenizer.from_pretrained(models["nllb"])
    got = language_tokens(nllb, "nllb", "en", "vi")
    assert got.prefix == (nllb.convert_tokens_to_ids("eng_Latn"),)
    assert got.forced_bos == nllb.convert_tokens_to_ids("vie_Latn") and got.target_token == "vie_Latn"

    m2m = AutoTokenizer.from_pretrained(models["m2m100"])
    got = language_tokens(m2m, "m2m100", "en", "nb")
    assert got.prefix == (m2m.convert_tokens_to_ids("__en__"),)
    assert got.forced_bos == m2m.convert_tokens_to_ids("__no__")

    multi = AutoTokenizer.from_pretrained(models["marian_multi"])
    got = language_tokens(multi, "marian", "en", "vi")
    assert got.prefix == (multi.convert_tokens_to_ids(">>vie<<"),) and got.forced_bos is None
    # the script in okapi-kit's table picks Cyrillic Serbian; an override picks Latin
    assert language_tokens(multi, "marian", "en", "sr").target_token == ">>srp_Cyrl<<"
    assert language_tokens(multi, "marian", "en", "sr", codes={"sr": "srp_Latn"}).target_token == ">>srp_Latn<<"
    assert language_tokens(multi, "marian", "en", "vi", marian_target_token="never").prefix == ()
    with pytest.raises(OkapiError, match="no target token for 'de'") as info:
        language_tokens(multi, "marian", "en", "de")
    assert ">>vie<<" in info.value.message

    pair = AutoTokenizer.from_pretrained(models["marian_pair"])
    assert language_tokens(pair, "marian", "en", "vi").prefix == ()
    with pytest.raises(OkapiError, match="no target token"):
        language_tokens(pair, "marian", "en", "vi", marian_target_token="always")


def test_check_names_the_language_a_model_cannot_handle(models):
    mt(models["nllb"]).check("en", "te")
    with pytest.raises(OkapiError, match="M2M100 does not cover Telugu"):
        mt(models["m2m100"]).check("en", "te")
    with pytest.raises(OkapiError, match="vocabulary has no token '__ru__'"):
        mt(models["m2m100"]).check("en", "ru")
    mt(models["nllb"], codes={"ja": "jpn_Jpan"}).check("en", "ja")  # outside the table, named by an override
    with pytest.raises(OkapiError, match="vocabulary has no token 'jpn_Latn'"):
        mt(models["nllb"], codes={"ja": "jpn_Latn"}).check("en", "ja")
    with pytest.raises(OkapiError, match="no target token for 'hi'"):
        mt(models["marian_multi"]).check("en", "hi")
    with pytest.raises(OkapiError, match="model path does not exist"):
        mt("./no/such/model").check("en", "vi")


def test_options_are_checked_when_the_config_is_validated(models):
    good = {"model": models["nllb"]}
    assert mt(**good).config.family == "auto"
    for bad, message in [({"device": "gpu"}, "unknown device"), ({"dtype": "int8"}, "unknown dtype"),
                         ({"num_beams": 0}, "num_beams"), ({"family": "t5"}, "family"),
                         ({"codes": {"sr": "srp Latn"}}, "no spaces"), ({"beams": 2}, "beams")]:
        with pytest.raises(OkapiError, match=message):
            create("translator", "transformers_mt", {**good, **bad})
    with pytest.raises(OkapiError, match="model"):
        create("translator", "transformers_mt", {})


def test_a_local_model_is_found_from_the_config_folder(models, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # not the config's folder
    folder = Path(models["nllb"])
    for given in [f"./{folder.name}", folder.name]:
        tr = create("translator", "transformers_mt", {"model": given}, base_dir=folder.parent)
        assert tr.config.model == folder  # a Path: the pipeline fingerprints the folder by content
        tr.check("en", "vi")
    hub = create("translator", "transformers_mt", {"model": "facebook/nllb-200-distilled-600M"}, base_dir=tmp_path)
    assert hub.config.model == "facebook/nllb-200-distilled-600M"
    chat_model = create("ranker", "transformers", {"model": f"./{folder.name}"}, base_dir=folder.parent)
    assert chat_model.config.model == folder


# ---- translation end to end ---------------------------------------------------------------------


def test_nllb_translation_sets_the_languages_and_keeps_order(models, monkeypatch):
    spy = GenerateSpy(monkeypatch, M2M100ForConditionalGeneration)
    tr = mt(models["nllb"], max_new_tokens=6, num_beams=2, on_truncation="keep", batch_size=2)
    tok = AutoTokenizer.from_pretrained(models["nllb"])
    eng, vie, ben = (tok.convert_tokens_to_ids(t) for t in ("eng_Latn", "vie_Latn", "ben_Beng"))
    texts = ["Hello world", "", "What is two plus two?", "   ", "Hello world", "Name three colours."]
    out = tr.translate(texts, "en", "vi")

    assert len(out) == len(texts)
    assert out[1] == "" and out[3] == "   "  # nothing to translate, nothing asked
    assert out[0] == out[4]
    assert tr.usage()["reused"] == 1 and tr.usage()["pieces"] == 3
    for kwargs, generated in spy.calls:
        assert kwargs["forced_bos_token_id"] == vie and kwargs["num_beams"] == 2
        assert (generated[:, 1] == vie).all()  # after the decoder start, the target language's token
        for ids, mask in zip(kwargs["input_ids"].tolist(), kwargs["attention_mask"].tolist()):
            row = [i for i, m in zip(ids, mask) if m]
            assert row[0] == eng and row[-1] == tok.eos_token_id
    assert sum(len(kwargs["input_ids"]) for kwargs, _ in spy.calls) == 3  # batches of 2: 2 + 1

    # the same texts one at a time, in another order: the same translations (order is kept,
    # batching and sorting by length change nothing), and they differ between inputs
    again = mt(models["nllb"], max_new_tokens=6, num_beams=2, on_truncation="keep", batch_size=1)
    single = {t: again.translate([t], "en", "vi")[0] for t in reversed(texts) if t.strip()}
    assert out == [single.get(t, t) for t in texts]
    assert len({single[t] for t in single}) > 1

    spy.calls.clear()
    tr.translate(["Hello world"], "en", "bn")
    assert spy.calls[0][0]["forced_bos_token_id"] == ben


def test_lines_are_translated_one_by_one_and_code_blocks_are_kept(models, monkeypatch):
    spy = GenerateSpy(monkeypatch, M2M100ForConditionalGeneration)
    tr = mt(models["nllb"], max_new_tokens=4, num_beams=1, on_truncation="keep")
    text = "Write a function.\n\n```python\ndef f(x):\n    return x\n```\n  Explain it.  "
    [out] = tr.translate([text], "en", "vi")
    assert isinstance(out, str)
    assert "\n\n```python\ndef f(x):\n    return x\n```\n  " in out and out.endswith("  ")
    assert out.count("\n") == text.count("\n")
    assert len(spy.calls[0][0]["input_ids"]) == 2  # the two prose lines, not the code

    whole = mt(models["nllb"], max_new_tokens=4, num_beams=1, on_truncation="keep", split_lines=False)
    spy.calls.clear()
    whole.translate([text], "en", "vi")
    assert len(spy.calls[0][0]["input_ids"]) == 1


def test_pieces_rebuild_the_text_and_only_prose_is_translated():
    from okapi_kit_transformers.mt_text import join, pieces

    texts = {"": [], "  \n ": [], "One.": ["One."], " a\r\nb \n\n": ["a", "b"],
             "x\n```\n```\ny\n   ```js\nz = 1\n   ```": ["x", "y"], "```\nnever closed\nstill code": []}
    for text, prose in texts.items():
        parts = pieces(text, split_lines=True)
        assert [p.text for p in parts if p.translate] == prose, text
        assert join(parts, {p: p for p in prose}) == text
        assert join(parts, {p: p.upper() for p in prose}) == "".join(
            p.text.upper() if p.translate else p.text for p in parts)
    assert [p.text for p in pieces(" a\nb ", split_lines=False) if p.translate] == ["a\nb"]


def test_a_broken_sentencepiece_tokenizer_is_a_user_error(models, tmp_path):
    folder = tmp_path / "m2m100_spm"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        (folder / name).write_bytes((Path(models["m2m100"]) / name).read_bytes())
    (folder / "tokenizer_config.json").write_text('{"tokenizer_class": "M2M100Tokenizer"}')
    (folder / "vocab.json").write_text('{"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}')
    (folder / "sentencepiece.bpe.model").write_bytes(b"")
    with pytest.raises(OkapiError, match="could not load") as info:  # an empty .model file
        mt(str(folder)).check("en", "vi")
    assert "m2m100_spm" in info.value.render()


def test_too_long_and_cut_off_translations_fail_with_the_reason(models):
    tr = mt(models["nllb"], max_input_tokens=10, max_new_tokens=3, num_beams=1)
    long_text, short = "This sentence is longer than ten bytes.", "Hi"
    out = tr.translate([long_text, short], "en", "vi")
    assert isinstance(out[0], Failed) and "max_input_tokens=10" in out[0].reason
    # the random model does not end within 3 tokens: cut off, so failed rather than kept short
    assert isinstance(out[1], Failed) and "max_new_tokens=3" in out[1].reason
    assert tr.usage()["too_long"] == 1 and tr.usage()["truncated"] == 1
    kept = mt(models["nllb"], max_new_tokens=3, num_beams=1, on_truncation="keep").translate([short], "en", "vi")
    assert isinstance(kept[0], str) and kept[0]


def test_translation_is_deterministic(models):
    texts = ["Good morning.", "Tell me a story about a cat.", "42"]
    first = mt(models["m2m100"], max_new_tokens=5, on_truncation="keep").translate(texts, "en", "de")
    second = mt(models["m2m100"], max_new_tokens=5, on_truncation="keep").translate(texts, "en", "de")
    assert first == second and len(first) == 3


def test_marian_multi_target_puts_the_target_token_before_the_text(models, monkeypatch):
    spy = GenerateSpy(monkeypatch, MarianMTModel)
    tok = AutoTokenizer.from_pretrained(models["marian_multi"])
    out = mt(models["marian_multi"], max_new_tokens=4, on_truncation="keep").translate(["Hello", "Bye"], "en", "bn")
    assert len(out) == 2
    kwargs = spy.calls[0][0]
    assert "forced_bos_token_id" not in kwargs
    assert set(kwargs["input_ids"][:, 0].tolist()) == {tok.convert_tokens_to_ids(">>ben<<")}

    spy.calls.clear()
    pair = AutoTokenizer.from_pretrained(models["marian_pair"])
    mt(models["marian_pair"], max_new_tokens=4, on_truncation="keep").translate(["Hello"], "en", "vi")
    assert spy.calls[0][0]["input_ids"][0].tolist() == [*pair("Hello", add_special_tokens=False)["input_ids"],
                                                        pair.eos_token_id]  # a single-pair model: no token


# ---- reward-model ranker ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def length_rm(tmp_path_factory) -> str:
    """A sequence classifier whose score grows with the share of non-EOS tokens, set by hand:
    attention is uniform (zero queries and keys), values copy the embeddings, the MLP adds
    nothing; every ordinary token embeds as e0 and EOS as e1; the score reads dimension 0."""
    tok = byte_level_tokenizer()
    hidden = 8
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=16, num_hidden_layers=1,
                      num_attention_heads=1, num_key_value_heads=1, max_position_embeddings=512,
                      num_labels=1, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id)
    model = LlamaForSequenceClassification(cfg)
    with torch.no_grad():
        emb = model.model.embed_tokens.weight
        emb.zero_()
        emb[:, 0] = 1.0
        emb[tok.eos_token_id] = torch.eye(hidden)[1]
        attn = model.model.layers[0].self_attn
        attn.q_proj.weight.zero_()
        attn.k_proj.weight.zero_()
        attn.v_proj.weight.copy_(torch.eye(hidden))
        attn.o_proj.weight.copy_(torch.eye(hidden))
        model.model.layers[0].mlp.down_proj.weight.zero_()
        model.score.weight.zero_()
        model.score.weight[0, 0] = 1.0
    return _save(model, tok, tmp_path_factory.mktemp("rm") / "rm")


def test_the_reward_model_is_found_from_the_config_folder(length_rm, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    folder = Path(length_rm)
    ranker = create("ranker", "reward_model", {"path": f"./{folder.name}", "device": "cpu"}, base_dir=folder.parent)
    assert ranker.config.path == folder
    [result] = ranker.rank([SampleSet(id="a", lang="vi", prompt="Q: ", responses=["x", "xxx"])])
    assert result.order == [1, 0] and result.details["model"] == str(folder)


def test_reward_model_ranker_orders_by_score(length_rm):
    ranker = create("ranker", "reward_model", {"path": length_rm, "device": "cpu", "batch_size": 3})
    items = [SampleSet(id="a", lang="vi", prompt="Q: ", responses=["xx", "xxxxxx", "x", "xxxx", "yy"]),
             SampleSet(id="b", lang="vi", prompt="Q: ", responses=[]),
             SampleSet(id="c", lang="bn", prompt="Another prompt: ", responses=["কী", "k"])]
    a, b, c = ranker.rank(items)
    assert isinstance(a, RankResult) and a.order == [1, 3, 0, 4, 2]  # longest first; the tie keeps order
    assert a.scores[0] == pytest.approx(a.scores[4])
    assert isinstance(b, Failed) and "no responses" in b.reason
    assert c.order == [0, 1]  # কী is 6 UTF-8 bytes, so 6 byte tokens
    # the scores are the reward source's (the shared token rule: prompt + response + EOS)
    source = RewardModelSource(RewardModelConfig(path=length_rm, device="cpu"))
    assert a.scores == pytest.approx(source.score(["Q: "] * 5, items[0].responses, ["vi"] * 5))
    assert ranker.usage() == {"scored": 7, "failed": 1}


# ---- the local chat model -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> str:
    tok = byte_level_tokenizer()
    cfg = tiny_config("llama", len(tok), hidden=32, layers=2, heads=4, max_positions=2048,
                      pad_id=tok.pad_token_id, bos_id=tok.bos_token_id, eos_id=tok.eos_token_id)
    cfg.initializer_range = 0.3  # replies that depend on the prompt
    torch.manual_seed(0)
    return _save(AutoModelForCausalLM.from_config(cfg), tok, tmp_path_factory.mktemp("llama") / "llama")


@pytest.fixture(scope="module")
def templated(tmp_path_factory, llama) -> str:
    """The same model, with a chat template that refuses system messages (as Gemma's does)."""
    out = tmp_path_factory.mktemp("templated") / "llama"
    tok = AutoTokenizer.from_pretrained(llama)
    tok.chat_template = ("{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system') }}"
                         "{% endif %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
                         "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    return _save(AutoModelForCausalLM.from_pretrained(llama), tok, out)


def chat(model: str, **options) -> TransformersChat:
    return TransformersChat(TransformersChatOptions(model=model, device="cpu", **options))


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_without_a_template_the_prompt_is_a_transcript(llama):
    messages = [{"role": "system", "content": "Be brief."}, *user("Xin chào")]
    [reply] = chat(llama, max_new_tokens=4).chat_many([ChatRequest.of("m", messages)])
    text = "system: Be brief.\n\nuser: Xin chào\n\nassistant:"
    assert transcript(messages) == text
    assert reply.input_tokens == len(text.encode())  # byte-level tokenizer, no BOS
    assert 1 <= reply.output_tokens <= 4


def test_the_chat_template_renders_the_prompt(templated):
    model = chat(templated, max_new_tokens=4)
    [plain, folded] = model.chat_many([ChatRequest.of("m", user("Hi")),
                                       ChatRequest.of("m", [{"role": "system", "content": "Be brief."},
                                                            *user("Hi")])])
    assert plain.input_tokens == len(b"<|user|>Hi\n<|assistant|>")
    # the template refuses a system message: it is put before the first user message
    assert folded.input_tokens == len(b"<|user|>Be brief.\n\nHi\n<|assistant|>")
    no_template = chat(templated, max_new_tokens=4, chat_template=False)
    assert no_template.chat_many([ChatRequest.of("m", user("Hi"))])[0].input_tokens == len(
        b"user: Hi\n\nassistant:")


def test_batched_greedy_replies_equal_one_by_one_replies(llama):
    prompts = ["hi", "a longer question here?", "x", "What is the capital of France?"]
    requests = [ChatRequest.of("m", user(p)) for p in prompts]
    model = chat(llama, max_new_tokens=6, batch_size=4)
    batched = model.chat_many(requests)
    single = [chat(llama, max_new_tokens=6, batch_size=1).chat_many([r])[0] for r in requests]
    assert [r.text for r in batched] == [r.text for r in single]
    assert len({r.text for r in batched}) > 1
    stats = model.stats.summary()
    assert stats["sent"] == 4 and stats["failed"] == 0
    assert stats["tokens"][f"transformers/{llama}"] == {"input": sum(r.input_tokens for r in batched),
                                                        "output": sum(r.output_tokens for r in batched)}


def test_sampling_is_seeded(llama):
    requests = [ChatRequest.of("m", user("Tell me something.")) for _ in range(2)]

    def texts(seed: int) -> list[str]:
        return [r.text for r in chat(llama, max_new_tokens=8, temperature=1.0, seed=seed).chat_many(requests)]

    assert texts(1) == texts(1)
    assert texts(1) != texts(2)
    assert texts(1)[0] != texts(1)[1]  # two samples of one batch differ


def test_request_params_override_the_options_and_bad_requests_fail(llama):
    model = chat(llama, max_new_tokens=8)
    long = "word " * 420  # 2100 tokens: more than the model's 2048 positions
    replies = model.chat_many([ChatRequest.of("m", user("Hi"), max_tokens=2),
                               ChatRequest.of("m", []),
                               ChatRequest.of("m", user(long)),
                               ChatRequest.of("m", user("Hi"))])
    assert isinstance(replies[0], ChatReply) and replies[0].output_tokens <= 2
    assert isinstance(replies[1], Failed) and "no prompt" in replies[1].reason
    assert isinstance(replies[2], Failed) and "2048 positions" in replies[2].reason
    assert isinstance(replies[3], ChatReply) and replies[3].text.startswith(replies[0].text)
    assert model.stats.summary()["failed"] == 2


# ---- the generic components on the local chat model ---------------------------------------------


def test_transformers_translator_end_to_end(llama):
    tr = create("translator", "transformers", {"model": llama, "device": "cpu", "max_new_tokens": 8})
    tr.check("en", "vi")
    out = tr.translate(["Hello there.", "", "Hello there."], "en", "vi")
    assert len(out) == 3 and out[1] == ""
    assert out[0] == out[2] and isinstance(out[0], str | Failed)
    usage = tr.usage()
    assert usage["sent"] == 1  # a repeated text is asked once
    assert usage["tokens"][f"transformers/{llama}"]["output"] <= 8


def test_transformers_judge_end_to_end(llama):
    judge = create("ranker", "transformers", {"model": llama, "device": "cpu", "max_new_tokens": 6,
                                              "mode": "two_turn", "seed": 3})
    items = [SampleSet(id="p1", lang="vi", prompt="Kể một câu chuyện.", responses=["Một", "Hai"]),
             SampleSet(id="p2", lang="vi", prompt="Chào", responses=["Xin chào"])]
    first, second = judge.rank(items)
    # a random model writes no JSON verdict: translate turn, scoring turn, one repair, then a reason
    assert isinstance(first, Failed) and "unparsable" in first.reason
    assert second == [0]
    usage = judge.usage()
    assert usage["sent"] == 3 and usage["repair_requests"] == 1 and usage["unparsable"] == 1


def test_transformers_generator_end_to_end(llama):
    gen = create("generator", "transformers", {"model": llama, "device": "cpu", "max_new_tokens": 6,
                                               "max_requests": 2, "requests_per_round": 2})
    assert gen.config.temperature == 1.0  # Self-Instruct samples
    seeds = [Instruction(id=f"s{i}", instruction=f"Name {i} animals.", input="", output="Cat.") for i in range(3)]
    with pytest.raises(OkapiError, match="kept 0 of the 2 instructions asked for after 2 requests"):
        gen.generate(seeds, 2, "en")
    usage = gen.usage()
    assert usage["sent"] == 2 and usage["generation_requests"] == 2


def test_local_components_are_registered_with_merged_options(llama):
    reg = Registry.from_plugins(build_plugin_manager())
    names = {(e.kind, e.name): e.plugin for e in reg.entries()}
    for key in [("translator", "transformers_mt"), ("translator", "transformers"), ("ranker", "transformers"),
                ("ranker", "reward_model"), ("generator", "transformers")]:
        assert names[key] == "transformers", key
    for kind, bad, message in [("translator", {"protect": ["emoji"]}, "protect"),
                               ("ranker", {"mode": "pairwise"}, "mode"),
                               ("generator", {"similarity_threshold": 2}, "similarity_threshold"),
                               ("ranker", {"temperature": -1}, "temperature"),
                               ("translator", {"api_key": "x"}, "api_key")]:
        with pytest.raises(OkapiError, match=message):
            create(kind, "transformers", {"model": llama, **bad})
    with pytest.raises(OkapiError, match=re.escape("model")):
        create("ranker", "transformers", {})
