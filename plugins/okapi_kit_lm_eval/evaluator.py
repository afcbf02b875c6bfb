"""The ``lm_eval`` evaluator: lm-eval's okapi ARC / HellaSwag / MMLU tasks on local files."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path
from typing import Literal

from okapi_kit_transformers.options import Device
from pydantic import Field, NonNegativeInt, PositiveInt, field_validator, model_validator

from okapi_kit import ComponentConfig, EvalTarget, Evaluator, OkapiError, Score
from okapi_kit.components import InputPath

from .console import output_to
from .tasks import STOCK, TASKS, LocalTask, locate, okapi_tasks_dir, write_task_yamls

TaskName = Literal["arc", "hellaswag", "mmlu"]
RESULTS_FILE = "lm_eval_results.json"
LOG_FILE = "lm_eval.log"  # what lm-eval prints (progress, warnings) during an evaluation
DATASETS_CACHE = "hf_datasets_cache"  # removed once the evaluation is over


class FewShot(ComponentConfig):
    """Number of few-shot examples per task. Okapi's paper used arc 25, hellaswag 0, mmlu 25."""

    arc: NonNegativeInt = Field(0, description="Few-shot examples for ARC (Okapi: 25).")
    hellaswag: NonNegativeInt = Field(0, description="Few-shot examples for HellaSwag (Okapi: 0).")
    mmlu: NonNegativeInt = Field(0, description="Few-shot examples for MMLU (Okapi: 25).")


class LmEvalConfig(ComponentConfig):
    """Options of the ``lm_eval`` evaluator."""

    tasks: list[TaskName] = Field(
        default_factory=lambda: list(TASKS),
        description="Which benchmarks to run: any of arc, hellaswag, mmlu.")
    data_dir: InputPath = Field(
        description="Folder with <task>_<lang>.jsonl (or .json / .parquet) in the schema of the "
        "hub datasets alexandrainst/m_arc, m_hellaswag, m_mmlu; optional few-shot pools "
        "<task>_<lang>.train.jsonl (or .dev.jsonl).")
    num_fewshot: FewShot = Field(
        default_factory=FewShot,
        description="Few-shot examples per task; an integer sets all three. Default 0 (lm-eval's "
        "stock okapi tasks); Okapi's paper used arc 25, hellaswag 0, mmlu 25.")
    limit: PositiveInt | None = Field(
        None, description="Score only the first N items of each file (for smoke tests).")
    batch_size: PositiveInt | Literal["auto"] = Field(
        8, description="lm-eval batch size, or 'auto' to let lm-eval find the largest that fits.")
    device: Device = Field("auto", description="'auto' (cuda when available, else cpu), 'cpu', 'cuda:0', ...")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype when loading the model ('auto' = as saved).")
    log_samples: bool = Field(
        False, description="Also write lm-eval's per-item records (prompt, choices, "
        "loglikelihoods) to <work_dir>/lm_eval_samples_<task>.jsonl.")

    @field_validator("num_fewshot", mode="before")
    @classmethod
    def _one_for_all(cls, value):
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 0:  # one message, not one per task
                raise ValueError(f"num_fewshot must be 0 or more (got {value})")
            return {task: value for task in TASKS}
        return value

    @model_validator(mode="after")
    def _unique_tasks(self):
        if not self.tasks:
            raise ValueError("tasks must name at least one of arc, hellaswag, mmlu")
        self.tasks = list(dict.fromkeys(self.tasks))
        return self


