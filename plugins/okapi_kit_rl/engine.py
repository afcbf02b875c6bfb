"""The shared machinery of the RL trainers: models, optimiser, the step loop, checkpoints, metrics.

A :class:`Session` holds what one run trains (policy, LoRA, value head or critic), the
reference, the optimiser and the generation backend, prepared by ``accelerate`` (DDP,
DeepSpeed or FSDP2 under ``accelerate launch``, as ``sharding.py`` describes; one process
otherwise). :func:`train_online` runs an
:class:`Algorithm` step after step: sample a batch with the rollout engine, update, log,
checkpoint. Only the main process writes files. Sampling is seeded per (seed, step,
process), so a resumed run samples exactly what the uninterrupted run would have.
"""

from __future__ import annotations

import contextlib
import math
import random
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from okapi_kit import OkapiError, TrainJob, TrainResult

from . import checkpoint, sharding
from .algorithm import Algorithm
from .losses import AdaptiveKLController
from .modules import (
    PolicyModule,
    add_lora,
    disable_dropout,
    enable_checkpointing,
    freeze,
    hf_model,
    lm_from_state,
    lm_logprobs,
    merged_lm,
    no_adapter,
    same_tokenizer,
    value_head,
)
from .rollout import Rollout, make_generator, rollout, rollout_stats


def make_accelerator(config):
    """An ``accelerate.Accelerator`` for the configured device and mixed precision."""
    from accelerate import Accelerator
    from okapi_kit_transformers.device import training_precision

    cpu, precision = training_precision(config.device, config.precision)
    return Accelerator(cpu=cpu, mixed_precision="no" if precision == "fp32" else precision)


