"""Helpers shared by the stage modules: component options as fingerprint input, resumable
chunked work, training a model into place, prompt formatting."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr

from ..components import Component, Trainer, TrainJob
from ..errors import OkapiError
from ..graph import Plan, UnitRun
from ..prompts import PromptFormatter
from ..records import JsonlAppender


def component_reads(plan: Plan, where: str) -> tuple[dict[str, Any], list[Path]]:
    """A component's validated options as fingerprint input, and the files they name.

    A file option enters the fingerprint by its content, not its path (moving a data folder
    re-runs nothing; editing a file re-runs what reads it). Secret options enter as a mask.
    See :func:`component_inputs` for components nested in the options.
    """
    return component_inputs(plan.get_component(where))


def component_inputs(comp: Component) -> tuple[dict[str, Any], list[Path]]:
    """:func:`component_reads` of a component instance.

    A component that holds other components (a transfer method its translator, an evaluator its
    reward source), created when its options are validated and kept in an option or a private
    attribute, reads what they read: their files (path options and ``input_files()``) count as
    its own, and a nested component in an option enters the reads by its validated options.
    """
    files: list[Path] = []

    def nested(value: Component) -> dict[str, Any]:
        reads, more = component_inputs(value)
        files.extend(more)
        return reads

    def walk(value: Any) -> Any:
        if isinstance(value, Component):
            return nested(value)
        if isinstance(value, BaseModel):
            out = {k: walk(getattr(value, k)) for k, f in type(value).model_fields.items() if _in_fingerprint(f)}
            # the options as written are already above; only the files of privately kept
            # components are added, so configs without nested components keep their fingerprints
            for private in (getattr(value, "__pydantic_private__", None) or {}).values():
                if isinstance(private, Component):
                    nested(private)
            return out
        if isinstance(value, Path):
            files.append(value)
            return "<file>"
        if isinstance(value, SecretStr | SecretBytes):
            return "<secret>"
        if isinstance(value, dict):
            return {str(k): walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        return value

    reads = {"component": comp.name, "options": walk(comp.config)}
    return reads, files + list(comp.input_files())


def _in_fingerprint(field: Any) -> bool:
    extra = field.json_schema_extra
    return not (isinstance(extra, dict) and extra.get("fingerprint") is False)


def chunked(run: UnitRun, items: list[Any], size: int, key: Callable[[Any], str],
            work: Callable[[list[Any]], list[dict[str, Any]]], *, ui: Any = None) -> dict[str, dict[str, Any]]:
    """Run ``work`` over chunks, appending each result row (with an ``id``) as it comes.

    A rerun skips rows already in the chunk file, which is named by the unit's fingerprint
    (a changed config never picks up stale rows). ``work`` returns only rows that succeeded;
    rows missing from its result are retried by the next run, never stored as done.
    """
    with JsonlAppender(run.partial) as app:
        progress = ui.progress(run.unit.key, len(items)) if ui is not None else None
        update = progress.__enter__() if progress is not None else (lambda done, total: None)
        try:
            for start in range(0, len(items), size):
                chunk = [x for x in items[start:start + size] if key(x) not in app.done]
                if chunk:
                    for row in work(chunk):
                        app.append(row)
                update(min(start + size, len(items)), len(items))
        finally:
            if progress is not None:
                progress.__exit__(None, None, None)
        return dict(app.done)


def chunk_size(component: Any) -> int:
    """Items per resumable chunk: enough to keep an API-backed component's concurrent
    requests busy (a chunk is one call), small enough that a crash loses little."""
    concurrency = getattr(getattr(component, "config", None), "concurrency", None)
    return max(16, 4 * concurrency) if isinstance(concurrency, int) else 16


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished folder into place; a stale one from an older fingerprint goes first.

    Under ``accelerate launch``, only the main process calls this (see ``train_model``)."""
    if final.exists():
        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(final)


def train_model(run: UnitRun, trainer: Trainer, *, model: str, records: list[dict[str, Any]],
                languages: list[str], ui: Any, reference_model: str | None = None,
                reward: Any = None) -> dict[str, Any]:
    """Train into a hidden ``.partial`` folder beside the target, then move it into place.

    Under ``accelerate launch`` every process trains; the main process alone prepares the
    folders and moves the model into place, each time once every process is ready."""
    from ..graph import processes

    processes.check_together(run.unit.key)
    main = processes.is_main_process()
    final = run.path(run.unit.produces[0])
    tmp = final.with_name(f".{final.name}.partial")
    cfg = run.plan.cfg
    job = TrainJob(model=model, output_dir=tmp, work_dir=run.work_dir, records=records, seed=cfg.seed,
                   languages=languages, trust_remote_code=cfg.trust_remote_code,
                   reference_model=reference_model, reward=reward)
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
        job.work_dir.mkdir(parents=True, exist_ok=True)
    processes.wait_for_everyone()  # no process reads the work folder before it is ready
    with ui.progress(f"{run.unit.key} ({trainer.name})", None) as update:
        job.progress = update
        result = trainer.train(job)
    processes.wait_for_everyone()  # no process still uses the partial or work folder
    if main:
        replace_dir(tmp, final)
        shutil.rmtree(job.work_dir, ignore_errors=True)  # checkpoints are not needed once the model is in place
    return {"records": len(records), **{k: round(v, 6) for k, v in result.metrics.items()
                                        if isinstance(v, int | float)}}


def prompt_formatter(plan: Plan, model: str) -> PromptFormatter:
    return PromptFormatter(plan.cfg.prompt_template, model, trust_remote_code=plan.cfg.trust_remote_code)


def no_records(what: str, where: str) -> OkapiError:
    return OkapiError(f"{what} is empty", where=where, hint="check the data this stage reads")


def usage_of(component: Any) -> dict[str, Any]:
    """Request counts and token usage of an API-backed component, for the stage summary."""
    usage = getattr(component, "usage", None)
    return {"requests": usage()} if callable(usage) else {}


def report_failures(run: UnitRun, failures: list[dict[str, Any]], what: str) -> None:
    """Write the failures file of this unit (or remove it) and fail the unit if there are any.

    The unit's finished items stay in its chunk file, so the next run retries only these.
    """
    import json

    from ..records import atomic_write_text

    path = run.plan.layout.failures(run.unit.key)
    if not failures:
        path.unlink(missing_ok=True)
        return
    atomic_write_text(path, "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in failures))
    examples = "; ".join(f"{f['id']}: {f['reason']}" for f in failures[:3])
    raise OkapiError(f"{len(failures)} {what} failed, e.g. {examples}", where=run.unit.key,
                     hint=f"the reasons are in {path}; the other items are kept, and a rerun retries "
                          "only the failed ones")
