"""Spans a translation must keep as they are: code, URLs, tags, placeholders, numbers.

They are found in the source text before it is translated (so the prompt can name them) and
looked for in the translation after. Numbers are compared by their digits only, so that a
translation may write 1,000.5 as 1.000,5 or use its own script's digits.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Literal

SpanKind = Literal["code", "url", "tag", "placeholder", "number"]
SPAN_KINDS: tuple[SpanKind, ...] = ("code", "url", "tag", "placeholder", "number")

# Earlier patterns win where spans overlap: a number inside a URL or a code block is part of it.
_PATTERNS: list[tuple[SpanKind, re.Pattern[str]]] = [
    ("code", re.compile(r"```.*?```|~~~.*?~~~", re.S)),
    ("code", re.compile(r"`[^`\n]+`")),
    ("url", re.compile(r"\b(?:https?|ftp)://[^\s<>\"'`]+|\bwww\.[^\s<>\"'`]+\.[^\s<>\"'`]+|"
                       r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    ("tag", re.compile(r"</?[A-Za-z][\w:-]*(?:\s+[\w:-]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'<>=`]+))?)*\s*/?>")),
    ("placeholder", re.compile(
        r"\{\{.*?\}\}"                                    # {{ jinja }}
        r"|\{[A-Za-z0-9_.\[\]]*(?:![rsa])?(?::[^{}\s]*)?\}"  # {name} {0} {} {x:.2f}
        r"|%\([A-Za-z_]\w*\)[-+0# ]*\d*(?:\.\d+)?[sdifrxXoeEgGcu]"  # %(name)s
        r"|(?<![%\w])%[-+0#]*\d*(?:\.\d+)?[sdifrxXoeEgGcu](?!\w)"   # %s %5.2f (not "50% of")
        r"|\$\{[A-Za-z_]\w*\}|\$[A-Za-z_]\w*"             # ${VAR} $VAR
        r"|\[\[[^\[\]\n]+\]\]")),                          # [[slot]]
]
# a number is not part of a word (the 4 of GPT4); \d takes every script's digits
_NUMBER = re.compile(r"(?<![^\W\d_])\d+(?:[.,:]\d+)*")
_PATTERNS.append(("number", _NUMBER))
_TRAILING = ".,;:!?)]}'\""  # sentence punctuation after a URL is not part of it


@dataclass(frozen=True)
class Span:
    kind: SpanKind
    text: str


def find_spans(text: str, kinds: tuple[str, ...] | list[str] = SPAN_KINDS) -> list[Span]:
    """The protected spans of ``text`` in order of appearance (non-overlapping)."""
    masked = text  # what one pattern took is blanked out before the next looks
    found: list[tuple[int, Span]] = []
    for kind, pattern in _PATTERNS:
        if kind not in kinds:
            continue
        for m in list(pattern.finditer(masked)):
            start, end = m.span()
            value = m.group()
            if kind == "url":
                value = value.rstrip(_TRAILING)
                end = start + len(value)
            if kind == "tag" and "=" not in value and re.search(r"\s[\w:-]", value):
                continue  # "a<b and c>d" is arithmetic: a tag with words after its name has attributes
            if value:
                found.append((start, Span(kind, value)))
                masked = masked[:start] + "\0" * (end - start) + masked[end:]
    return [span for _, span in sorted(found, key=lambda x: x[0])]


def _digits(number: str) -> str:
    return "".join(str(unicodedata.digit(ch)) for ch in number if unicodedata.digit(ch, None) is not None)


def missing_spans(source_spans: list[Span], translation: str) -> list[Span]:
    """The source's spans not found in the translation (each as often as in the source)."""
    missing: list[Span] = []
    numbers = Counter(_digits(m.group()) for m in _NUMBER.finditer(translation))
    counts = Counter(source_spans)
    for span, wanted in counts.items():
        if span.kind == "number":
            have = numbers[_digits(span.text)]
        else:
            have = translation.count(span.text)
        missing += [span] * max(0, wanted - have)
    return missing