def _eos_ids(tokenizer, lm) -> list[int]:
    """EOS of the tokenizer and of the model's generation config (chat models often have several)."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    extra = getattr(hf_model(lm).generation_config, "eos_token_id", None)
    for i in extra if isinstance(extra, list) else [extra]:
        if i is not None and i not in ids:
            ids.append(int(i))
    if not ids:
        raise OkapiError("the tokenizer has no EOS token: completions could never end",
                         hint="use a tokenizer with an eos_token")
    return ids


class Session:
    """The models, optimiser and generation backend of one RL run."""

    def __init__(self, job: TrainJob, config, *, online: bool = True, values: str | None = None,
                 critic_model: str | None = None):
        from okapi_kit_transformers.loading import load_causal_lm, load_tokenizer
        from okapi_kit_transformers.tokens import TokenRule

        self.job, self.config = job, config
        self.accelerator = make_accelerator(config)
        self.sharding = sharding.sharding_of(self.accelerator)
        self.device = self.accelerator.device
        self.main = self.accelerator.is_main_process
        self.compute_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(
            self.accelerator.mixed_precision, torch.float32)
        load = dict(trust_remote_code=job.trust_remote_code)
        if config.lora and job.reference_model not in (None, job.model):
            raise OkapiError("with lora: true the reference model is the trained model with its adapters "
                             f"disabled, so it cannot be {job.reference_model}", where="lora",
                             hint="train without LoRA to use another reference model")
        self.tokenizer = load_tokenizer(job.model, padding_side="left", **load)
        self.rule = TokenRule.of(self.tokenizer)
        self.pad_id = self.tokenizer.pad_token_id

        lm = load_causal_lm(job.model, dtype=torch.float32, **load)
        self._prepare_lm(lm)
        self.eos_ids = _eos_ids(self.tokenizer, lm)
        if config.lora:
            lm = add_lora(lm, config)
        head = critic = None
        if values == "head":
            head = value_head(lm)
        elif values == "reward_model":
            critic = self._load_critic(critic_model)
        module = PolicyModule(lm, head, critic)

        reference = None
        if not config.lora:  # with LoRA the reference is the same model with its adapters disabled
            reference = load_causal_lm(job.reference_model or job.model, dtype=self.compute_dtype, **load)
            self._prepare_lm(reference, train=False)

        policy_params = [p for p in lm.parameters() if p.requires_grad]
        value_params = [p for m in (head, critic) if m is not None for p in m.parameters() if p.requires_grad]
        groups = [{"params": policy_params}]
        if value_params:
            groups.append({"params": value_params,
                           "lr": getattr(config, "critic_learning_rate", None) or config.learning_rate})
        optimizer = torch.optim.AdamW(groups, lr=config.learning_rate, weight_decay=config.weight_decay)
        if self.sharding.kind == "deepspeed":
            text = hf_model(lm).config
            text = text.get_text_config() if hasattr(text, "get_text_config") else text
            sharding.fill_deepspeed_config(self.accelerator.state.deepspeed_plugin.deepspeed_config,
                                           micro_batch_size=config.micro_batch_size,
                                           processes=self.accelerator.num_processes,
                                           max_grad_norm=config.max_grad_norm,
                                           hidden_size=getattr(text, "hidden_size", None))
        self.model, self.optimizer = self.accelerator.prepare(module, optimizer)
        self.raw: PolicyModule = self.accelerator.unwrap_model(self.model)
        if self.sharding.kind == "fsdp":
            # FSDP2 sets itself up in the root module's first forward; generation, which comes
            # first, enters through the causal LM inside it
            with torch.no_grad():
                pad = torch.full((1, 2), self.pad_id, dtype=torch.long, device=self.device)
                self.raw(pad, torch.ones_like(pad), 1)
        self.reference = None
        if reference is not None:
            self.reference = sharding.prepare_frozen(self.accelerator, self.sharding, freeze(reference))
        self.scheduler = None
        self.reward = job.reward
        self.generator = make_generator(self) if online else None

    # -- setup -------------------------------------------------------------------------------

    def _prepare_lm(self, lm, train: bool = True) -> None:
        if self.config.attn_implementation:
            try:
                hf_model(lm).set_attn_implementation(self.config.attn_implementation)
            except (ValueError, ImportError) as exc:
                raise OkapiError(f"attention implementation {self.config.attn_implementation!r}: {exc}",
                                 where="attn_implementation") from None
        disable_dropout(lm)
        lm.eval()
        if train and self.config.gradient_checkpointing:
            enable_checkpointing(lm)

    def _load_critic(self, path: str | None):
        from okapi_kit_transformers.loading import load_sequence_classifier, load_tokenizer

        if path is None:
            path = getattr(getattr(self.job.reward, "config", None), "path", None)
        if path is None:
            raise OkapiError("critic: reward_model starts the critic from a reward model, but the reward "
                             "source is not one", where="critic",
                             hint="set critic_model to a reward model's path, or use critic: head")
        if not same_tokenizer(load_tokenizer(str(path)), self.tokenizer):
            raise OkapiError(f"the critic's model {path} has a different tokenizer from the policy",
                             where="critic_model", hint="use critic: head, or a reward model trained from the policy")
        critic = load_sequence_classifier(str(path), trust_remote_code=self.job.trust_remote_code).float()
        if critic.config.pad_token_id is None:
            critic.config.pad_token_id = self.pad_id
        self._prepare_lm(critic)
        return critic

    def schedule(self, total_updates: int) -> None:
        """The learning-rate schedule over ``total_updates`` optimiser steps."""
        from transformers import get_scheduler

        warmup = math.ceil(self.config.warmup_ratio * total_updates)
        self.scheduler = get_scheduler(self.config.lr_scheduler, self.optimizer, num_warmup_steps=warmup,
                                       num_training_steps=total_updates)

    # -- forward passes ----------------------------------------------------------------------

    def micro_batches(self, rows: Tensor | list[int], group: int = 1) -> list[Tensor]:
        """``rows`` in chunks of micro_batch_size, whole groups of ``group`` rows each."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        size = max(group, self.config.micro_batch_size // group * group)
        return [rows[i:i + size] for i in range(0, len(rows), size)]

    @torch.no_grad()
    def reference_logprobs(self, input_ids: Tensor, attention_mask: Tensor, width: int) -> Tensor:
        out = []
        for rows in self.micro_batches(range(input_ids.shape[0])):
            ids, mask = input_ids[rows], attention_mask[rows]
            with self.accelerator.autocast():
                if self.reference is None:
                    with no_adapter(self.raw.lm):  # through the root module, as FSDP2 needs
                        logps, _ = self.raw(ids, mask, width, self.config_temperature)
                else:
                    logps, _ = lm_logprobs(self.reference, ids, mask, width, self.config_temperature)
            out.append(logps.float())
        return torch.cat(out)

    @torch.no_grad()
    def sampling_logprobs(self, input_ids: Tensor, attention_mask: Tensor, width: int,
                          values: bool = False) -> tuple[Tensor, Tensor | None]:
        """The policy's log-probabilities (and values) of sampled sequences, without gradients."""
        logps, vals = [], []
        for rows in self.micro_batches(range(input_ids.shape[0])):
            with self.accelerator.autocast():
                lp, v = self.raw(input_ids[rows], attention_mask[rows], width, self.config_temperature, values)
            logps.append(lp.float())
            if v is not None:
                vals.append(v.float())
        return torch.cat(logps), (torch.cat(vals) if vals else None)

    @property
    def config_temperature(self) -> float:
        return getattr(self.config, "temperature", 1.0)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, width: int,
                values: bool = False) -> tuple[Tensor, Tensor | None]:
        """The training forward pass (through the DDP wrapper, with gradients)."""
        self.model.train(self.config.gradient_checkpointing)  # checkpointing acts in training mode only
        with self.accelerator.autocast():
            logps, vals = self.model(input_ids, attention_mask, width, self.config_temperature, values)
        return logps.float(), (vals.float() if vals is not None else None)

    def accumulate(self, last: bool):
        """Gradients of a micro-batch: synchronised across processes only on the last one.

        DeepSpeed is told where a mini-batch ends instead: its engine steps the optimiser
        there, in the last micro-batch's backward."""
        if self.sharding.kind == "deepspeed":
            self.model.set_gradient_accumulation_boundary(last)
            return contextlib.nullcontext()
        return contextlib.nullcontext() if last else self.accelerator.no_sync(self.model)

    def backward(self, loss: Tensor) -> None:
        if self.sharding.kind == "deepspeed":
            # the engine, not accelerator.backward: that one would step at every micro-batch
            self.model.backward(loss)
            self.model.step()  # clips and steps only at the boundary accumulate() set
            return
        self.accelerator.backward(loss)

    def update(self) -> float:
        """Clip, step the optimiser and the schedule; returns the gradient norm before clipping."""
        if self.sharding.kind == "deepspeed":
            norm = self.model.get_global_grad_norm()  # DeepSpeed clipped and stepped already
        else:
            norm = self.accelerator.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        if self.scheduler is not None:
            self.scheduler.step()
        if self.generator is not None:
            self.generator.sync(self.raw.lm)
        return _number(norm)

    def learning_rate(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def reduce(self, stats: dict[str, float]) -> dict[str, float]:
        """Means over the processes (each process sampled its own batch)."""
        if self.accelerator.num_processes == 1:
            return stats
        keys = sorted(stats)
        values = torch.tensor([stats[k] for k in keys], dtype=torch.float64, device=self.device)
        values = self.accelerator.reduce(values, reduction="mean")
        return dict(zip(keys, values.tolist()))

    # -- checkpoints and the final model -------------------------------------------------------

    def save_checkpoint(self, step: int, state: dict[str, Any]) -> None:
        if self.sharding.accelerate_checkpoints:
            self._save_sharded_checkpoint(step, state)
            return
        self.accelerator.wait_for_everyone()
        if self.main:
            optimizer_state = {"optimizer": self.optimizer.state_dict(),
                               "scheduler": self.scheduler.state_dict() if self.scheduler else None}
            checkpoint.save(self.job.work_dir, step, self.raw.trainable_state(), optimizer_state, state,
                            self.config.save_total_limit)
        self.accelerator.wait_for_everyone()

    def _save_sharded_checkpoint(self, step: int, state: dict[str, Any]) -> None:
        """DeepSpeed, FSDP: every process writes its shards (accelerate's save_state) into the
        partial folder the main process made; the main process completes it."""
        if self.main:
            checkpoint.begin(self.job.work_dir, step)
        self.accelerator.wait_for_everyone()
        tmp = checkpoint.partial(self.job.work_dir, step)
        self.accelerator.save_state(str(tmp / checkpoint.ACCELERATE))
        self.accelerator.wait_for_everyone()
        if self.main:
            torch.save({"scheduler": self.scheduler.state_dict() if self.scheduler else None},
                       tmp / checkpoint.SCHEDULER)
            checkpoint.commit(self.job.work_dir, step, state, self.config.save_total_limit)
        self.accelerator.wait_for_everyone()

    def restore(self, folder: Path) -> dict[str, Any]:
        if checkpoint.is_sharded(folder) != self.sharding.accelerate_checkpoints:
            written = "under DeepSpeed or FSDP" if checkpoint.is_sharded(folder) else "under DDP or in one process"
            raise OkapiError(f"the checkpoint {folder} was written {written}, unlike this run",
                             hint="resume with the set-up it was written with, or delete the work folder to "
                                  "start afresh")
        if self.sharding.accelerate_checkpoints:
            return self._restore_sharded(folder)
        weights, optimizer_state, state = checkpoint.load(folder)
        expected = set(self.raw.trainable_state())
        if set(weights) != expected:
            raise OkapiError(f"the checkpoint {folder} does not hold this model's trained parameters",
                             hint="delete the work folder to start afresh")
        self.raw.load_state_dict(weights, strict=False)
        self.optimizer.load_state_dict(optimizer_state["optimizer"])
        if self.scheduler is not None and optimizer_state.get("scheduler") is not None:
            self.scheduler.load_state_dict(optimizer_state["scheduler"])
        if self.generator is not None:
            self.generator.sync(self.raw.lm)
        return state

    def _restore_sharded(self, folder: Path) -> dict[str, Any]:
        self.accelerator.load_state(str(folder / checkpoint.ACCELERATE))
        saved = torch.load(folder / checkpoint.SCHEDULER, map_location="cpu", weights_only=False)
        if self.scheduler is not None and saved.get("scheduler") is not None:
            self.scheduler.load_state_dict(saved["scheduler"])
        if self.generator is not None:
            self.generator.sync(self.raw.lm)
        return checkpoint.load_state(folder)

    def loading_whole_models(self):
        """A context for loading models that are used as they are (a reward source's)."""
        return contextlib.nullcontext() if self.sharding.kind == "none" else sharding.whole_model_loading()

    def save_model(self, output_dir: Path) -> None:
        """The final policy (LoRA merged in, no value head) in safetensors, with its tokenizer.

        With sharded weights (ZeRO-3, FSDP2) every process first takes part in gathering them;
        the main process then rebuilds the whole model from them on the CPU."""
        state = None if self.sharding.whole_weights else sharding.full_state_dict(self.accelerator, self.model)
        self.accelerator.wait_for_everyone()
        if self.main:
            output_dir = Path(output_dir)
            output_dir.mkdir(parents=True, exist_ok=True)
            if state is None:
                lm = merged_lm(self.raw.lm)
            else:
                with sharding.whole_model_loading():
                    lm = lm_from_state(state, model=self.job.model, config=self.config,
                                       trust_remote_code=self.job.trust_remote_code)
            hf = hf_model(lm)
            hf.eval()
            if getattr(hf.config, "use_cache", None) is False:
                hf.config.use_cache = True
            hf.save_pretrained(str(output_dir), safe_serialization=True)
            self.tokenizer.padding_side = "right"  # left padding was for sampling; save as the TRL trainers do
            self.tokenizer.save_pretrained(str(output_dir))
        self.accelerator.wait_for_everyone()


def _number(norm: Any) -> float:
    """A gradient norm as a float: DeepSpeed may give None (no step yet) or a tensor, FSDP2 a
    DTensor (a shard of the answer until made whole)."""
    if norm is None:
        return math.nan
    full = getattr(norm, "full_tensor", None)
    if callable(full):
        norm = full()
    return float(norm)


def prompt_records(job: TrainJob, trainer: str) -> list[tuple[str, str]]:
    """(prompt, language) of each record; an OkapiError names the first bad one."""
    if not job.records:
        raise OkapiError(f"trainer {trainer!r} got no prompts", hint="check the stage's input data")
    default_lang = job.languages[0] if len(job.languages) == 1 else ""
    out = []
    for i, rec in enumerate(job.records):
        prompt = rec.get("prompt")
        if not isinstance(prompt, str):
            raise OkapiError(f"record {i} has no string field 'prompt'", where=f"trainer {trainer}",
                             hint="each record needs a 'prompt'")
        out.append((prompt, rec.get("language") or default_lang))
    return out


class Order:
    """Which records each step takes: a fresh seeded permutation per epoch, consumed in order;
    each process takes its own consecutive slice of a step's global batch."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed = n, seed
        self._perms: dict[int, list[int]] = {}

    def _at(self, position: int) -> int:
        epoch, i = divmod(position, self.n)
        if epoch not in self._perms:
            perm = list(range(self.n))
            random.Random(self.seed * 1_000_003 + epoch).shuffle(perm)
            self._perms = {epoch: perm}  # one epoch at a time is all a step needs (or two)
        return self._perms[epoch][i]

    def batch(self, step: int, size: int, processes: int, rank: int) -> list[int]:
        start = ((step - 1) * processes + rank) * size
        return [self._at(p) for p in range(start, start + size)]


def seed_step(seed: int, step: int, rank: int) -> None:
    """Seed sampling and shuffling for one step of one process (resume reproduces it)."""
    torch.manual_seed((seed * 1_000_003 + step * 7_919 + rank * 104_729) % (2**63))


def total_steps(config, n_records: int, processes: int) -> int:
    if config.max_steps:
        return config.max_steps
    return max(1, math.ceil(config.num_epochs * n_records / (config.batch_size * processes)))


def _resume(session: Session, algorithm: Algorithm, name: str, config, job: TrainJob) -> tuple[int, float | None]:
    """(the step to continue after, its kl_coef) from the last checkpoint of this job, if any."""
    stamp = checkpoint.job_stamp(name, job, config)
    folder = checkpoint.prepare(Path(job.work_dir), stamp, session.main)
    if folder is None:
        return 0, None
    state = session.restore(folder)
    algorithm.load_state_dict(state.get("algorithm") or {})
    return int(state["step"]), state.get("kl_coef")


def _finish(session: Session, job: TrainJob, log: checkpoint.MetricsLog, total: int, started: float) -> TrainResult:
    session.save_model(job.output_dir)
    work_metrics = Path(job.work_dir) / checkpoint.METRICS
    if session.main and work_metrics.is_file():
        shutil.copyfile(work_metrics, Path(job.output_dir) / checkpoint.METRICS)
    metrics = {**log.last, "global_step": float(total), "train_runtime": time.time() - started}
    return TrainResult(output_dir=Path(job.output_dir), metrics=metrics)


def train_online(name: str, job: TrainJob, config, algorithm: Algorithm) -> TrainResult:
    """The online loop shared by ppo, reinforce, rloo and copg."""
    started = time.time()
    records = prompt_records(job, name)
    if job.reward is None:
        raise OkapiError(f"trainer {name!r} learns from a reward, but none is given",
                         hint="set the alignment's reward (or train a reward model in the pipeline); "
                              "on the command line, --reward")
    session = Session(job, config, values=algorithm.values, critic_model=algorithm.critic_model)
    processes, rank = session.accelerator.num_processes, session.accelerator.process_index
    total = total_steps(config, len(records), processes)
    session.schedule(total * algorithm.updates_per_step(config.batch_size * algorithm.k))
    done, kl_coef = _resume(session, algorithm, name, config, job)
    kl = AdaptiveKLController(config.kl_coef if kl_coef is None else kl_coef,
                              config.kl_target if config.adaptive_kl else None, config.kl_horizon)
    log = checkpoint.MetricsLog(Path(job.work_dir) / checkpoint.METRICS, config.logging_steps, session.main)
    order = Order(len(records), job.seed)
    for step in range(done + 1, total + 1):
        tick = time.perf_counter()
        seed_step(job.seed, step, rank)
        batch = [records[i] for i in order.batch(step, config.batch_size, processes, rank)]
        ro = rollout(session, [p for p, _ in batch], [lang for _, lang in batch], algorithm.k,
                     policy=algorithm.needs_policy, values=algorithm.values is not None)
        stats = {**rollout_stats(ro), "kl_coef": kl.value}
        stats.update(algorithm.update(session, ro, kl.value))
        stats["lr"] = session.learning_rate()
        stats["step_time"] = time.perf_counter() - tick
        stats = session.reduce(stats)
        algorithm.finish_step(stats)
        kl.update(stats["kl"], len(ro) * processes)
        log.add(step, stats, total)
        if step % config.save_steps == 0 and step < total:
            session.save_checkpoint(step, {"kl_coef": kl.value, "algorithm": algorithm.state_dict()})
        if session.main and job.progress is not None:
            job.progress(step, total)
    return _finish(session, job, log, total, started)


def sequence_logprobs(token_logprobs: Tensor, mask: Tensor) -> Tensor:
    return (token_logprobs * mask).sum(-1)


def micro_rollouts(session: Session, ro: Rollout, rows: Tensor | list[int], group: int = 1):
    """(is_last, sub-rollout) per micro-batch of ``rows``."""
    chunks = session.micro_batches(rows, group)
    for i, chunk in enumerate(chunks):
        yield i == len(chunks) - 1, chunk, ro.take(chunk)



def train_offline(name: str, job: TrainJob, config, algorithm, pairs: list) -> TrainResult:
    """The loop of trainers that learn from a fixed dataset (copg_offline): batches of records in a
    seeded order, one optimiser step each, with the same checkpoints and metrics as online ones."""
    started = time.time()
    session = Session(job, config, online=False)
    items = algorithm.encode(session, pairs)
    processes, rank = session.accelerator.num_processes, session.accelerator.process_index
    total = total_steps(config, len(items), processes)
    session.schedule(total)
    done, _ = _resume(session, Algorithm(config), name, config, job)
    log = checkpoint.MetricsLog(Path(job.work_dir) / checkpoint.METRICS, config.logging_steps, session.main)
    order = Order(len(items), job.seed)
    for step in range(done + 1, total + 1):
        tick = time.perf_counter()
        seed_step(job.seed, step, rank)
        stats = algorithm.update(session, [items[i] for i in order.batch(step, config.batch_size, processes, rank)],
                                 config.kl_coef)
        stats.update(lr=session.learning_rate(), step_time=time.perf_counter() - tick)
        stats = session.reduce(stats)
        log.add(step, stats, total)
        if step % config.save_steps == 0 and step < total:
            session.save_checkpoint(step, {})
        if session.main and job.progress is not None:
            job.progress(step, total)
    return _finish(session, job, log, total, started)
