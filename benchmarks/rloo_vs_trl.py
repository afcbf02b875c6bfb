"""okapi-kit's RLOO against TRL's RLOOTrainer (the TRL installed with okapi-kit, 1.16 here).

Both sides train the same policy (random weights of one shape) against the same reward
model (a sequence classifier, which each side loads itself from its folder), on the same
prompts: B prompts per step, k completions each, the same response length, KL coefficient
0.05 folded into the sequence reward (as Ahmadian et al. 2024), temperature 1, learning rate
1e-6, one optimiser step per batch of completions, no advantage normalisation. Each run is
a fresh process; step time is the median time between step ends after the first step;
memory is the peak RSS (and its rise over the RSS after imports) or, on a GPU,
torch.cuda.max_memory_allocated.

    python benchmarks/rloo_vs_trl.py                                   # tiny shape, CPU
    python benchmarks/rloo_vs_trl.py --shape 0.5b --device cuda --batch-size 16 --k 4 \\
        --response-length 64 --precision bf16 --gradient-checkpointing
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import rl_setup as rs  # noqa: E402
from harness import report  # noqa: E402

SHARED = dict(kl_coef=0.05, temperature=1.0, learning_rate=1e-6)


def prepare() -> None:
    """Imports both sides make lazily, done before the memory baseline is taken."""
    import importlib

    import peft  # noqa: F401
    import transformers.models.qwen2.modeling_qwen2  # noqa: F401
    from trl import RLOOTrainer  # noqa: F401

    from okapi_kit.plugins import registry

    importlib.import_module(registry().get("trainer", "rloo").cls.__module__)
    for name in ("engine", "rollout", "losses", "modules"):
        try:
            importlib.import_module(f"okapi_kit_rl.{name}")
        except ImportError:
            pass


def run_trl(spec: dict, clock: rs.StepClock) -> dict:
    """TRL's RLOOTrainer with the reward model as its reward function (a model path)."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import RLOOConfig, RLOOTrainer

    b, k, micro = spec["batch_size"], spec["k"], spec["micro_batch_size"]
    tok = AutoTokenizer.from_pretrained(spec["policy"], padding_side="left")
    with tempfile.TemporaryDirectory() as tmp:
        args = RLOOConfig(
            output_dir=tmp, max_steps=spec["steps"], per_device_train_batch_size=micro,
            gradient_accumulation_steps=b * k // micro, steps_per_generation=b * k // micro, num_generations=k,
            num_iterations=1, max_completion_length=spec["response_length"], temperature=SHARED["temperature"],
            top_k=0, top_p=1.0, beta=SHARED["kl_coef"], learning_rate=SHARED["learning_rate"],
            lr_scheduler_type="linear", warmup_steps=0, max_grad_norm=1.0, normalize_advantages=False,
            disable_dropout=True, gradient_checkpointing=spec["gradient_checkpointing"],
            bf16=spec["precision"] == "bf16", fp16=False, use_cpu=spec["device"] == "cpu", save_strategy="no",
            report_to="none", logging_steps=1, disable_tqdm=True, log_completions=False, seed=0,
            model_init_kwargs={"dtype": torch.float32})
        trainer = RLOOTrainer(model=spec["policy"], reward_funcs=spec["reward"], args=args,
                              train_dataset=Dataset.from_dict({"prompt": spec["prompts"]}), processing_class=tok,
                              callbacks=[rs.trl_step_callback(clock)])
        trainer.train()
        rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    return {"reward_first": rewards[0] if rewards else None, "reward_last": rewards[-1] if rewards else None}


def run_okapi(spec: dict, clock: rs.StepClock) -> dict:
    """okapi-kit's ``rloo`` trainer, as the pipeline calls it (reward: the reward_model source)."""
    from okapi_kit import TrainJob
    from okapi_kit.plugins import registry

    source = registry().get("reward_source", "reward_model").cls
    reward = source(source.Config(path=spec["reward"], device=spec["device"]))
    cls = registry().get("trainer", "rloo").cls
    options = dict(max_steps=spec["steps"], batch_size=spec["batch_size"], k=spec["k"],
                   micro_batch_size=spec["micro_batch_size"], max_new_tokens=spec["response_length"],
                   temperature=SHARED["temperature"], kl_coef=SHARED["kl_coef"],
                   learning_rate=SHARED["learning_rate"], lr_scheduler="linear", normalize_advantages=False,
                   gradient_checkpointing=spec["gradient_checkpointing"], precision=spec["precision"],
                   device=spec["device"], logging_steps=1, save_steps=10**6)
    with tempfile.TemporaryDirectory() as tmp:
        job = TrainJob(model=spec["policy"], output_dir=Path(tmp) / "out", work_dir=Path(tmp) / "work",
                       records=[{"prompt": p, "language": "en"} for p in spec["prompts"]], seed=0,
                       reward=reward, progress=clock.tick)
        cls(cls.Config(**options)).train(job)
        lines = [json.loads(ln) for ln in (Path(tmp) / "out" / "metrics.jsonl").read_text().splitlines() if ln]
    rewards = [ln["reward"] for ln in lines if "reward" in ln]
    return {"reward_first": rewards[0] if rewards else None, "reward_last": rewards[-1] if rewards else None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    rs.common_args(p, steps=6, batch=4, length=16)
    p.add_argument("--k", type=int, default=4, help="completions per prompt")
    p.add_argument("--micro-batch-size", type=int, default=0,
                   help="sequences per forward pass (0: all batch_size x k at once)")
    a = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if a.child:
        spec = json.loads(Path(a.spec).read_text())
        rs.child_measure(run_trl if a.child == "trl" else run_okapi, spec, prepare)
        return

    from transformers.utils import logging as tf_logging

    tf_logging.disable_progress_bar()
    sequences = a.batch_size * a.k
    micro = a.micro_batch_size or sequences
    if sequences % micro:
        sys.exit("--batch-size x --k must be a multiple of --micro-batch-size")
    base = dict(steps=a.steps, batch_size=a.batch_size, k=a.k, micro_batch_size=micro,
                response_length=a.response_length, device=a.device, gradient_checkpointing=a.gradient_checkpointing,
                precision=a.precision, threads=a.threads)
    peer = f"trl-{rs.installed_version('trl')}"
    sides = {"okapi": rs.Side("okapi-kit", sys.executable), "trl": rs.Side(peer, sys.executable)}
    with tempfile.TemporaryDirectory() as tmp:
        base.update(rs.write_models(Path(tmp), a.shape), prompts=rs.prompts(a.steps * a.batch_size))
        results: dict[str, list[dict]] = {"okapi": [], "trl": []}
        for i in range(a.repeats):
            for name in (("trl", "okapi") if i % 2 == 0 else ("okapi", "trl")):
                r = rs.run_child(__file__, sides[name], name, base, timeout=a.timeout)
                results[name].append(r)
                print(f"  run {i + 1} {name:<6} " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                          for k, v in r.items()), flush=True)
    ours, trl = results["okapi"], results["trl"]
    for key, unit in (("step_s", "s"), ("rss_peak_mb", "MB"), ("rss_rise_mb", "MB"), ("cuda_peak_mb", "MB")):
        if rs.median_of(trl, key) is not None:
            report("rloo", key, rs.median_of(ours, key), rs.median_of(trl, key), peer, unit)


if __name__ == "__main__":
    main()
