"""Local copies of lm-eval's okapi task definitions, pointed at files on disk.

Each generated task YAML *includes* the stock okapi template shipped inside the
installed lm-eval package (``lm_eval/tasks/okapi/...``), so prompts, preprocessing
(``utils.process_docs``), choices, targets, metrics and few-shot sampler are lm-eval's
own; only the data source and split names are replaced:

- ``dataset_path: json`` (or ``parquet``) with ``data_files`` naming the local files;
- the evaluated file is the split ``test``; few-shot examples come from the split
  ``train`` when a few-shot file is given, else from ``test`` itself (lm-eval then
  leaves the evaluated item out of its own context).

This module imports nothing heavy (only the standard library and okapi_kit).
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from okapi_kit import OkapiError

# okapi-kit task name -> (stock template, relative to lm_eval/tasks/okapi; lm-eval task name)
STOCK = {
    "arc": ("arc_multilingual/_arc_yaml", "arc_{lang}"),
    "hellaswag": ("hellaswag_multilingual/_hellaswag_yaml", "hellaswag_{lang}"),
    "mmlu": ("mmlu_multilingual/_default_yaml", "m_mmlu_{lang}"),
}
TASKS = tuple(STOCK)

# Extensions tried, in order, for every file; the value is the `datasets` builder.
EXTENSIONS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}
FEWSHOT_SUFFIXES = (".train", ".dev")


@dataclass
class LocalTask:
    task: str  # arc, hellaswag, mmlu
    lm_eval_name: str  # arc_vi, hellaswag_vi, m_mmlu_vi
    eval_file: Path
    fewshot_file: Path | None
    builder: str  # json or parquet
    num_fewshot: int

    @property
    def fewshot_source(self) -> str:
        return self.fewshot_file.name if self.fewshot_file else "same file, item itself left out"


def okapi_tasks_dir() -> Path:
    """lm-eval's ``tasks/okapi`` folder, found without importing lm-eval (which is slow)."""
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        raise OkapiError("lm-eval is not installed", where="lm_eval",
                         hint="pip install 'lm_eval[hf]>=0.4.9'")
    return Path(list(spec.submodule_search_locations)[0]) / "tasks" / "okapi"


def _find(folder: Path, stem: str) -> Path | None:
    for ext in EXTENSIONS:
        path = folder / f"{stem}{ext}"
        if path.is_file():
            return path
    return None


def locate(data_dir: Path, task: str, lang: str, num_fewshot: int) -> LocalTask:
    """Find the files of one task, or raise :class:`OkapiError` naming what is expected."""
    stem = f"{task}_{lang}"
    eval_file = _find(data_dir, stem)
    if eval_file is None:
        raise OkapiError(
            f"no {task} data for language {lang!r}: expected {stem}.jsonl "
            f"(or {stem}.json / {stem}.parquet) in {data_dir}",
            where="lm_eval.data_dir",
            hint=f"put {stem}.jsonl there (the schema of the hub dataset, see docs/plugins/lm_eval.md) "
            "or drop the task from `tasks`",
        )
    if eval_file.stat().st_size == 0:
        raise OkapiError(f"data file is empty: {eval_file}", where="lm_eval.data_dir")
    fewshot_file = None
    for suffix in FEWSHOT_SUFFIXES:
        fewshot_file = _find(data_dir, stem + suffix)
        if fewshot_file is not None:
            break
    builder = EXTENSIONS[eval_file.suffix]
    if fewshot_file is not None and EXTENSIONS[fewshot_file.suffix] != builder:
        raise OkapiError(
            f"{eval_file.name} and {fewshot_file.name} must both be JSON/JSONL or both Parquet",
            where="lm_eval.data_dir",
        )
    return LocalTask(task=task, lm_eval_name=STOCK[task][1].format(lang=lang),
                     eval_file=eval_file.resolve(),
                     fewshot_file=fewshot_file.resolve() if fewshot_file else None,
                     builder=builder, num_fewshot=num_fewshot)


def task_config(local: LocalTask, okapi_tasks_dir: Path, cache_dir: Path) -> dict:
    """The YAML mapping of one local task (includes the stock template by absolute path)."""
    template = okapi_tasks_dir / STOCK[local.task][0]
    if not template.is_file():
        raise OkapiError(f"the installed lm-eval has no okapi template {template}",
                         hint="install lm-eval 0.4.x (pip install 'lm_eval[hf]')")
    data_files = {"test": [str(local.eval_file)]}
    if local.fewshot_file is not None:
        data_files["train"] = [str(local.fewshot_file)]
    return {
        "include": str(template),
        "task": local.lm_eval_name,
        "tag": [],
        "dataset_path": local.builder,
        "dataset_name": None,
        "dataset_kwargs": {"data_files": data_files, "cache_dir": str(cache_dir)},
        "training_split": "train" if local.fewshot_file else None,
        "validation_split": None,
        "test_split": "test",
        "fewshot_split": "train" if local.fewshot_file else "test",
        "num_fewshot": local.num_fewshot,
    }


def write_task_yamls(tasks: list[LocalTask], out_dir: Path, okapi_tasks_dir: Path,
                     cache_dir: Path) -> list[Path]:
    """Write one ``<lm-eval task>.yaml`` per task into ``out_dir`` (JSON is valid YAML)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.yaml"):
        old.unlink()
    paths = []
    for local in tasks:
        path = out_dir / f"{local.lm_eval_name}.yaml"
        path.write_text(json.dumps(task_config(local, okapi_tasks_dir, cache_dir), indent=2) + "\n",
                        encoding="utf-8")
        paths.append(path)
    return paths
