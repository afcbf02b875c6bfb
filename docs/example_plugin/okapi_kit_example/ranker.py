"""A toy ranker: the response whose length is closest to the reference's comes first."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from okapi_kit import ComponentConfig, OkapiError, Ranker, SampleSet


class LengthRatioConfig(ComponentConfig):
    unit: Literal["chars", "words"] = Field("chars", description="how length is counted")


class LengthRatio(Ranker):
    """Ranks responses by how close their length is to the reference answer's (a toy)."""

    name = "length_ratio"
    Config = LengthRatioConfig

    def length(self, text: str) -> int:
        return len(text.split()) if self.config.unit == "words" else len(text)

    def scores(self, item: SampleSet) -> list[float]:
        """0 for a response exactly as long as the reference, more negative the further off."""
        if not item.reference:
            raise OkapiError(f"sample set {item.id!r} has no reference answer",
                             hint="length_ratio needs references; pick another ranker")
        ref = self.length(item.reference) + 1
        return [-abs(math.log((self.length(r) + 1) / ref)) for r in item.responses]

    def rank(self, items: Sequence[SampleSet]) -> list[list[int]]:
        out = []
        for item in items:
            s = self.scores(item)
            out.append(sorted(range(len(s)), key=lambda i: (-s[i], i)))  # ties keep sample order
        return out
