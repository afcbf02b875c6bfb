"""Shared machinery of the TRL trainers: records, arguments, metrics, checkpoints.

Imported only inside ``train()``: it pulls in transformers (and torch) at import time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from okapi_kit import OkapiError, TrainJob
from okapi_kit.records import refuse_other_job, trim_metrics

from .config import TrainConfig

log = logging.getLogger("okapi_kit.trl")

METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
FINGERPRINT = "job.json"
# Options that may change between an interrupted run and its resumption.
_RESUMABLE = {"save_steps", "save_total_limit", "logging_steps"}
_CKPT = re.compile(r"^checkpoint-(\d+)$")


def check_records(records: list[dict[str, Any]], keys: tuple[str, ...], trainer: str) -> list[dict[str, str]]:
    """The records reduced to ``keys``, each a string; an OkapiError names the first bad one."""
    if not records:
        raise OkapiError(f"trainer {trainer!r} got no training records", hint="check the stage's input data")
    out = []
    for i, rec in enumerate(records):
        missing = [k for k in keys if not isinstance(rec.get(k), str)]
        if missing:
            raise OkapiError(f"record {i} lacks string field(s) {', '.join(missing)}",
                             where=f"trainer {trainer}",
                             hint=f"each record needs {', '.join(repr(k) for k in keys)}")
        out.append({k: rec[k] for k in keys})
    return out


def fingerprint(trainer: str, job: TrainJob, config: TrainConfig) -> dict[str, Any]:
    """What a checkpoint in the work folder must agree with to be resumed."""
    digest = hashlib.sha256(json.dumps(job.records, sort_keys=True, default=str).encode()).hexdigest()
    return {"trainer": trainer, "model": job.model, "reference_model": job.reference_model,
            "seed": job.seed, "records": digest,
            "config": config.model_dump(mode="json", exclude=_RESUMABLE)}


def last_checkpoint(folder: Path) -> Path | None:
    """The complete ``checkpoint-N`` folder with the highest N (one with its trainer state)."""
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir()
             if (m := _CKPT.match(p.name)) and (p / "trainer_state.json").is_file()]
    return max(found)[1] if found else None


def prepare_work_dir(work_dir: Path, stamp: dict[str, Any]) -> Path | None:
    """Create the work folder; return the checkpoint to resume from, if any.

    Refuses to resume checkpoints written for a different job (model, data, options).
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    stamp_file = work_dir / FINGERPRINT
    resume = last_checkpoint(work_dir / CHECKPOINTS)
    if resume is not None:
        refuse_other_job(stamp_file, stamp)
    stamp_file.write_text(json.dumps(stamp, indent=1))
    step = int(_CKPT.match(resume.name).group(1)) if resume is not None else 0
    trim_metrics(work_dir / METRICS, step)
    return resume




def resolve_device(config: TrainConfig) -> dict[str, bool]:
    """``use_cpu``, ``bf16`` and ``fp16`` training arguments for the configured device and precision."""
    from okapi_kit_transformers.device import training_precision

    use_cpu, precision = training_precision(config.device, config.precision)
    return {"use_cpu": use_cpu, "bf16": precision == "bf16", "fp16": precision == "fp16"}


def _checkpointing_arg() -> str:
    """transformers 5.2x renamed gradient_checkpointing (TRL still sets the old name, which warns)."""
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


def training_kwargs(config: TrainConfig, job: TrainJob) -> dict[str, Any]:
    """Keyword arguments shared by every TRL ``*Config`` (a ``TrainingArguments`` subclass)."""
    return {
        "output_dir": str(Path(job.work_dir) / CHECKPOINTS),
        "learning_rate": config.learning_rate,
        "num_train_epochs": config.num_epochs,
        "max_steps": config.max_steps or -1,
        "per_device_train_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "max_length": config.max_length,
        "warmup_steps": config.warmup_ratio,  # a float below 1 is a share of the steps
        "lr_scheduler_type": config.lr_scheduler,
        "weight_decay": config.weight_decay,
        "max_grad_norm": config.max_grad_norm,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_total_limit": config.save_total_limit,
        "logging_strategy": "steps",
        "logging_steps": config.logging_steps,
        _checkpointing_arg(): config.gradient_checkpointing,
        "seed": job.seed,
        "data_seed": job.seed,
        "report_to": "none",
        "disable_tqdm": True,
        "log_level": "warning",
        "trust_remote_code": job.trust_remote_code,
        **resolve_device(config),
    }


class OkapiCallback(TrainerCallback):
    """Appends each training or evaluation log as a JSON line (main process only) and reports
    progress after every step."""

    def __init__(self, metrics_path: Path, progress: Callable[[int, int], None] | None):
        self.metrics_path = metrics_path
        self.progress = progress
        self.last: dict[str, float] = {}
        self.evaluation: dict[str, float] = {}
        self.summary: dict[str, float] = {}
        self.written_step: int | None = None  # the step of the last line written

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None and state.is_world_process_zero:
            self.progress(state.global_step, state.max_steps)

    def on_log(self, args, state, control, logs=None, **kwargs):
        numbers = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, (int, float))}
        if "train_runtime" in numbers:  # the end-of-training summary, not a step
            self.summary = numbers
            return
        if any(k.startswith("eval_") for k in numbers):
            self.evaluation = numbers
        elif "loss" in numbers:
            self.last = numbers
        else:
            return
        if state.is_world_process_zero:
            line = {"step": state.global_step, **numbers}
            write_metrics(self.metrics_path, line, merge=state.global_step == self.written_step)
            self.written_step = state.global_step


def write_metrics(path: Path, line: dict[str, Any], *, merge: bool) -> None:
    """Append ``line``, or with ``merge`` fold it into the last line (an evaluation logged after
    its step's training figures): one line per step."""
    if merge:
        lines = path.read_text().splitlines()
        lines[-1] = json.dumps({**json.loads(lines[-1]), **line})
        path.write_text("".join(ln + "\n" for ln in lines))
    else:
        with path.open("a") as fh:
            fh.write(json.dumps(line) + "\n")


def _no_mtime_notice(record: logging.LogRecord) -> bool:
    return "mtime may not be reliable" not in record.getMessage()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No datasets or transformers progress bars while training (restored afterwards), and no
    deprecation notice that TRL causes and a user cannot act on."""
    from datasets.utils import logging as ds_logging
    from transformers.utils import logging as tf_logging

    switches = [(ds_logging.is_progress_bar_enabled(), ds_logging.enable_progress_bar),
                (tf_logging.is_progress_bar_enabled(), tf_logging.enable_progress_bar)]
    ds_logging.disable_progress_bar()
    tf_logging.disable_progress_bar()
    checkpoint_logger = logging.getLogger("transformers.trainer_utils")
    checkpoint_logger.addFilter(_no_mtime_notice)
    try:
        with warnings.catch_warnings():
            # TRL's DPOTrainer calls transformers' renamed is_gradient_checkpointing
            warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated",
                                    category=FutureWarning)
            yield
    finally:
        checkpoint_logger.removeFilter(_no_mtime_notice)
        for was_enabled, enable in switches:
            if was_enabled:
                enable()


