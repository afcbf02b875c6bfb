"""Language codes, names, scripts and Okapi resource groups (Okapi paper, Table 1)."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import OkapiError, did_you_mean


@dataclass(frozen=True)
class Language:
    code: str
    name: str
    script: str
    group: str  # H, M, L (Okapi resource groups); "-" for lm-eval extras outside Okapi's 26
    cc_share: float | None = None  # share of CommonCrawl in percent, as in the Okapi paper

    @property
    def in_okapi(self) -> bool:
        return self.group != "-"


_TABLE = [
    ("en", "English", "Latin", "H", 45.88),
    ("ru", "Russian", "Cyrillic", "H", 5.97),
    ("de", "German", "Latin", "H", 5.88),
    ("zh", "Chinese", "Han", "H", 4.87),
    ("fr", "French", "Latin", "H", 4.73),
    ("es", "Spanish", "Latin", "H", 4.47),
    ("it", "Italian", "Latin", "H", 2.57),
    ("nl", "Dutch", "Latin", "H", 2.06),
    ("vi", "Vietnamese", "Latin", "H", 1.03),
    ("id", "Indonesian", "Latin", "M", 0.80),
    ("ar", "Arabic", "Arabic", "M", 0.67),
    ("hu", "Hungarian", "Latin", "M", 0.61),
    ("ro", "Romanian", "Latin", "M", 0.56),
    ("da", "Danish", "Latin", "M", 0.43),
    ("sk", "Slovak", "Latin", "M", 0.38),
    ("uk", "Ukrainian", "Cyrillic", "M", 0.33),
    ("ca", "Catalan", "Latin", "M", 0.23),
    ("sr", "Serbian", "Cyrillic", "M", 0.22),
    ("hr", "Croatian", "Latin", "M", 0.20),
    ("hi", "Hindi", "Devanagari", "M", 0.16),
    ("bn", "Bengali", "Bengali", "L", 0.093),
    ("ta", "Tamil", "Tamil", "L", 0.045),
    ("ne", "Nepali", "Devanagari", "L", 0.030),
    ("ml", "Malayalam", "Malayalam", "L", 0.022),
    ("mr", "Marathi", "Devanagari", "L", 0.021),
    ("te", "Telugu", "Telugu", "L", 0.018),
    ("kn", "Kannada", "Kannada", "L", 0.012),
    # lm-eval's okapi tasks cover these too (is, nb only for MMLU)
    ("eu", "Basque", "Latin", "-", None),
    ("gu", "Gujarati", "Gujarati", "-", None),
    ("hy", "Armenian", "Armenian", "-", None),
    ("pt", "Portuguese", "Latin", "-", None),
    ("is", "Icelandic", "Latin", "-", None),
    ("nb", "Norwegian Bokmal", "Latin", "-", None),
    ("sv", "Swedish", "Latin", "-", None),  # not in Okapi's Table 1: no group, no CC share
]

LANGUAGES: dict[str, Language] = {row[0]: Language(*row) for row in _TABLE}
OKAPI_LANGUAGES: tuple[str, ...] = tuple(c for c, lang in LANGUAGES.items() if lang.in_okapi and c != "en")


def get_language(code: str, *, where: str | None = None) -> Language:
    """The language for ``code``; an unknown code is an OkapiError with suggestions."""
    lang = LANGUAGES.get(code)
    if lang is None:
        by_name = {lang.name.lower(): c for c, lang in LANGUAGES.items()}
        if code.lower() in by_name:
            hint = f"use the code {by_name[code.lower()]!r} for {code}"
        else:
            hint = did_you_mean(code, LANGUAGES)
        raise OkapiError(f"unknown language code {code!r}", where=where, hint=hint)
    return lang
