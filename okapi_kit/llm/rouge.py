"""ROUGE-L (longest common subsequence of tokens) and an index that finds the most similar text.

Tokens are runs of letters, marks and digits, lowercased: whitespace and punctuation separate
them (marks are kept so that Devanagari or Bengali words stay whole). Han, kana and similar
characters, written without spaces, are one token each.
"""

from __future__ import annotations

import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass


def _one_char_token(ch: str) -> bool:
    code = ord(ch)
    return (0x3040 <= code <= 0x30FF or 0x3400 <= code <= 0x4DBF or 0x4E00 <= code <= 0x9FFF
            or 0xF900 <= code <= 0xFAFF or 0x20000 <= code <= 0x2FFFF)


def tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    word: list[str] = []
    for ch in text.lower():
        if _one_char_token(ch):
            if word:
                tokens.append("".join(word))
                word = []
            tokens.append(ch)
        elif unicodedata.category(ch)[0] in "LMN":
            word.append(ch)
        elif word:
            tokens.append("".join(word))
            word = []
    if word:
        tokens.append("".join(word))
    return tokens


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence (dynamic programming, one row kept)."""
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


@dataclass(frozen=True)
class RougeL:
    precision: float
    recall: float
    f: float


def rouge_l(candidate: str, reference: str) -> RougeL:
    """ROUGE-L of ``candidate`` against ``reference``: P = LCS/|candidate|, R = LCS/|reference|,
    F = 2PR/(P+R); all zero when either has no token."""
    return _score(tokenize(candidate), tokenize(reference))


def _score(cand: list[str], ref: list[str]) -> RougeL:
    lcs = lcs_length(cand, ref) if cand and ref else 0
    if lcs == 0:
        return RougeL(0.0, 0.0, 0.0)
    p, r = lcs / len(cand), lcs / len(ref)
    return RougeL(p, r, 2 * p * r / (p + r))


class RougeIndex:
    """Texts kept so far, for "how close is this new text to any of them" (Self-Instruct's filter).

    The shared tokens (as a multiset) bound the LCS from above, so only texts whose bound can
    beat the best score so far are compared in full; an inverted index finds the shared tokens.
    """

    def __init__(self) -> None:
        self.texts: list[list[str]] = []
        self._postings: dict[str, list[tuple[int, int]]] = defaultdict(list)

    def __len__(self) -> int:
        return len(self.texts)

    def add(self, text: str) -> None:
        tokens = tokenize(text)
        doc = len(self.texts)
        self.texts.append(tokens)
        for tok, n in Counter(tokens).items():
            self._postings[tok].append((doc, n))

    def most_similar(self, text: str) -> tuple[float, int | None]:
        """The highest ROUGE-L F of ``text`` against a kept text, and that text's position."""
        cand = tokenize(text)
        shared: dict[int, int] = defaultdict(int)
        for tok, n in Counter(cand).items():
            for doc, m in self._postings.get(tok, ()):
                shared[doc] += min(n, m)
        bounds = sorted(((2 * s / (len(cand) + len(self.texts[d])), d) for d, s in shared.items()),
                        key=lambda x: (-x[0], x[1]))
        best, where = 0.0, None
        for bound, doc in bounds:
            if bound <= best:
                break  # no later text can do better
            f = _score(cand, self.texts[doc]).f
            if f > best:
                best, where = f, doc
        return best, where
