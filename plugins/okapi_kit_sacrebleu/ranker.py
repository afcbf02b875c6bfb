"""Reference ranker: orders sampled responses by chrF against the reference answer."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from okapi_kit import ComponentConfig, OkapiError, Ranker, SampleSet


class ReferenceChrFConfig(ComponentConfig):
    char_order: int = Field(6, ge=1, description="character n-gram order (chrF default 6)")
    word_order: int = Field(0, ge=0, description="word n-gram order (2 gives chrF++)")
    beta: float = Field(2.0, gt=0, description="recall weight")


class ReferenceChrF(Ranker):
    """Ranks responses by chrF against the reference answer (sacrebleu); ties keep sample order."""

    name = "reference_chrf"
    Config = ReferenceChrFConfig

    def scores(self, item: SampleSet) -> list[float]:
        from sacrebleu.metrics import CHRF  # chrF works on characters: fine for every script

        if not item.reference:
            raise OkapiError(f"sample set {item.id!r} has no reference answer to rank against",
                             hint="use a ranker that needs no reference (a judge or a reward model)")
        metric = CHRF(char_order=self.config.char_order, word_order=self.config.word_order,
                      beta=self.config.beta)
        return [metric.sentence_score(r, [item.reference]).score for r in item.responses]

    def rank(self, items: Sequence[SampleSet]) -> list[list[int]]:
        out = []
        for item in items:
            s = self.scores(item)
            out.append(sorted(range(len(s)), key=lambda i: (-s[i], i)))
        return out
