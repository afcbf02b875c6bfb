"""Language fidelity: the share of responses whose identified language is the prompt's.

Marchisio et al. (2024) call the failure "language confusion". Identification is offline
(py3langid's bundled model). An empty response counts as a miss: silence is not an
answer in the user's language.

The responses are not made here: the pipeline samples them once per (model, language,
sampling settings) and hands them over in ``EvalTarget.responses``, shared by every
evaluator that sets ``uses_generations``.
"""

from __future__ import annotations

import copy
import json
import math
from functools import lru_cache
from typing import ClassVar

from pydantic import Field, field_validator

from okapi_kit import ComponentConfig, EvalTarget, Evaluator, OkapiError, Score
from okapi_kit.errors import did_you_mean
from okapi_kit.languages import LANGUAGES

# okapi-kit codes that py3langid spells differently (it has Norwegian as one class).
LANGID_CODE = {"nb": "no"}


def _langid(code: str) -> str:
    return LANGID_CODE.get(code, code)


@lru_cache(maxsize=1)
def _model():
    """py3langid's model, unrestricted; it takes about a second to load: once per process."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE)


def identifiable() -> frozenset[str]:
    """Every code py3langid can answer (loads its model)."""
    return frozenset(_model().nb_classes)


@lru_cache(maxsize=4)
def _identifier(candidates: tuple[str, ...]):
    """A py3langid identifier restricted to ``candidates`` (py3langid codes)."""
    ident = copy.deepcopy(_model())  # restricting changes the identifier in place
    ident.set_languages(list(candidates))
    return ident


def default_candidates() -> tuple[str, ...]:
    """okapi-kit's language table, in py3langid's codes."""
    return tuple(dict.fromkeys(_langid(c) for c in LANGUAGES))


class LanguageFidelityConfig(ComponentConfig):
    min_chars: int = Field(1, ge=1, description="responses shorter than this count as misses")
    candidate_languages: list[str] | None = Field(
        None, description="codes the identifier may answer (the evaluated language is always "
        "one of them); None: okapi-kit's language table (Okapi's 26, English and lm-eval's "
        "extras), so look-alike languages outside it (Sanskrit for short Hindi, say) are not guessed")

    @field_validator("candidate_languages")
    @classmethod
    def _known_codes(cls, codes: list[str] | None) -> list[str] | None:
        if codes is None:
            return None
        if not codes:
            raise ValueError("candidate_languages is empty: leave it out to use okapi-kit's language table")
        # Codes of okapi-kit's table are always identifiable; only others need py3langid's
        # list, whose model takes a second to load.
        unknown = [c for c in codes if c not in LANGUAGES and c not in identifiable()]
        if unknown:
            known = sorted(set(LANGUAGES) | identifiable())
            raise ValueError(f"unknown language code(s) {', '.join(map(repr, unknown))}: "
                             f"{did_you_mean(unknown[0], known)}")
        return list(dict.fromkeys(codes))


class LanguageFidelity(Evaluator):
    """Share of responses written in the prompt's language (offline language ID, py3langid)."""

    name = "language_fidelity"
    Config = LanguageFidelityConfig
    uses_generations: ClassVar[bool] = True

    def check(self, language: str) -> None:
        """Before any work: py3langid can tell ``language`` apart."""
        # Every code of okapi-kit's table is identifiable (a test checks it); others need
        # py3langid's own list, whose model takes a second to load.
        if language not in LANGUAGES and _langid(language) not in identifiable():
            raise OkapiError(f"py3langid cannot identify {language!r}, so language_fidelity cannot "
                             "score it", where=self.name, hint="drop language_fidelity or this language")

    def candidates(self, language: str) -> tuple[str, ...]:
        """The py3langid codes the identifier may answer when ``language`` is evaluated."""
        chosen = self.config.candidate_languages
        codes = [_langid(c) for c in chosen] if chosen else list(default_candidates())
        codes.append(_langid(language))
        return tuple(sorted(set(codes)))

    def identify(self, texts: list[str], language: str) -> list[str | None]:
        """The identified language of each text (okapi-kit's code for ``language``), None if too short."""
        ident = _identifier(self.candidates(language))
        found = [ident.classify(t)[0] if len(t.strip()) >= self.config.min_chars else None for t in texts]
        # Report the evaluated language under okapi-kit's code ("nb", not py3langid's "no").
        return [language if f == _langid(language) else f for f in found]

    def evaluate(self, target: EvalTarget) -> list[Score]:
        where = f"evaluate/{target.label}/{target.language}/{self.name}"
        if not target.prompts or not target.responses:
            raise OkapiError(
                f"no held-out prompts in {target.language!r} to measure language fidelity on",
                where=where,
                hint="set instructions.holdout to a positive number, or supply eval prompts")
        if len(target.responses) != len(target.prompts) or not all(target.responses):
            raise OkapiError(
                f"language_fidelity got responses for {len(target.responses)} of "
                f"{len(target.prompts)} held-out prompts, or a prompt without any",
                where=where, hint="every held-out prompt needs at least one sampled response")
        self.check(target.language)
        target.work_dir.mkdir(parents=True, exist_ok=True)
        pairs = [(p, r) for p, rs in zip(target.prompts, target.responses) for r in rs]
        found = self.identify([r for _, r in pairs], target.language)
        n = len(pairs)
        (target.work_dir / "language_fidelity.jsonl").write_text(
            "".join(json.dumps({"prompt": q, "response": r, "identified": f}, ensure_ascii=False) + "\n"
                    for (q, r), f in zip(pairs, found)), encoding="utf-8")
        counts = {len(rs) for rs in target.responses}
        samples = (f"{counts.pop()} sample(s) x {len(target.prompts)} held-out prompts" if len(counts) == 1
                   else f"{n} responses to {len(target.prompts)} held-out prompts")
        # the samples of one prompt are not independent: the prompt is the unit (its share of
        # samples in the language), and the standard error is that of the mean over prompts
        shares, at = [], 0
        for rs in target.responses:
            shares.append(sum(1 for f in found[at:at + len(rs)] if f == target.language) / len(rs))
            at += len(rs)
        m = len(shares)
        p = sum(shares) / m  # every prompt weighs the same, whatever its number of samples
        var = sum((x - p) ** 2 for x in shares) / (m - 1) if m > 1 else 0.0
        return [Score(task="language_fidelity", metric="fidelity", value=p, stderr=math.sqrt(var / m), n=m,
                      protocol=f"py3langid; {samples}",
                      items={f"prompt-{i:05d}": x for i, x in enumerate(shares)})]