class LmEvalEvaluator(Evaluator):
    """Multiple-choice accuracy (ARC, HellaSwag, MMLU) with lm-eval's okapi tasks on local files.

    The evaluation runs lm-eval itself (``simple_evaluate`` with its ``HFLM`` wrapper and
    its task system). For each task a YAML is written to ``<work_dir>/lm_eval_tasks/`` that
    includes lm-eval's stock okapi template (``arc_multilingual/_arc_yaml``,
    ``hellaswag_multilingual/_hellaswag_yaml``, ``mmlu_multilingual/_default_yaml``) and
    only swaps the hub dataset for ``dataset_path: json`` + ``data_files``; prompts,
    preprocessing, choices and metrics are the stock ones, so figures follow the stock
    protocol (loglikelihood of each choice; ``acc``, plus ``acc_norm`` for ARC and
    HellaSwag). The evaluated file is scored in full (or its first ``limit`` items).

    Few-shot examples come from ``<task>_<lang>.train.jsonl`` (or ``.dev.jsonl``) when that
    file exists, else from the evaluated file itself, leaving the scored item out. ARC and
    HellaSwag draw them at random (lm-eval's default sampler, seed 1234); MMLU takes the
    first N (stock ``first_n`` sampler).

    lm-eval issue #2000: the stock ARC (and HellaSwag) preprocessing deletes any ``[...]``
    text from questions and options. This evaluator keeps that stock behaviour, so its
    figures stay comparable with published lm-eval okapi numbers; questions with bracketed
    notation (e.g. genotypes in Arabic ARC) are damaged exactly as in stock lm-eval.

    lm-eval's results JSON is written to ``<work_dir>/lm_eval_results.json`` (and, with
    ``log_samples``, its per-item records to ``<work_dir>/lm_eval_samples_<task>.jsonl``).
    What lm-eval prints while it runs (progress bars, warnings, its ``git describe``
    probe) goes to ``<work_dir>/lm_eval.log``, not to the console, and the ``datasets``
    cache built from the files is deleted when the evaluation ends.
    """

    name = "lm_eval"
    Config = LmEvalConfig

    def locate(self, language: str) -> list[LocalTask]:
        """The local files for ``language``; raises OkapiError listing every missing file."""
        cfg: LmEvalConfig = self.config
        found, errors = [], []
        for task in cfg.tasks:
            try:
                found.append(locate(Path(cfg.data_dir), task, language,
                                    getattr(cfg.num_fewshot, task)))
            except OkapiError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise OkapiError("; ".join(e.message for e in errors), where="lm_eval.data_dir",
                             hint=errors[0].hint)
        return found

    def check(self, language: str) -> None:
        """Before any work: lm-eval with its okapi templates is installed, the files exist."""
        okapi_dir = okapi_tasks_dir()
        for task in self.config.tasks:
            template = okapi_dir / STOCK[task][0]
            if not template.is_file():
                raise OkapiError(f"the installed lm-eval has no okapi template {template}",
                                 where="lm_eval", hint="install lm-eval 0.4.x (pip install 'lm_eval[hf]')")
        self.locate(language)

    def evaluate(self, target: EvalTarget) -> list[Score]:
        local_tasks = self.locate(target.language)  # fail before any heavy import
        work_dir = Path(target.work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        for stale in work_dir.glob("lm_eval_samples_*.jsonl"):
            stale.unlink()
        # The Arrow cache `datasets` builds from the files is needed only while lm-eval
        # reads them; kept, one per evaluation would pile up in the run folder.
        cache_dir = work_dir / DATASETS_CACHE
        shutil.rmtree(cache_dir, ignore_errors=True)  # left by an interrupted evaluation
        try:
            with output_to(work_dir / LOG_FILE):
                results = self._run(target, local_tasks, work_dir, cache_dir)
        finally:
            # ignore_errors: on Windows the still-mapped Arrow files cannot be deleted yet
            shutil.rmtree(cache_dir, ignore_errors=True)
        if results is None:  # not rank 0 under a distributed launcher
            return []
        self._write_outputs(results, target, local_tasks, work_dir)
        return self.scores(results, local_tasks)

    def _run(self, target: EvalTarget, local_tasks: list[LocalTask], work_dir: Path,
             cache_dir: Path) -> dict | None:
        """Load the model and run lm-eval's ``simple_evaluate`` on the local task files."""
        cfg: LmEvalConfig = self.config

        import lm_eval
        import torch
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
        from okapi_kit_transformers.loading import load_causal_lm, load_tokenizer
        from okapi_kit_transformers.tokens import TokenRule, rule_tokenizer

        task_dir = work_dir / "lm_eval_tasks"
        write_task_yamls(local_tasks, task_dir, okapi_tasks_dir(), cache_dir=cache_dir)

        device = cfg.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = None if cfg.dtype == "auto" else getattr(torch, cfg.dtype)
        model = load_causal_lm(target.model, trust_remote_code=target.trust_remote_code, dtype=dtype)
        model.to(device)
        # The shared token rule (okapi_kit_transformers.tokens): BOS if the tokenizer puts one,
        # never an EOS it would append (HFLM's add_bos_token=True means all special tokens).
        tokenizer = rule_tokenizer(load_tokenizer(target.model, trust_remote_code=target.trust_remote_code))
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=cfg.batch_size,
                  add_bos_token=bool(TokenRule.of(tokenizer).start),
                  trust_remote_code=target.trust_remote_code)

        # HFLM passes `disable=False` to its tqdm bars, so TQDM_DISABLE cannot reach them; its
        # request methods take `disable_tqdm` instead (the bars would only clutter the log).
        for method in ("loglikelihood", "loglikelihood_rolling", "generate_until"):
            setattr(lm, method, functools.partial(getattr(lm, method), disable_tqdm=True))

        manager = TaskManager(include_path=str(task_dir), include_defaults=False)
        try:
            return lm_eval.simple_evaluate(
                model=lm,
                tasks=[t.lm_eval_name for t in local_tasks],
                limit=cfg.limit,
                task_manager=manager,
                log_samples=cfg.log_samples,
                bootstrap_iters=1000,  # mean metrics get their closed-form stderr anyway
            )
        except Exception as exc:  # data in the wrong schema surfaces here
            if isinstance(exc, OkapiError):
                raise
            raise OkapiError(
                f"lm-eval failed on the files in {cfg.data_dir}: {type(exc).__name__}: {exc}",
                where="lm_eval",
                hint="check that the files follow the hub schemas (docs/plugins/lm_eval.md); "
                f"lm-eval's own output is in {work_dir / LOG_FILE}",
            ) from exc

    @staticmethod
    def _write_outputs(results: dict, target: EvalTarget, local_tasks: list[LocalTask],
                       work_dir: Path) -> None:
        """lm-eval's results JSON (and per-item samples) in the work folder."""
        from lm_eval.utils import handle_non_serializable

        results["config"]["model"] = target.model
        samples = results.pop("samples", None) or {}
        for name, rows in samples.items():
            with open(work_dir / f"lm_eval_samples_{name}.jsonl", "w", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(json.dumps(row, default=handle_non_serializable, ensure_ascii=False) + "\n")
        results["okapi_kit"] = {
            "label": target.label, "language": target.language,
            "files": {t.lm_eval_name: {"eval": str(t.eval_file),
                                       "fewshot": str(t.fewshot_file) if t.fewshot_file else None}
                      for t in local_tasks},
        }
        (work_dir / RESULTS_FILE).write_text(
            json.dumps(results, indent=2, default=handle_non_serializable, ensure_ascii=False),
            encoding="utf-8")

    @staticmethod
    def scores(results: dict, local_tasks: list[LocalTask]) -> list[Score]:
        """Turn lm-eval's results dict into okapi-kit Scores."""
        import lm_eval

        out = []
        for local in local_tasks:
            name = local.lm_eval_name
            row = results["results"][name]
            n = int(results.get("n-samples", {}).get(name, {}).get("effective", 0))
            shots = results.get("n-shot", {}).get(name, local.num_fewshot)
            protocol = (f"lm-eval {lm_eval.__version__}; {name}; {shots}-shot"
                        + (f" ({local.fewshot_source})" if shots else "")
                        + "; loglikelihood")
            for metric in ("acc", "acc_norm"):
                key = f"{metric},none"
                if key not in row:
                    continue
                stderr = row.get(f"{metric}_stderr,none")
                out.append(Score(task=local.task, metric=metric, value=float(row[key]),
                                 stderr=float(stderr) if isinstance(stderr, (int, float)) else None,
                                 n=n, protocol=protocol))
        return out
