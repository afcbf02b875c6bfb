"""The task YAMLs of one evaluation (one language), written where lm-eval's TaskManager reads them.

Every YAML written *includes* a stock lm-eval YAML by absolute path and changes only
what it must: where the data come from (local flat files or a local copy of the hub
dataset) and the few-shot count the protocol asks for. Prompts, preprocessing, choices,
metrics and few-shot sampler stay lm-eval's own. An okapi task always gets one (at
least its name, including the stock per-language YAML); another task that needs no change
is read from its stock folder as it is.

``plan_run`` does every check and writes nothing (what ``validate`` runs); ``write_yamls``
writes the planned YAMLs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from okapi_kit import OkapiError

from .catalog import closure
from .local_copy import copy_overrides, find_copy_files
from .specs import TaskSpec, okapi_languages_hint, shots_for
from .tasks import find_flat, flat_overrides, read_task_yaml, stock_yaml, template_path


@dataclass
class RunPlan:
    """What one ``simple_evaluate`` call runs in one language."""

    names: list[str] = field(default_factory=list)  # top-level lm-eval names, in order
    specs: dict[str, TaskSpec] = field(default_factory=dict)  # lm-eval name -> its spec
    protocols: dict[str, str] = field(default_factory=dict)  # lm-eval name -> protocol name
    sources: dict[str, str] = field(default_factory=dict)  # lm-eval name -> where its data come from
    folders: set[Path] = field(default_factory=set)  # stock folders TaskManager must index
    yamls: dict[str, dict[str, Any]] = field(default_factory=dict)  # file stem -> YAML mapping


def _okapi(spec: TaskSpec, lang: str, data_dir: Path | None, shots: int | None, cache_dir: Path,
           plan: RunPlan) -> None:
    task = spec.okapi
    name = spec.lm_name(lang)
    stock = stock_yaml(task, lang)
    yaml: dict[str, Any]
    if data_dir is None:
        if stock is None:
            raise OkapiError(f"lm-eval has no okapi {task} task in {lang!r}", where="lm_eval.tasks",
                             hint=f"{okapi_languages_hint(task)}; for another language give data_dir "
                             f"with {task}_{lang}.jsonl (docs/plugins/lm_eval.md)")
        yaml, source = {"include": str(stock), "task": name}, f"hub {read_task_yaml(stock)['dataset_path']}"
    elif flat := find_flat(data_dir, task, lang):
        yaml = {"include": str(template_path(task)), "task": name, **flat_overrides(flat, cache_dir)}
        source = f"file {flat.eval_file}"
    else:
        files = None
        if stock is not None:
            cfg = read_task_yaml(stock)
            files = find_copy_files(data_dir, cfg["dataset_path"], cfg.get("dataset_name"), cfg, name)
        if files is None:
            stem = f"{task}_{lang}"
            hub = read_task_yaml(stock)["dataset_path"] if stock else f"alexandrainst/m_{task}"
            raise OkapiError(f"no {task} data for language {lang!r} in {data_dir}: expected {stem}.jsonl "
                             f"(or {stem}.json / {stem}.parquet), or a local copy of the hub dataset "
                             f"({hub}/data/{lang}/...)", where="lm_eval.data_dir",
                             hint=f"put {stem}.jsonl there (the schema of the hub dataset, see "
                             "docs/plugins/lm_eval.md), drop data_dir to read the hub, or drop the task")
        yaml = {"include": str(stock), "task": name, **copy_overrides(files, cfg, cache_dir)}
        source = f"local copy {files.folder}"
    if shots is not None:
        yaml["num_fewshot"] = shots
    plan.yamls[name] = yaml
    plan.sources[name] = source


def _named(spec: TaskSpec, data_dir: Path | None, shots: int | None, cache_dir: Path, plan: RunPlan) -> None:
    leaves, folders = closure(spec.name)
    plan.folders |= folders
    copies = []
    for leaf in leaves:
        overrides: dict[str, Any] = {}
        hub_id = leaf.cfg.get("dataset_path")
        if data_dir is not None and isinstance(hub_id, str):
            files = find_copy_files(data_dir, hub_id, leaf.cfg.get("dataset_name"), leaf.cfg, leaf.name)
            if files is not None:
                overrides.update(copy_overrides(files, leaf.cfg, cache_dir))
                copies.append(str(files.folder))
        if shots is not None:
            overrides["num_fewshot"] = shots
        if overrides and leaf.yaml_path is not None:
            plan.yamls[leaf.name] = {"include": str(leaf.yaml_path), "task": leaf.name, **overrides}
    plan.sources[spec.name] = f"local copy {sorted(set(copies))[0]}" if copies else "hub (stock task)"


def plan_run(specs: list[TaskSpec], lang: str, *, protocol: str, num_fewshot: dict[str, int] | None,
             data_dir: Path | None, cache_dir: Path) -> RunPlan:
    """Every check and every YAML for ``lang``; every problem found is raised together."""
    plan = RunPlan()
    problems: list[OkapiError] = []
    leaves_seen: dict[str, str] = {}
    for spec in specs:
        if not spec.runs_in(lang):
            continue
        name = spec.lm_name(lang)
        if name in plan.specs:
            continue  # listed twice (arc and arc_vi): scored once
        shots, protocol_name = shots_for(spec, protocol, num_fewshot)
        try:
            if spec.okapi:
                _okapi(spec, lang, data_dir, shots, cache_dir, plan)
            else:
                for leaf in closure(name)[0]:  # lm-eval refuses a task reached twice
                    if leaf.name in leaves_seen:
                        raise OkapiError(f"lm-eval task {leaf.name!r} is in both {leaves_seen[leaf.name]!r} and "
                                         f"{name!r}", where="lm_eval.tasks", hint="keep one of them")
                    leaves_seen[leaf.name] = name
                _named(spec, data_dir, shots, cache_dir, plan)
        except OkapiError as exc:
            problems.append(exc)
            continue
        plan.names.append(name)
        plan.specs[name] = spec
        plan.protocols[name] = protocol_name
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise OkapiError("; ".join(p.message for p in problems), where=problems[0].where, hint=problems[0].hint)
    return plan


def write_yamls(plan: RunPlan, out_dir: Path) -> None:
    """One ``<name>.yaml`` per planned YAML in ``out_dir`` (emptied first; JSON is valid YAML)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.yaml"):
        old.unlink()
    for stem, mapping in plan.yamls.items():
        (out_dir / f"{stem}.yaml").write_text(json.dumps(mapping, indent=2) + "\n", encoding="utf-8")

