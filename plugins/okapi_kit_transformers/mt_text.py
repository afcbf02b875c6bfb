"""Cutting a text into the pieces a sentence-level MT model should see, and putting it back.

NLLB, M2M100 and Marian were trained on single sentences or short paragraphs: a whole
multi-paragraph instruction given at once is often cut short or half translated. With
``split_lines`` each line is translated on its own and the text is rebuilt with its own
line breaks and indentation; lines inside fenced code blocks (```) are kept as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_EDGES = re.compile(r"^(\s*)(.*?)(\s*)$", re.DOTALL)


@dataclass(frozen=True)
class Piece:
    text: str
    translate: bool  # False: kept verbatim (whitespace, code)


def _edges(chunk: str) -> list[Piece]:
    lead, core, trail = _EDGES.match(chunk).groups()
    return [p for p in (Piece(lead, False), Piece(core, True), Piece(trail, False)) if p.text]


def pieces(text: str, *, split_lines: bool) -> list[Piece]:
    """``text`` as pieces whose texts join back into it; only ``translate`` pieces go to the model."""
    if not split_lines:
        return _edges(text)
    out: list[Piece] = []
    in_code = False
    for line in text.splitlines(keepends=True):
        fence = line.lstrip().startswith("```")
        if fence or in_code:
            out.append(Piece(line, False))
            in_code = in_code != fence  # a fence line opens or closes a block
        else:
            out.extend(_edges(line))
    return out


def join(parts: list[Piece], translations: dict[str, str]) -> str:
    """The text rebuilt with each translated piece replaced by its translation."""
    return "".join(translations[p.text] if p.translate else p.text for p in parts)
