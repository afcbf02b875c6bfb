"""Reading a task's hub dataset from a local copy of it, with the task's own YAML unchanged.

A local copy of hub dataset ``owner/name`` is the folder ``<data_dir>/owner/name`` (or
``<data_dir>/name``, or ``<data_dir>/owner__name``). Inside it, the files of one dataset
configuration (``vi``, ``vie_Latn``) are found in the first of these layouts that has them:

- the hub's own layout: ``data/<config>/<split>.jsonl`` (the okapi datasets), or
  ``<config>/<split>.jsonl``, ``<config>/<split>-00000-of-00001.parquet`` (any of
  ``.jsonl``, ``.json``, ``.parquet``, ``.arrow``; shards are read together);
- a ``datasets`` ``save_to_disk`` folder: ``<config>/dataset_dict.json`` with one
  folder of Arrow files per split.

The task is then read with ``datasets``' ``json``, ``parquet`` or ``arrow`` builder and
``data_files`` naming those files under the split names the task's YAML uses (the hub's
``val`` stands in for a YAML's ``validation``). A copy with none of these layouts but a
``README.md`` (a clone of the hub repository, whose card declares its configurations) is
handed to ``datasets`` as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from okapi_kit import OkapiError

BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".arrow": "arrow"}
ALIASES = {"validation": ("validation", "val"), "val": ("val", "validation")}
SPLIT_KEYS = ("training_split", "validation_split", "test_split", "fewshot_split")


def copy_folder(data_dir: Path, hub_id: str) -> Path | None:
    """The local copy of ``hub_id`` under ``data_dir``, or None."""
    owner, _, name = hub_id.rpartition("/")
    candidates = [data_dir / hub_id, data_dir / name]
    if owner:
        candidates.append(data_dir / f"{owner}__{name}")
    return next((c for c in candidates if c.is_dir()), None)


def _split_files(folder: Path, split: str) -> list[Path]:
    """The files of ``split`` in one configuration's folder (hub layout or save_to_disk)."""
    if (folder / "dataset_dict.json").is_file():
        return sorted((folder / split).glob("*.arrow")) if (folder / split).is_dir() else []
    for name in ALIASES.get(split, (split,)):
        for ext in BUILDERS:
            whole = folder / f"{name}{ext}"
            if whole.is_file():
                return [whole]
            shards = sorted(folder.glob(f"{name}-*{ext}"))
            if shards:
                return shards
    return []


@dataclass(frozen=True)
class CopyFiles:
    """Where a task's splits are in a local copy: ``data_files`` per split, one builder."""

    folder: Path  # the copy (for messages)
    builder: str | None  # json / parquet / arrow; None: hand ``folder`` to datasets as it is
    data_files: dict[str, list[str]]


def scored_split(cfg: dict[str, Any]) -> str | None:
    """The split lm-eval scores: ``test_split``, else ``validation_split``."""
    return cfg.get("test_split") or cfg.get("validation_split")


def find_copy_files(data_dir: Path, hub_id: str, config: str | None, cfg: dict[str, Any],
                    task: str) -> CopyFiles | None:
    """The files of ``task`` (merged YAML ``cfg``) in the local copy of ``hub_id``; None without a copy.

    Raises :class:`OkapiError` when the copy exists but lacks the scored split.
    """
    copy = copy_folder(data_dir, hub_id)
    if copy is None:
        return None
    splits = sorted({cfg[k] for k in SPLIT_KEYS if cfg.get(k)})
    folders = [copy / "data" / config, copy / config] if config else [copy / "data", copy]
    for folder in folders:
        found = {s: files for s in splits if (files := _split_files(folder, s))}
        if not found:
            continue
        if scored_split(cfg) not in found:
            raise OkapiError(f"the local copy {folder} has no {scored_split(cfg)!r} split, which lm-eval's "
                             f"{task} scores (found: {', '.join(sorted(found))})", where="lm_eval.data_dir",
                             hint=f"add {folder / (scored_split(cfg) or 'test')}.jsonl")
        builders = {BUILDERS[f.suffix] for files in found.values() for f in files}
        if len(builders) > 1:
            raise OkapiError(f"the splits in {folder} mix file types ({', '.join(sorted(builders))})",
                             where="lm_eval.data_dir", hint="keep one format per configuration")
        return CopyFiles(copy, builders.pop(), {s: [str(f.resolve()) for f in files] for s, files in found.items()})
    if (copy / "README.md").is_file():
        return CopyFiles(copy, None, {})
    where = folders[0]
    raise OkapiError(f"the local copy {copy} of {hub_id} has no files for {task}: expected "
                     f"{where / (scored_split(cfg) or 'test')}.jsonl (or .json / .parquet, or a "
                     "save_to_disk folder there)", where="lm_eval.data_dir",
                     hint="copy the hub dataset with its layout (data/<config>/<split>.jsonl) or save it "
                     "with datasets' save_to_disk into <copy>/<config>")


def copy_overrides(files: CopyFiles, cfg: dict[str, Any], cache_dir: Path) -> dict[str, Any]:
    """What a task YAML that includes the stock one sets to read the local copy instead of the hub."""
    if files.builder is None:  # a hub repository clone: datasets reads its card's configurations
        return {"dataset_path": str(files.folder), "dataset_kwargs": {"cache_dir": str(cache_dir)}}
    out: dict[str, Any] = {"dataset_path": files.builder, "dataset_name": None,
                           "dataset_kwargs": {"data_files": files.data_files, "cache_dir": str(cache_dir)}}
    scored = scored_split(cfg)
    for key in SPLIT_KEYS:
        split = cfg.get(key)
        if split and split not in files.data_files:
            # a missing few-shot pool: draw from the scored split (lm-eval leaves the item out)
            # (with no training or validation split either, lm-eval draws from the scored one)
            out[key] = scored if key == "fewshot_split" else None
    return out
