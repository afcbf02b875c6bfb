"""lm-eval's okapi task family (ARC, HellaSwag, MMLU), found without importing lm-eval.

The family lives in the installed lm-eval package, ``lm_eval/tasks/okapi/``: one stock
YAML per language (``arc_vi.yaml`` -> hub dataset ``alexandrainst/m_arc``, config ``vi``)
that includes a shared template (``_arc_yaml``) holding the prompt, preprocessing and
metrics. The languages a task covers are the stock YAMLs present.

Local flat files (``<task>_<lang>.jsonl``, optional few-shot pool ``<task>_<lang>.train.jsonl``)
are scored through the shared template with ``dataset_path: json`` (or ``parquet``), for
any language.

This module imports nothing heavy (standard library, PyYAML and okapi_kit).
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from okapi_kit import OkapiError


@dataclass(frozen=True)
class Family:
    task: str  # okapi-kit's name: arc, hellaswag, mmlu
    folder: str  # under lm_eval/tasks/okapi
    template: str  # the shared template in that folder
    lm_name: str  # lm-eval's task name, with {lang}
    okapi_shots: int  # Okapi's evaluation (nlp-uoregon/mlmm-evaluation)


FAMILIES = {f.task: f for f in (
    Family("arc", "arc_multilingual", "_arc_yaml", "arc_{lang}", 25),
    Family("hellaswag", "hellaswag_multilingual", "_hellaswag_yaml", "hellaswag_{lang}", 0),
    Family("mmlu", "mmlu_multilingual", "_default_yaml", "m_mmlu_{lang}", 25),
)}
TASKS = tuple(FAMILIES)

# Extensions tried, in order, for every flat file; the value is the `datasets` builder.
EXTENSIONS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}
FEWSHOT_SUFFIXES = (".train", ".dev")


def okapi_tasks_dir() -> Path:
    """lm-eval's ``tasks/okapi`` folder, found without importing lm-eval (which is slow)."""
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        raise OkapiError("lm-eval is not installed", where="lm_eval",
                         hint="pip install 'lm_eval[hf]>=0.4.9'")
    return Path(list(spec.submodule_search_locations)[0]) / "tasks" / "okapi"


def template_path(task: str) -> Path:
    family = FAMILIES[task]
    path = okapi_tasks_dir() / family.folder / family.template
    if not path.is_file():
        raise OkapiError(f"the installed lm-eval has no okapi template {path}", where="lm_eval",
                         hint="install lm-eval 0.4.x (pip install 'lm_eval[hf]')")
    return path


@functools.cache
def family_languages(task: str) -> tuple[str, ...]:
    """The languages lm-eval's stock YAMLs cover for ``task`` (arc: 31, hellaswag: 30, mmlu: 34)."""
    family = FAMILIES[task]
    prefix = family.lm_name.split("{")[0]
    folder = okapi_tasks_dir() / family.folder
    return tuple(sorted(p.stem[len(prefix):] for p in folder.glob(f"{prefix}*.yaml")))


def all_languages() -> tuple[str, ...]:
    """Every language at least one okapi task covers."""
    return tuple(sorted({lang for task in TASKS for lang in family_languages(task)}))


def stock_yaml(task: str, lang: str) -> Path | None:
    """lm-eval's YAML of ``task`` in ``lang`` (reads the hub dataset), or None."""
    if lang not in family_languages(task):
        return None
    family = FAMILIES[task]
    return okapi_tasks_dir() / family.folder / f"{family.lm_name.format(lang=lang)}.yaml"


def split_okapi_name(name: str) -> tuple[str, str] | None:
    """``arc_vi`` -> (``arc``, ``vi``) when lm-eval has that okapi task, else None."""
    for task, family in FAMILIES.items():
        prefix = family.lm_name.split("{")[0]
        if name.startswith(prefix) and name[len(prefix):] in family_languages(task):
            return task, name[len(prefix):]
    return None


class _TaskLoader(yaml.SafeLoader):
    """Reads lm-eval task YAMLs without running them: ``!function x.y`` stays a string."""


_TaskLoader.add_constructor("!function", lambda loader, node: f"!function {loader.construct_scalar(node)}")


def read_task_yaml(path: Path) -> dict[str, Any]:
    """A task YAML with its ``include`` chain merged (the including file wins), as lm-eval does."""
    with open(path, encoding="utf-8") as fh:
        cfg = yaml.load(fh, Loader=_TaskLoader) or {}  # noqa: S506 (SafeLoader subclass)
    includes = cfg.pop("include", None)
    merged: dict[str, Any] = {}
    for inc in [includes] if isinstance(includes, str) else includes or []:
        merged.update(read_task_yaml(Path(inc) if Path(inc).is_absolute() else path.parent / inc))
    merged.update(cfg)
    return merged


# ---- local flat files -----------------------------------------------------------------------

@dataclass(frozen=True)
class FlatFiles:
    """``<task>_<lang>.jsonl`` (scored) and an optional few-shot pool beside it."""

    eval_file: Path
    fewshot_file: Path | None
    builder: str  # json or parquet


def _find(folder: Path, stem: str) -> Path | None:
    for ext in EXTENSIONS:
        path = folder / f"{stem}{ext}"
        if path.is_file():
            return path
    return None


def find_flat(data_dir: Path, task: str, lang: str) -> FlatFiles | None:
    """The flat files of one task in ``data_dir``, or None; an empty or mixed pair is an error."""
    stem = f"{task}_{lang}"
    eval_file = _find(data_dir, stem)
    if eval_file is None:
        return None
    if eval_file.stat().st_size == 0:
        raise OkapiError(f"data file is empty: {eval_file}", where="lm_eval.data_dir")
    fewshot_file = next((f for s in FEWSHOT_SUFFIXES if (f := _find(data_dir, stem + s))), None)
    builder = EXTENSIONS[eval_file.suffix]
    if fewshot_file is not None and EXTENSIONS[fewshot_file.suffix] != builder:
        raise OkapiError(f"{eval_file.name} and {fewshot_file.name} must both be JSON/JSONL or both Parquet",
                         where="lm_eval.data_dir")
    return FlatFiles(eval_file.resolve(), fewshot_file.resolve() if fewshot_file else None, builder)


def flat_overrides(files: FlatFiles, cache_dir: Path) -> dict[str, Any]:
    """What a task YAML that includes the shared template sets to read flat files.

    The evaluated file is the split ``test``; few-shot examples come from ``train`` when a
    pool is given, else from ``test`` itself (lm-eval leaves the scored item out).
    """
    data_files = {"test": [str(files.eval_file)]}
    if files.fewshot_file is not None:
        data_files["train"] = [str(files.fewshot_file)]
    return {
        "tag": [],
        "dataset_path": files.builder,
        "dataset_name": None,
        "dataset_kwargs": {"data_files": data_files, "cache_dir": str(cache_dir)},
        "training_split": "train" if files.fewshot_file else None,
        "validation_split": None,
        "test_split": "test",
        "fewshot_split": "train" if files.fewshot_file else "test",
    }
