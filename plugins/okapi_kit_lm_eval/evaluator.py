"""The ``lm_eval`` evaluator: the okapi ARC / HellaSwag / MMLU tasks and any other lm-eval task."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path
from typing import Annotated, Any, Literal

from okapi_kit_transformers.options import Device, Dtype
from pydantic import (
    AfterValidator,
    Field,
    NonNegativeInt,
    PositiveInt,
    PrivateAttr,
    field_validator,
    model_validator,
)

from okapi_kit import ComponentConfig, EvalTarget, Evaluator, OkapiError, Score
from okapi_kit.components import InputPath

from .console import output_to
from .prepare import RunPlan, plan_run, write_yamls
from .specs import TaskSpec, check_name, check_task_languages, resolve
from .tasks import TASKS

RESULTS_FILE = "lm_eval_results.json"
LOG_FILE = "lm_eval.log"  # what lm-eval prints (progress, warnings) during an evaluation
DATASETS_CACHE = "hf_datasets_cache"  # for local data only; removed once the evaluation is over
TASK_DIR = "lm_eval_tasks"

TaskName = Annotated[str, AfterValidator(check_name)]


class LmEvalConfig(ComponentConfig):
    """Options of the ``lm_eval`` evaluator."""

    tasks: list[TaskName] = Field(
        default_factory=lambda: list(TASKS),
        description="What to score: the Okapi short names arc, hellaswag, mmlu (in every language "
        "evaluated) and any lm-eval task, group or tag by name (global_mmlu_full_vi, xcopa_vi, "
        "belebele_vie_Latn ...; each in the language its name spells).")
    task_languages: dict[str, str] = Field(
        default_factory=dict,
        description="The language of a task whose name does not spell one, e.g. {hellaswag: en}.")
    protocol: Literal["okapi", "lm-eval"] = Field(
        "lm-eval", description="okapi: ARC 25-shot, HellaSwag 0-shot, MMLU 25-shot (Okapi's evaluation); "
        "lm-eval: every task as its stock YAML says (the okapi tasks 0-shot). Recorded with every score.")
    data_dir: InputPath | None = Field(
        None, description="Local data instead of the hub: <task>_<lang>.jsonl files (or .json / .parquet) "
        "in the schema of alexandrainst/m_arc, m_hellaswag, m_mmlu, and/or local copies of hub datasets "
        "(<data_dir>/<owner>/<name>/, hub layout or save_to_disk). Unset: the hub.")
    num_fewshot: dict[str, NonNegativeInt] | None = Field(
        None, description="Few-shot examples, overriding the protocol: one integer for every task, or "
        "per task entry ({arc: 25, mmlu: 5}). A count other than the protocol's is recorded as 'custom'.")
    limit: PositiveInt | None = Field(
        None, description="Score only the first N items of each task (for smoke tests).")
    batch_size: PositiveInt | Literal["auto"] = Field(
        8, description="lm-eval batch size, or 'auto' to let lm-eval find the largest that fits.")
    device: Device = Field("auto", description="'auto' (cuda when available, else cpu), 'cpu', 'cuda:0', ...")
    dtype: Dtype = Field("auto", description="Weights dtype when loading the model ('auto' = as saved).")
    log_samples: bool = Field(
        False, description="Also write lm-eval's per-item records (prompt, choices, "
        "loglikelihoods) to <work_dir>/lm_eval_samples_<task>.jsonl.")

    _specs: list[TaskSpec] = PrivateAttr(default_factory=list)

    @field_validator("num_fewshot", mode="before")
    @classmethod
    def _one_for_all(cls, value):
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 0:  # one message, not one per task
                raise ValueError(f"num_fewshot must be 0 or more (got {value})")
            return {"*": value}
        return value

    @model_validator(mode="after")
    def _resolve(self):
        if not self.tasks:
            raise ValueError("tasks must name at least one task (arc, hellaswag, mmlu or an lm-eval task)")
        self.tasks = list(dict.fromkeys(self.tasks))
        check_task_languages(self.task_languages, self.tasks)
        unknown = [k for k in self.num_fewshot or {} if k != "*" and k not in self.tasks]
        if unknown:
            raise ValueError(f"num_fewshot names {', '.join(map(repr, unknown))}, which tasks does not list")
        self._specs = resolve(self.tasks, self.task_languages)
        return self


class LmEvalEvaluator(Evaluator):
    """Multiple-choice and generative benchmarks through lm-eval: the okapi tasks and any other.

    One evaluation (one model, one language) runs lm-eval once (``simple_evaluate`` with its
    ``HFLM`` wrapper), so the model is loaded once for all its tasks. Task YAMLs written to
    ``<work_dir>/lm_eval_tasks/`` include lm-eval's stock ones and change only the data
    source and the few-shot count (``prepare.py``). Scores carry the protocol and per-item
    results (``results.py``); lm-eval's results JSON goes to ``<work_dir>/lm_eval_results.json``
    and what it prints to ``<work_dir>/lm_eval.log``.

    lm-eval issue #2000: the stock ARC and HellaSwag preprocessing deletes ``[...]`` text;
    kept as stock so that figures stay comparable with published ones.
    """

    name = "lm_eval"
    Config = LmEvalConfig

    @property
    def specs(self) -> list[TaskSpec]:
        return self.config._specs

    def tasks_for(self, language: str) -> list[str]:
        """The lm-eval names scored in ``language`` (tasks bound to other languages are left out)."""
        return [s.lm_name(language) for s in self.specs if s.runs_in(language)]

    def languages(self) -> set[str]:
        """The languages the tasks bound to one language are in (short names run in every one)."""
        return {s.language for s in self.specs if s.language is not None}

    def plan(self, language: str, cache_dir: Path) -> RunPlan:
        cfg: LmEvalConfig = self.config
        return plan_run(self.specs, language, protocol=cfg.protocol, num_fewshot=cfg.num_fewshot,
                        data_dir=Path(cfg.data_dir) if cfg.data_dir else None, cache_dir=cache_dir)

    def check(self, language: str) -> None:
        """Before any work: every task exists in ``language`` and its data are where they should be."""
        self.plan(language, Path(DATASETS_CACHE))

    def evaluate(self, target: EvalTarget) -> list[Score]:
        work_dir = Path(target.work_dir)
        cache_dir = work_dir / DATASETS_CACHE
        plan = self.plan(target.language, cache_dir)  # fail before any heavy import
        if not plan.names:  # every task is bound to another language
            return []
        work_dir.mkdir(parents=True, exist_ok=True)
        for stale in work_dir.glob("lm_eval_samples_*.jsonl"):
            stale.unlink()
        write_yamls(plan, work_dir / TASK_DIR)
        # The Arrow cache `datasets` builds from local files is needed only while lm-eval
        # reads them; kept, one per evaluation would pile up in the run folder.
        shutil.rmtree(cache_dir, ignore_errors=True)  # left by an interrupted evaluation
        try:
            with output_to(work_dir / LOG_FILE):
                results = self._run(target, plan, work_dir)
        finally:
            # ignore_errors: on Windows the still-mapped Arrow files cannot be deleted yet
            shutil.rmtree(cache_dir, ignore_errors=True)
        if results is None:  # not rank 0 under a distributed launcher
            return []
        import lm_eval

        from .results import to_scores

        samples = results.pop("samples", None) or {}
        self._write_outputs(results, samples, target, plan, work_dir)
        return to_scores(results, samples, plan, lm_eval.__version__)

    def _run(self, target: EvalTarget, plan: RunPlan, work_dir: Path) -> dict | None:
        """Load the model once and run lm-eval's ``simple_evaluate`` on every planned task."""
        cfg: LmEvalConfig = self.config

        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
        from okapi_kit_transformers.device import pick_device
        from okapi_kit_transformers.tokens import TokenRule

        from . import model as model_loader

        device = pick_device(cfg.device)
        dtype = None
        if cfg.dtype != "auto":
            import torch

            dtype = getattr(torch, cfg.dtype)
        model, tokenizer = model_loader.load(target.model, trust_remote_code=target.trust_remote_code,
                                             dtype=dtype, device=device)
        # The shared token rule (okapi_kit_transformers.tokens): BOS if the tokenizer puts one,
        # never an EOS it would append (HFLM's add_bos_token=True means all special tokens).
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=cfg.batch_size,
                  add_bos_token=bool(TokenRule.of(tokenizer).start),
                  trust_remote_code=target.trust_remote_code)
        # HFLM passes `disable=False` to its tqdm bars, so TQDM_DISABLE cannot reach them; its
        # request methods take `disable_tqdm` instead (the bars would only clutter the log).
        for method in ("loglikelihood", "loglikelihood_rolling", "generate_until"):
            setattr(lm, method, functools.partial(getattr(lm, method), disable_tqdm=True))

        # Only the folders these tasks need are indexed (the whole of lm-eval takes 10-30 s);
        # the written YAMLs come last, so they replace the stock tasks they override.
        manager = TaskManager(include_path=[*map(str, sorted(plan.folders)), str(work_dir / TASK_DIR)],
                              include_defaults=False)
        try:
            return lm_eval.simple_evaluate(
                model=lm, tasks=list(plan.names), limit=cfg.limit, task_manager=manager,
                log_samples=True,  # per-item results for paired comparisons
                bootstrap_iters=1000,  # mean metrics get their closed-form stderr anyway
            )
        except Exception as exc:  # data in the wrong schema, an unreachable hub, ...
            if isinstance(exc, OkapiError):
                raise
            raise OkapiError(
                f"lm-eval failed on {', '.join(plan.names)} ({'; '.join(sorted(set(plan.sources.values())))}): "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                where="lm_eval",
                hint="check that the files follow the hub schemas (docs/plugins/lm_eval.md), or without "
                f"network access give data_dir; lm-eval's own output is in {work_dir / LOG_FILE}",
            ) from exc

    def _write_outputs(self, results: dict, samples: dict[str, list[dict]], target: EvalTarget, plan: RunPlan,
                       work_dir: Path) -> None:
        """lm-eval's results JSON (and, with ``log_samples``, its per-item records) in the work folder."""
        from lm_eval.utils import handle_non_serializable

        results["config"]["model"] = target.model
        if self.config.log_samples:
            for name, rows in samples.items():
                with open(work_dir / f"lm_eval_samples_{name}.jsonl", "w", encoding="utf-8") as fh:
                    for row in rows:
                        fh.write(json.dumps(row, default=handle_non_serializable, ensure_ascii=False) + "\n")
        extra: dict[str, Any] = {"label": target.label, "language": target.language,
                                 "protocol": self.config.protocol, "sources": plan.sources}
        results["okapi_kit"] = extra
        (work_dir / RESULTS_FILE).write_text(
            json.dumps(results, indent=2, default=handle_non_serializable, ensure_ascii=False),
            encoding="utf-8")
