"""The ``rm_accuracy`` evaluator: a reward model's accuracy on preference pairs, per category.

Data in Multilingual RewardBench's schema (Gureja et al. 2024; hub
``C4AI-Community/multilingual-reward-bench``, one configuration per language named by its
FLORES-200 code, split ``test``): rows of ``prompt``, ``chosen``, ``rejected`` and a
category column. A row counts as correct when r(prompt, chosen) > r(prompt, rejected)
(a tie is wrong). Rewards come from :class:`RewardModelSource`, which builds every
sequence by the shared token rule (BOS if the tokenizer puts one, then the text, then EOS).
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, PositiveInt

from okapi_kit import ComponentConfig, EvalTarget, Evaluator, OkapiError, PlainName, Score
from okapi_kit.components import InputPath
from okapi_kit.readers import language_file

from .options import Device

HUB_DATASET = "C4AI-Community/multilingual-reward-bench"
# FLORES-200 codes of okapi-kit's languages: M-RewardBench names its configurations so.
FLORES = {
    "en": "eng_Latn", "ru": "rus_Cyrl", "de": "deu_Latn", "zh": "zho_Hans", "fr": "fra_Latn", "es": "spa_Latn",
    "it": "ita_Latn", "nl": "nld_Latn", "vi": "vie_Latn", "id": "ind_Latn", "ar": "arb_Arab", "hu": "hun_Latn",
    "ro": "ron_Latn", "da": "dan_Latn", "sk": "slk_Latn", "uk": "ukr_Cyrl", "ca": "cat_Latn", "sr": "srp_Cyrl",
    "hr": "hrv_Latn", "hi": "hin_Deva", "bn": "ben_Beng", "ta": "tam_Taml", "ne": "npi_Deva", "ml": "mal_Mlym",
    "mr": "mar_Deva", "te": "tel_Telu", "kn": "kan_Knda", "eu": "eus_Latn", "gu": "guj_Gujr", "hy": "hye_Armn",
    "pt": "por_Latn", "is": "isl_Latn", "nb": "nob_Latn", "sv": "swe_Latn",
}
# The configurations of the hub dataset (its card, 2025): 23 languages.
HUB_CONFIGS = frozenset({
    "arb_Arab", "ces_Latn", "deu_Latn", "ell_Grek", "fra_Latn", "heb_Hebr", "hin_Deva", "ind_Latn", "ita_Latn",
    "jpn_Jpan", "kor_Hang", "nld_Latn", "pes_Arab", "pol_Latn", "por_Latn", "ron_Latn", "rus_Cyrl", "spa_Latn",
    "tur_Latn", "ukr_Cyrl", "vie_Latn", "zho_Hans", "zho_Hant",
})
CATEGORY_COLUMNS = ("category", "subset", "source")
RESULTS_FILE = "rm_accuracy.json"
ROWS_FILE = "rm_accuracy_rows.jsonl"


class RmAccuracyConfig(ComponentConfig):
    """Options of the ``rm_accuracy`` evaluator."""

    data_dir: InputPath | None = Field(
        None, description="Folder with <lang>/test.jsonl or <lang>.jsonl (or .json; <lang> as okapi-kit's "
        "code or the FLORES code, vi or vie_Latn). Unset: the hub dataset.")
    dataset: str = Field(HUB_DATASET, description="Hub dataset read when data_dir is unset.")
    split: str = Field("test", description="Split of the hub dataset.")
    configs: dict[str, str] = Field(
        default_factory=dict, description="Hub configuration per language (default: the FLORES code, vi: vie_Latn).")
    category_column: str | None = Field(
        None, description="Column that groups rows (default: the first of category, subset, source present).")
    prompt_template: Literal["raw", "alpaca", "chat", "auto"] = Field(
        "alpaca", description="How the prompt is shown to the reward model: as it is (raw), in Okapi's "
        "Alpaca template (what okapi-kit's reward models are trained on), the model's chat template, or auto.")
    limit: PositiveInt | None = Field(None, description="Score only the first N rows (for smoke tests).")
    batch_size: PositiveInt = Field(16, description="Sequences scored per forward pass.")
    max_length: int = Field(1024, ge=8, description="Tokens kept per prompt+response (BOS and the last ones).")
    device: Device = Field("auto", description="auto (cuda when present, else cpu), cpu, cuda, cuda:N or mps")
    confidence: float = Field(0.95, gt=0, lt=1, description="Level of the Wilson intervals in rm_accuracy.json.")
    task: PlainName = Field("m_rewardbench", description="Task name of the scores; categories are <task>.<category>.")


def wilson(correct: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval of a proportion: it neither collapses at 0 or 1 nor leaves [0, 1]."""
    if n == 0:
        return 0.0, 1.0
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


