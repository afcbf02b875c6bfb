"""Checkpoints, resume and metrics of an RL run, in the job's work folder.

Layout::

    work_dir/job.json                       what the checkpoints belong to (refuses another job's)
    work_dir/metrics.jsonl                  one line per logged step
    work_dir/checkpoints/step-N/weights.safetensors   the trained parameters
                              /optimizer.pt          optimiser and scheduler state
                              /state.json            step, kl_coef, baseline ... (written last)

Under DeepSpeed or FSDP (``sharding.py``) the weights and optimiser state are split across
the processes: a checkpoint then holds ``accelerate/`` (accelerate's ``save_state``, files
from every process) and ``scheduler.pt`` in place of the weights and optimizer files.

A checkpoint is written into a hidden folder and renamed into place, so a run killed while
writing one leaves only complete checkpoints. Only the main process writes, except the
processes' own files in ``accelerate/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from okapi_kit.records import refuse_other_job, trim_metrics

METRICS = "metrics.jsonl"
STAMP = "job.json"
CHECKPOINTS = "checkpoints"
WEIGHTS, OPTIMIZER, STATE = "weights.safetensors", "optimizer.pt", "state.json"
ACCELERATE, SCHEDULER = "accelerate", "scheduler.pt"  # the sharded layout
_STEP = re.compile(r"^step-(\d+)$")
# Options that may change between an interrupted run and its resumption.
RESUMABLE = {"save_steps", "save_total_limit", "logging_steps"}


def job_stamp(trainer: str, job: Any, config: Any) -> dict[str, Any]:
    """What a checkpoint must agree with to be resumed: trainer, models, seed, records, options, reward."""
    digest = hashlib.sha256(json.dumps(job.records, sort_keys=True, default=str).encode()).hexdigest()
    reward = job.reward
    reward_id = None
    if reward is not None:
        reward_id = {"name": getattr(reward, "name", type(reward).__name__),
                     "options": reward.config.model_dump(mode="json") if getattr(reward, "config", None) else None}
    return {"trainer": trainer, "model": job.model, "reference_model": job.reference_model, "seed": job.seed,
            "records": digest, "reward": reward_id,
            "config": config.model_dump(mode="json", exclude=RESUMABLE)}


def checkpoints(work_dir: Path) -> list[tuple[int, Path]]:
    """The complete checkpoints (with their state file), oldest first."""
    folder = Path(work_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir()
             if (m := _STEP.match(p.name)) and (p / STATE).is_file()]
    return sorted(found)


def prepare(work_dir: Path, stamp: dict[str, Any], main: bool) -> Path | None:
    """The checkpoint to resume from, if any; refuses checkpoints of a different job."""
    work_dir = Path(work_dir)
    found = checkpoints(work_dir)
    stamp_file = work_dir / STAMP
    if found:
        refuse_other_job(stamp_file, stamp)
    resume = found[-1][1] if found else None
    if main:
        work_dir.mkdir(parents=True, exist_ok=True)
        stamp_file.write_text(json.dumps(stamp, indent=1))
        trim_metrics(work_dir / METRICS, found[-1][0] if found else 0)
    return resume




def partial(work_dir: Path, step: int) -> Path:
    """Where checkpoint ``step`` is written before it is renamed into place."""
    return Path(work_dir) / CHECKPOINTS / f".step-{step}.partial"


def begin(work_dir: Path, step: int) -> Path:
    """An empty partial folder for checkpoint ``step`` (main process)."""
    tmp = partial(work_dir, step)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def commit(work_dir: Path, step: int, state: dict[str, Any], keep: int | None) -> Path:
    """Write the state file (the mark of a complete checkpoint), rename the partial folder
    into place, then drop the oldest checkpoints beyond ``keep`` (main process)."""
    tmp, final = partial(work_dir, step), Path(work_dir) / CHECKPOINTS / f"step-{step}"
    (tmp / STATE).write_text(json.dumps({"step": step, **state}, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    if keep is not None:
        for _, old in checkpoints(work_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def save(work_dir: Path, step: int, weights: dict, optimizer_state: dict, state: dict[str, Any],
         keep: int | None) -> Path:
    """Write checkpoint ``step`` atomically, then drop the oldest beyond ``keep``."""
    import torch
    from safetensors.torch import save_file

    tmp = begin(work_dir, step)
    save_file({k: v.detach().contiguous().cpu() for k, v in weights.items()}, str(tmp / WEIGHTS))
    torch.save(optimizer_state, tmp / OPTIMIZER)
    return commit(work_dir, step, state, keep)


def is_sharded(folder: Path) -> bool:
    """Whether a checkpoint was written under DeepSpeed or FSDP (accelerate's layout)."""
    return (Path(folder) / ACCELERATE).is_dir()


def load_state(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / STATE).read_text())


def load(folder: Path) -> tuple[dict, dict, dict[str, Any]]:
    """(weights, optimiser state, state) of a checkpoint."""
    import torch
    from safetensors.torch import load_file

    weights = load_file(str(folder / WEIGHTS))
    optimizer_state = torch.load(folder / OPTIMIZER, map_location="cpu", weights_only=False)
    state = json.loads((folder / STATE).read_text())
    return weights, optimizer_state, state


class MetricsLog:
    """Averages each step's metrics over ``every`` steps and appends them to metrics.jsonl."""

    def __init__(self, path: Path, every: int, write: bool):
        self.path = Path(path)
        self.every = every
        self.write = write
        self.window: list[dict[str, float]] = []
        self.last: dict[str, float] = {}

    def add(self, step: int, metrics: dict[str, float], total: int) -> None:
        self.window.append(metrics)
        if step == 1 or step % self.every == 0 or step == total:
            keys = list(dict.fromkeys(k for m in self.window for k in m))
            line = {k: sum(m[k] for m in self.window if k in m) / sum(1 for m in self.window if k in m)
                    for k in keys}
            self.last = {"step": float(step), **line}
            self.window = []
            if self.write:
                with self.path.open("a") as fh:
                    fh.write(json.dumps({"step": step, **{k: round(v, 6) for k, v in line.items()}}) + "\n")
