"""Which language an lm-eval task is in, read from its name.

lm-eval names its multilingual tasks after the language in one of three ways:
an ISO 639-1 code (``xcopa_vi``, ``m_mmlu_vi``, ``global_mmlu_full_vi``), a FLORES-200
code (``belebele_vie_Latn``) or the English name (``include_base_44_vietnamese``). The
name is cut at ``_`` and ``-`` and each piece is looked up among okapi-kit's languages
(``okapi_kit.languages``); the task's language is the one language found. A name with
none (``hellaswag``) or with two (``wmt16_de_en``, ``..._vietnamese_few_shot_en``) has no
derivable language: the ``task_languages`` option must name it.

The language's piece is also cut from the name to give the task's name across
languages (``global_mmlu_full_vi`` -> ``global_mmlu_full``), what a leaderboard row shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from okapi_kit.languages import LANGUAGES

# ISO 639-3 codes as FLORES-200 spells them (with its macrolanguage choices: arb, npi, zho).
ISO3 = {
    "eng": "en", "rus": "ru", "deu": "de", "zho": "zh", "fra": "fr", "spa": "es", "ita": "it",
    "nld": "nl", "vie": "vi", "ind": "id", "arb": "ar", "ara": "ar", "hun": "hu", "ron": "ro",
    "dan": "da", "slk": "sk", "ukr": "uk", "cat": "ca", "srp": "sr", "hrv": "hr", "hin": "hi",
    "ben": "bn", "tam": "ta", "npi": "ne", "nep": "ne", "mal": "ml", "mar": "mr", "tel": "te",
    "kan": "kn", "eus": "eu", "guj": "gu", "hye": "hy", "por": "pt", "isl": "is", "nob": "nb", "swe": "sv",
}
# English names, one word each ("Norwegian Bokmal" is reached by its codes only).
NAMES = {lang.name.lower(): code for code, lang in LANGUAGES.items() if " " not in lang.name}

_SCRIPT = re.compile(r"[A-Z][a-z]{3}")  # Latn, Deva, Hans ...


@dataclass(frozen=True)
class Found:
    """The languages found in a task name and the name without the language's pieces."""

    languages: tuple[str, ...]
    stem: str

    @property
    def language(self) -> str | None:
        return self.languages[0] if len(self.languages) == 1 else None


def find_languages(task_name: str) -> Found:
    """Every okapi-kit language a task name spells, in order, and the name without them."""
    pieces = re.split(r"([_\-])", task_name)  # keep the separators to rebuild the stem
    words = pieces[0::2]
    found: list[str] = []
    drop: set[int] = set()
    i = 0
    while i < len(words):
        word = words[i]
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if len(word) == 3 and word.lower() in ISO3 and _SCRIPT.fullmatch(nxt):
            found.append(ISO3[word.lower()])
            drop |= {i, i + 1}
            i += 2
            continue
        code = word if word in LANGUAGES else NAMES.get(word.lower())
        if code:
            found.append(code)
            drop.add(i)
        i += 1
    kept = [w for j, w in enumerate(words) if j not in drop]
    return Found(tuple(dict.fromkeys(found)), "_".join(w for w in kept if w) or task_name)


def derive_language(task_name: str) -> str | None:
    """The one okapi-kit language ``task_name`` spells, or None (none or several)."""
    return find_languages(task_name).language
