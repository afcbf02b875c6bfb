"""What every TRL-backed trainer does around its TRL trainer: arguments, model, LoRA, resume, save.

Imported only inside ``train()``: it pulls in transformers (and torch) at import time.
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from typing import Any

from transformers import set_seed
from transformers.trainer_callback import PrinterCallback

from okapi_kit import OkapiError, TrainJob, TrainResult

from . import common, models
from .base import TRLTrainer
from .config import config_fields

ADAPTER = "adapter"  # the trained LoRA adapter, in the work folder


def is_main_process() -> bool:
    """Rank 0 of a ``torchrun`` / ``accelerate launch`` run, or the only process."""
    return int(os.environ.get("RANK", "0")) == 0


def arguments(comp: TRLTrainer, job: TrainJob):
    """The TRL config (a ``TrainingArguments``) of ``comp``: okapi-kit's options, then ``trl_args``."""
    config = comp.config
    module, name = config.trl_config.split(":")
    cls = getattr(importlib.import_module(module), name)
    fields = config_fields(config.trl_config)
    ours = {k: v for k, v in common.training_kwargs(config, job).items() if k in fields}
    ours.update(comp.method_args(job))
    clash = sorted(set(ours) & set(config.trl_args))
    if clash:  # validation refuses these; a trainer that sets more than it declares lands here
        raise OkapiError(f"trl_args sets {', '.join(clash)}, which trainer {comp.name!r} sets from its options",
                         where=f"trainer {comp.name}: trl_args", hint="remove them from trl_args")
    try:
        return cls(**ours, **config.trl_args)
    except (ValueError, TypeError) as exc:
        raise OkapiError(f"TRL refused the training arguments: {exc}", where=f"trainer {comp.name}",
                         hint="check trl_args and the options against TRL's documentation") from None


def run(comp: TRLTrainer, job: TrainJob) -> TrainResult:
    """Train ``comp`` on ``job`` (resuming from the work folder), save the model, report metrics."""
    from okapi_kit_transformers.loading import load_tokenizer
    from okapi_kit_transformers.tokens import TokenRule

    config = comp.config
    records = comp.check(job)
    tokenizer = load_tokenizer(job.model, trust_remote_code=job.trust_remote_code, padding_side="right")
    work_dir, output_dir = Path(job.work_dir), Path(job.output_dir)
    with common.quiet():
        train_set, held_out = comp.datasets(records, TokenRule.of(tokenizer), job)
        resume = prepare(comp, job, work_dir)
        callback = common.OkapiCallback(work_dir / common.METRICS, job.progress)
        args = arguments(comp, job)
        set_seed(job.seed)  # new heads (the reward model's score) and LoRA weights start the same for a seed
        model = models.load(job.model, comp.model_kind, config, trust_remote_code=job.trust_remote_code)
        if comp.model_kind == models.CLASSIFIER and model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id  # the score is read at the last non-pad token
        peft_config = models.lora_config(config.lora, comp.model_kind) if config.lora is not None else None
        trainer = comp.build(job=job, args=args, model=model, train_set=train_set, held_out=held_out,
                             tokenizer=tokenizer, peft_config=peft_config, callbacks=[callback])
        trainer.remove_callback(PrinterCallback)  # it prints every log dict to stdout
        if resume is not None:
            common.log.info("resuming %s from %s", comp.name, resume)
        trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
        comp.finish(trainer)
        save(comp, job, trainer, tokenizer)
    if is_main_process() and (work_dir / common.METRICS).is_file():
        shutil.copyfile(work_dir / common.METRICS, output_dir / common.METRICS)
    metrics = {**callback.last, **callback.evaluation, **callback.summary,
               "global_step": float(trainer.state.global_step)}
    return TrainResult(output_dir=output_dir, metrics=metrics)


def prepare(comp: TRLTrainer, job: TrainJob, work_dir: Path) -> Path | None:
    """The checkpoint to resume from; the main process stamps the work folder."""
    stamp = common.fingerprint(comp.name, job, comp.config)
    if is_main_process():
        return common.prepare_work_dir(work_dir, stamp)
    return common.last_checkpoint(work_dir / common.CHECKPOINTS)


def save(comp: TRLTrainer, job: TrainJob, trainer, tokenizer) -> None:
    """The final model (safetensors, LoRA merged in) and its tokenizer, written by the main process."""
    output_dir = Path(job.output_dir)
    if models.is_peft(trainer.model):
        adapter = Path(job.work_dir) / ADAPTER
        trainer.save_model(str(adapter))  # every process takes part (sharded weights are gathered)
        if trainer.is_world_process_zero():
            merged = models.merged(job.model, comp.model_kind, comp.config, adapter,
                                   trust_remote_code=job.trust_remote_code)
            _pad_and_cache(merged, tokenizer, comp.model_kind)
            merged.save_pretrained(str(output_dir))
    else:
        _pad_and_cache(trainer.model, tokenizer, comp.model_kind)
        trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero():
        output_dir.mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(str(output_dir))
        for leftover in ("training_args.bin",):
            (output_dir / leftover).unlink(missing_ok=True)


def _pad_and_cache(model: Any, tokenizer, kind: str) -> None:
    config = getattr(model, "config", None)
    if getattr(config, "use_cache", None) is False:  # TRL turns the KV cache off to train
        config.use_cache = True
    if kind == models.CLASSIFIER and config is not None and config.pad_token_id is None:
        config.pad_token_id = tokenizer.pad_token_id