class RmAccuracyEvaluator(Evaluator):
    """Reward-model accuracy on preference pairs (Multilingual RewardBench), per category and language.

    The evaluated model is a reward model (a sequence classifier with one output): with
    ``okapi-kit evaluate --model RM --evaluator rm_accuracy``. Scores: ``<task>`` with
    ``accuracy`` (share of all rows, with per-row items) and ``accuracy_macro`` (mean over
    categories, as RewardBench reports), and ``<task>.<category>`` with ``accuracy``.
    ``<work_dir>/rm_accuracy.json`` adds correct counts and Wilson intervals;
    ``rm_accuracy_rows.jsonl`` holds both rewards of every row.
    """

    name = "rm_accuracy"
    Config = RmAccuracyConfig
    target_kind: ClassVar[str] = "reward_model"  # scores reward models, not policies

    def _config_name(self, language: str) -> str:
        cfg: RmAccuracyConfig = self.config
        name = cfg.configs.get(language) or FLORES.get(language)
        if name is None:
            raise OkapiError(f"no hub configuration is known for language {language!r}", where="rm_accuracy.configs",
                             hint=f"give it: configs: {{{language}: <config>}}")
        if cfg.dataset == HUB_DATASET and language not in cfg.configs and name not in HUB_CONFIGS:
            raise OkapiError(f"Multilingual RewardBench has no {language!r} ({name}) configuration",
                             where="rm_accuracy", hint="its languages: " + ", ".join(
                                 sorted(c for c, f in FLORES.items() if f in HUB_CONFIGS)) +
                             "; or give data_dir with your own <lang>/test.jsonl")
        return name

    def _local_file(self, language: str) -> Path:
        data_dir = Path(self.config.data_dir)
        path = language_file(data_dir, [language, FLORES.get(language, language)])
        if path is not None:
            return path
        raise OkapiError(f"no preference data for language {language!r} in {data_dir}: expected "
                         f"{language}/test.jsonl or {language}.jsonl", where="rm_accuracy.data_dir",
                         hint="rows of prompt, chosen, rejected and a category column (Multilingual "
                         "RewardBench's schema, docs/plugins/lm_eval.md)")

    def check(self, language: str) -> None:
        if self.config.data_dir is not None:
            self._local_file(language)
        else:
            self._config_name(language)

    def rows(self, language: str) -> tuple[list[dict[str, Any]], str]:
        """The rows to score and where they come from."""
        cfg: RmAccuracyConfig = self.config
        if cfg.data_dir is not None:
            from okapi_kit.readers import read_rows

            path = self._local_file(language)
            rows, source = [row for _, row in read_rows(path)], str(path)
        else:
            config = self._config_name(language)
            source = f"{cfg.dataset}:{config}/{cfg.split}"
            try:
                import datasets

                rows = [dict(r) for r in datasets.load_dataset(cfg.dataset, name=config, split=cfg.split)]
            except Exception as exc:  # offline, a missing configuration ...: many types
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise OkapiError(f"could not load {source}: {first}", where="rm_accuracy",
                                 hint="without network access, give data_dir with <lang>/test.jsonl") from None
        return rows[:cfg.limit] if cfg.limit else rows, source

    def _category_column(self, rows: list[dict[str, Any]], source: str) -> str | None:
        wanted = self.config.category_column
        if wanted is not None:
            if any(wanted not in r for r in rows):
                raise OkapiError(f"{source}: a row has no {wanted!r} column", where="rm_accuracy.category_column",
                                 hint=f"its columns: {', '.join(rows[0])}")
            return wanted
        return next((c for c in CATEGORY_COLUMNS if all(c in r for r in rows)), None)

    def evaluate(self, target: EvalTarget) -> list[Score]:
        cfg: RmAccuracyConfig = self.config
        rows, source = self.rows(target.language)
        for i, row in enumerate(rows):
            missing = [k for k in ("prompt", "chosen", "rejected") if not isinstance(row.get(k), str)]
            if missing:
                raise OkapiError(f"{source}: row {i} has no text in {', '.join(missing)}", where="rm_accuracy",
                                 hint="rows need prompt, chosen and rejected (Multilingual RewardBench's schema)")
        if not rows:
            raise OkapiError(f"{source} has no rows", where="rm_accuracy")
        column = self._category_column(rows, source)
        rewards = self._rewards(target, rows)
        ids = [str(r.get("id", i)) for i, r in enumerate(rows)]
        if len(set(ids)) != len(ids):  # item ids must tell rows apart
            ids = [str(i) for i in range(len(rows))]
        correct = {i: 1.0 if c > r else 0.0 for i, (c, r) in zip(ids, rewards)}
        groups: dict[str, list[str]] = defaultdict(list)
        for i, row in zip(ids, rows):
            groups[str(row[column]) if column else "all"].append(i)
        protocol = f"rm_accuracy; r(chosen) > r(rejected), ties wrong; {cfg.prompt_template} prompt; " \
                   f"max_length {cfg.max_length}"
        scores = [self._score(cfg.task, "accuracy", correct, protocol)]
        per_category = {c: self._score(f"{cfg.task}.{c}", "accuracy", {i: correct[i] for i in members}, protocol)
                        for c, members in sorted(groups.items())}
        if column:
            k = len(per_category)
            scores.append(Score(task=cfg.task, metric="accuracy_macro",
                                value=sum(s.value for s in per_category.values()) / k,
                                stderr=math.sqrt(sum(s.stderr ** 2 for s in per_category.values())) / k,
                                n=len(rows), protocol=protocol))
            scores += per_category.values()
        self._write(target, source, column, rows, ids, rewards, scores)
        return scores

    @staticmethod
    def _score(task: str, metric: str, items: dict[str, float], protocol: str) -> Score:
        n = len(items)
        p = sum(items.values()) / n
        return Score(task=task, metric=metric, value=p, stderr=math.sqrt(p * (1 - p) / n), n=n,
                     protocol=protocol, items=items)

    def _rewards(self, target: EvalTarget, rows: list[dict[str, Any]]) -> list[tuple[float, float]]:
        """(r(prompt, chosen), r(prompt, rejected)) per row, scored in one pass."""
        from .reward import RewardModelConfig, RewardModelSource

        cfg: RmAccuracyConfig = self.config
        prompts = [self._format(target, r["prompt"]) for r in rows]
        source = RewardModelSource(RewardModelConfig(path=target.model, batch_size=cfg.batch_size,
                                                     max_length=cfg.max_length, device=cfg.device))
        n = len(rows)
        values = source.score(prompts + prompts, [r["chosen"] for r in rows] + [r["rejected"] for r in rows],
                              [target.language] * (2 * n))
        return list(zip(values[:n], values[n:]))

    def _format(self, target: EvalTarget, prompt: str) -> str:
        style = self.config.prompt_template
        if style == "raw":
            return prompt
        if not hasattr(self, "_formatter"):
            from okapi_kit.prompts import PromptFormatter

            self._formatter = PromptFormatter(style, target.model, trust_remote_code=target.trust_remote_code)
        return self._formatter(prompt)

    def _write(self, target: EvalTarget, source: str, column: str | None, rows: list[dict[str, Any]],
               ids: list[str], rewards: list[tuple[float, float]], scores: list[Score]) -> None:
        work = Path(target.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        summary: dict[str, Any] = {"model": target.model, "language": target.language, "source": source,
                                   "category_column": column, "confidence": self.config.confidence, "scores": []}
        for s in scores:
            entry = {"task": s.task, "metric": s.metric, "value": s.value, "n": s.n}
            if s.items is not None:
                hits = int(sum(s.items.values()))
                entry["correct"] = hits
                entry["ci_low"], entry["ci_high"] = wilson(hits, s.n, self.config.confidence)
            summary["scores"].append(entry)
        (work / RESULTS_FILE).write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
        with open(work / ROWS_FILE, "w", encoding="utf-8") as fh:
            for i, row, (c, r) in zip(ids, rows, rewards):
                fh.write(json.dumps({"id": i, "category": row.get(column) if column else None,
                                     "reward_chosen": c, "reward_rejected": r, "correct": c > r},
                                    ensure_ascii=False) + "\n")
