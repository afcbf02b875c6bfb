"""Language codes of the seq2seq MT families (NLLB, M2M100, Marian), derived from okapi-kit's table.

okapi-kit names a language by its ISO 639-1 code and its script (``okapi_kit.languages``);
each MT family names it its own way:

- NLLB: FLORES-200 codes, ISO 639-3 + ISO 15924 script (``vie_Latn``, ``hin_Deva``);
- M2M100: ISO 639-1 codes (``vi``), one token ``__vi__`` each;
- Marian (OPUS-MT): single-pair models need no code; multi-target ones expect a
  ``>>xxx<<`` token before the source text, usually ISO 639-3 (``>>vie<<``), sometimes with a
  script (``>>srp_Cyrl<<``) or a macrolanguage (``>>cmn_Hans<<``): which one is read from the
  model's vocabulary.

No torch or transformers here: ``validate`` checks languages with these tables alone.
"""

from __future__ import annotations

from typing import Literal

from okapi_kit import OkapiError
from okapi_kit.languages import LANGUAGES

Family = Literal["nllb", "m2m100", "marian"]
FAMILIES: tuple[str, ...] = ("nllb", "m2m100", "marian")

# ISO 15924 codes of the scripts named in okapi-kit's table. Chinese is written "Han" there;
# Okapi's data (like NLLB's default) is Simplified Chinese, hence Hans.
SCRIPT_CODES = {
    "Latin": "Latn", "Cyrillic": "Cyrl", "Han": "Hans", "Arabic": "Arab", "Devanagari": "Deva",
    "Bengali": "Beng", "Tamil": "Taml", "Malayalam": "Mlym", "Telugu": "Telu", "Kannada": "Knda",
    "Gujarati": "Gujr", "Armenian": "Armn",
}

# ISO 639-3 codes as FLORES-200 uses them: individual languages where FLORES picked one
# (Modern Standard Arabic arb, not the macrolanguage ara; Nepali npi, not nep).
ISO639_3 = {
    "en": "eng", "ru": "rus", "de": "deu", "zh": "zho", "fr": "fra", "es": "spa", "it": "ita",
    "nl": "nld", "vi": "vie", "id": "ind", "ar": "arb", "hu": "hun", "ro": "ron", "da": "dan",
    "sk": "slk", "uk": "ukr", "ca": "cat", "sr": "srp", "hr": "hrv", "hi": "hin", "bn": "ben",
    "ta": "tam", "ne": "npi", "ml": "mal", "mr": "mar", "te": "tel", "kn": "kan", "eu": "eus",
    "gu": "guj", "hy": "hye", "pt": "por", "is": "isl", "nb": "nob", "sv": "swe",
}

# Other names OPUS-MT models use for the same language (macrolanguages, Mandarin).
MARIAN_ALIASES = {"ar": ("ara",), "ne": ("nep",), "zh": ("cmn_Hans", "cmn", "zho_Hans"), "nb": ("nor",)}

# The 100 languages of M2M100 (Fan et al. 2020); Telugu and Basque are not among them.
M2M100_LANGUAGES = frozenset(
    "af am ar ast az ba be bg bn br bs ca ceb cs cy da de el en es et fa ff fi fr fy ga gd gl gu "
    "ha he hi hr ht hu hy id ig ilo is it ja jv ka kk km kn ko lb lg ln lo lt lv mg mk ml mn mr "
    "ms my ne nl no ns oc or pa pl ps pt ro ru sd si sk sl so sq sr ss su sv sw ta th tl tn tr uk "
    "ur uz vi wo xh yi yo zh zu".split())
M2M100_RENAMED = {"nb": "no"}  # M2M100 has Norwegian as a whole


def _unknown(lang: str, family: str) -> OkapiError:
    return OkapiError(f"{family} cannot name the language {lang!r}: it is not in okapi-kit's language table",
                      where="transformers_mt",
                      hint=f"give the model's own code for it under the translator option codes, "
                      f"e.g. codes: {{{lang}: ...}}")


def nllb_code(lang: str) -> str:
    """FLORES-200 code of an okapi-kit language: ``vi`` -> ``vie_Latn``."""
    info = LANGUAGES.get(lang)
    if info is None or lang not in ISO639_3 or info.script not in SCRIPT_CODES:
        raise _unknown(lang, "NLLB")
    return f"{ISO639_3[lang]}_{SCRIPT_CODES[info.script]}"


def m2m100_code(lang: str) -> str:
    """M2M100's code of an okapi-kit language (ISO 639-1: ``vi``); OkapiError if M2M100 lacks it."""
    if lang not in LANGUAGES:
        raise _unknown(lang, "M2M100")
    code = M2M100_RENAMED.get(lang, lang)
    if code not in M2M100_LANGUAGES:
        raise OkapiError(f"M2M100 does not cover {LANGUAGES[lang].name} ({lang!r})", where="transformers_mt",
                         hint="use an NLLB model (family: nllb), which covers every okapi-kit language")
    return code


def marian_candidates(lang: str) -> list[str]:
    """Codes an OPUS-MT model may use for ``lang``, most specific first (``srp_Cyrl``, ``srp``, ``sr``)."""
    if lang not in LANGUAGES or lang not in ISO639_3:
        raise _unknown(lang, "Marian")
    script = SCRIPT_CODES.get(LANGUAGES[lang].script)
    iso3 = ISO639_3[lang]
    out = [f"{iso3}_{script}" if script else "", iso3, *MARIAN_ALIASES.get(lang, ()), lang]
    return list(dict.fromkeys(c for c in out if c))


def language_token(family: str, code: str) -> str:
    """The vocabulary token that stands for a family's language code."""
    if family == "m2m100":
        return f"__{code}__"
    if family == "marian":
        return f">>{code}<<"
    return code  # NLLB's tokens are the FLORES codes themselves


def model_code(family: str, lang: str, overrides: dict[str, str] | None = None) -> str:
    """The family's code for ``lang`` (an override from the options first). For Marian, the
    most specific candidate: the model's vocabulary decides between them at load time."""
    if overrides and lang in overrides:
        return overrides[lang]
    if family == "nllb":
        return nllb_code(lang)
    if family == "m2m100":
        return m2m100_code(lang)
    if family == "marian":
        return marian_candidates(lang)[0]
    raise OkapiError(f"unknown MT model family {family!r}", where="transformers_mt",
                     hint=f"use one of {', '.join(FAMILIES)}")
