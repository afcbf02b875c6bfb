"""Language fidelity: the share of responses whose identified language is the prompt's.

Marchisio et al. (2024) call the failure "language confusion". Identification is offline
(py3langid's bundled model). An empty response counts as a miss: silence is not an
answer in the user's language.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from functools import lru_cache

from pydantic import Field

from okapi_kit import ComponentConfig, EvalTarget, Evaluator, OkapiError, Score


@lru_cache(maxsize=4)
def _identifier(candidates: tuple[str, ...]):
    """py3langid's model takes about half a second to load: once per candidate set."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    from okapi_kit.languages import LANGUAGES

    ident = LanguageIdentifier.from_model_file(MODEL_FILE)
    ident.set_languages(list(candidates) or [c for c in LANGUAGES if c in ident.nb_classes])
    return ident


class LanguageFidelityConfig(ComponentConfig):
    samples_per_prompt: int = Field(4, ge=1, description="responses drawn per held-out prompt")
    min_chars: int = Field(1, ge=1, description="responses shorter than this count as misses")
    candidate_languages: list[str] | None = Field(
        None, description="codes the identifier may answer; None: okapi-kit's language table "
        "(Okapi's 26, English and lm-eval's extras), so look-alike languages outside it "
        "(Sanskrit for short Hindi, say) are not guessed")


class LanguageFidelity(Evaluator):
    """Share of responses written in the prompt's language (offline language ID, py3langid)."""

    name = "language_fidelity"
    Config = LanguageFidelityConfig

    def identify(self, texts: list[str]) -> list[str | None]:
        ident = _identifier(tuple(self.config.candidate_languages or ()))
        return [ident.classify(t)[0] if len(t.strip()) >= self.config.min_chars else None for t in texts]

    def evaluate(self, target: EvalTarget) -> list[Score]:
        if target.generate is None:
            raise OkapiError("language_fidelity needs a generator for the model", where=f"evaluate/{target.label}")
        if not target.prompts:
            raise OkapiError(f"no held-out prompts in {target.language!r} to measure language fidelity on",
                             hint="set instructions.holdout to a positive number")
        prompts = [p for p in target.prompts for _ in range(self.config.samples_per_prompt)]
        responses = target.generate(prompts)
        found = self.identify(responses)
        hits = sum(1 for f in found if f == target.language)
        n = len(responses)
        p = hits / n
        (target.work_dir / "language_fidelity.jsonl").write_text(
            "".join(json.dumps({"prompt": q, "response": r, "identified": f}, ensure_ascii=False) + "\n"
                    for q, r, f in zip(prompts, responses, found)), encoding="utf-8")
        counts = Counter(f or "(empty)" for f in found)
        protocol = (f"py3langid; {self.config.samples_per_prompt} sample(s) x {len(target.prompts)} "
                    f"held-out prompts; top: " + ",".join(f"{k}={v}" for k, v in counts.most_common(3)))
        return [Score(task="language_fidelity", metric="fidelity", value=p,
                      stderr=math.sqrt(p * (1 - p) / n), n=n, protocol=protocol.split("; top:")[0])]
