"""okapi-kit's PPO against the last TRL release that had PPO (TRL 1.12, ``trl.experimental.ppo``).

Both sides train the same policy (random weights of one shape) against the same reward
model, on the same prompts, with the same PPO settings: prompts per step, response length,
PPO epochs, one optimiser step per epoch (no minibatches), KL coefficient 0.05, clip ranges
0.2, value coefficient 0.1, gamma 1, lambda 0.95, temperature 1, learning rate 3e-6, EOS
stops a completion. TRL 1.12 trains a separate value model started from the reward model
(InstructGPT); okapi-kit is measured with its default critic (a value head on the policy's
backbone, as trlx and Okapi) and, as the like-for-like case, with ``critic: reward_model``.

TRL 1.12 runs in a virtual environment the benchmark creates (once) with the same torch,
transformers, accelerate and datasets versions as okapi-kit's, so that only the trainer
differs. Each run is a fresh process; step time is the median time between step ends after
the first step; memory is the process's peak RSS (and its rise over the RSS after imports,
which is what the run itself adds) or, on a GPU, torch.cuda.max_memory_allocated.

    python benchmarks/ppo_vs_trl112.py                                # tiny shape, CPU
    python benchmarks/ppo_vs_trl112.py --shape small --steps 6
    python benchmarks/ppo_vs_trl112.py --shape 0.5b --device cuda --batch-size 32 --response-length 53 \\
        --precision bf16 --gradient-checkpointing --torch-spec "torch==2.13.0"
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import rl_setup as rs  # noqa: E402
from harness import report  # noqa: E402

DEFAULT_VENV = Path.home() / ".cache" / "okapi-kit-bench" / "trl112"
TRL_SPEC = "trl==1.12.0"
# The PPO settings both sides share (TRL 1.12 names -> okapi-kit names in okapi_options()).
PPO = dict(kl_coef=0.05, cliprange=0.2, cliprange_value=0.2, vf_coef=0.1, gamma=1.0, lam=0.95,
           temperature=1.0, learning_rate=3e-6)


# ---------------------------------------------------------------- the two sides (children)

def prepare_trl() -> None:
    """Imports the TRL run makes, done before the memory baseline is taken."""
    import transformers.models.qwen2.modeling_qwen2  # noqa: F401
    from trl.experimental.ppo import PPOTrainer  # noqa: F401


def prepare_okapi() -> None:
    """Imports the okapi-kit run makes, done before the memory baseline is taken."""
    import importlib

    import transformers.models.qwen2.modeling_qwen2  # noqa: F401

    from okapi_kit.plugins import registry

    cls = registry().get("trainer", "ppo").cls
    importlib.import_module(cls.__module__)
    for name in ("rollout", "loop", "losses", "ppo"):  # what train() imports, if present
        try:
            importlib.import_module(f"okapi_kit_rl.{name}")
        except ImportError:
            pass
    import peft  # noqa: F401


def run_trl(spec: dict, clock: rs.StepClock) -> dict:
    """TRL 1.12's experimental PPOTrainer, as its own example script calls it."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    tok = AutoTokenizer.from_pretrained(spec["policy"], padding_side="left")
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in spec["prompts"]]
    train, evaluation = Dataset.from_dict({"input_ids": ids}), Dataset.from_dict({"input_ids": ids[:2]})
    b, micro = spec["batch_size"], spec["micro_batch_size"]
    cpu = spec["device"] == "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        args = PPOConfig(
            output_dir=tmp, per_device_train_batch_size=micro, gradient_accumulation_steps=b // micro,
            num_mini_batches=1, num_ppo_epochs=spec["ppo_epochs"], total_episodes=spec["steps"] * b,
            response_length=spec["response_length"], stop_token="eos", local_rollout_forward_batch_size=b,
            num_sample_generations=0, lr_scheduler_type="linear", gradient_checkpointing=spec["gradient_checkpointing"],
            bf16=spec["precision"] == "bf16", fp16=False, use_cpu=cpu, save_strategy="no", report_to="none",
            logging_steps=1, disable_tqdm=True, seed=0, **PPO)
        dtype = dict(dtype=torch.float32)
        policy = AutoModelForCausalLM.from_pretrained(spec["policy"], **dtype)
        ref = AutoModelForCausalLM.from_pretrained(spec["policy"], **dtype)
        value = AutoModelForSequenceClassification.from_pretrained(spec["reward"], num_labels=1, **dtype)
        reward = AutoModelForSequenceClassification.from_pretrained(spec["reward"], num_labels=1, **dtype)
        trainer = PPOTrainer(args=args, processing_class=tok, model=policy, ref_model=ref, reward_model=reward,
                             value_model=value, train_dataset=train, eval_dataset=evaluation,
                             callbacks=[rs.trl_step_callback(clock)])
        trainer.train()
        scores = [h["objective/scores"] for h in trainer.state.log_history if "objective/scores" in h]
    return {"reward_first": scores[0] if scores else None, "reward_last": scores[-1] if scores else None}


def okapi_options(spec: dict) -> dict:
    """okapi-kit's ``ppo`` options for the shared settings."""
    return dict(max_steps=spec["steps"], batch_size=spec["batch_size"], micro_batch_size=spec["micro_batch_size"],
                ppo_epochs=spec["ppo_epochs"], mini_batch_size=None, max_new_tokens=spec["response_length"],
                temperature=PPO["temperature"], kl_coef=PPO["kl_coef"], clip_range=PPO["cliprange"],
                value_clip_range=PPO["cliprange_value"], vf_coef=PPO["vf_coef"], gamma=PPO["gamma"],
                lam=PPO["lam"], learning_rate=PPO["learning_rate"], lr_scheduler="linear",
                gradient_checkpointing=spec["gradient_checkpointing"], precision=spec["precision"],
                device=spec["device"], logging_steps=1, save_steps=10**6, **spec.get("okapi", {}))


def run_okapi(spec: dict, clock: rs.StepClock) -> dict:
    """okapi-kit's ``ppo`` trainer, as the pipeline calls it (reward: the reward_model source)."""
    import json

    from okapi_kit import TrainJob
    from okapi_kit.plugins import registry

    source = registry().get("reward_source", "reward_model").cls
    reward = source(source.Config(path=spec["reward"], device=spec["device"]))
    cls = registry().get("trainer", "ppo").cls
    with tempfile.TemporaryDirectory() as tmp:
        job = TrainJob(model=spec["policy"], output_dir=Path(tmp) / "out", work_dir=Path(tmp) / "work",
                       records=[{"prompt": p, "language": "en"} for p in spec["prompts"]], seed=0,
                       reward=reward, progress=clock.tick)
        cls(cls.Config(**okapi_options(spec))).train(job)
        lines = [json.loads(ln) for ln in (Path(tmp) / "out" / "metrics.jsonl").read_text().splitlines() if ln]
    rewards = [ln["reward"] for ln in lines if "reward" in ln]
    return {"reward_first": rewards[0] if rewards else None, "reward_last": rewards[-1] if rewards else None}


# ---------------------------------------------------------------- the parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    rs.common_args(p, steps=6, batch=8, length=16)
    p.add_argument("--micro-batch-size", type=int, default=0, help="sequences per forward pass (0: the batch)")
    p.add_argument("--ppo-epochs", type=int, default=4)
    p.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="virtual environment for TRL 1.12")
    p.add_argument("--torch-spec", default=None,
                   help="torch requirement for that environment (default: this torch's version)")
    p.add_argument("--critics", default="head,reward_model",
                   help="okapi-kit critics to measure, comma-separated: head, reward_model")
    p.add_argument("--skip-trl", action="store_true", help="measure okapi-kit only")
    a = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if a.child:
        import json

        spec = json.loads(Path(a.spec).read_text())
        if a.child == "trl":
            rs.child_measure(run_trl, spec, prepare_trl)
        else:
            rs.child_measure(run_okapi, spec, prepare_okapi)
        return

    from transformers.utils import logging as tf_logging

    tf_logging.disable_progress_bar()
    base = dict(steps=a.steps, batch_size=a.batch_size, micro_batch_size=a.micro_batch_size or a.batch_size,
                ppo_epochs=a.ppo_epochs, response_length=a.response_length, device=a.device,
                gradient_checkpointing=a.gradient_checkpointing, precision=a.precision, threads=a.threads)
    if base["batch_size"] % base["micro_batch_size"]:
        sys.exit("--batch-size must be a multiple of --micro-batch-size")
    torch_spec = a.torch_spec or f"torch=={rs.installed_version('torch').split('+')[0]}"
    reqs = [torch_spec, TRL_SPEC] + [f"{pkg}=={rs.installed_version(pkg)}"
                                     for pkg in ("transformers", "accelerate", "datasets", "peft")]
    sides = {"okapi": rs.Side("okapi-kit", sys.executable)}
    if not a.skip_trl:
        sides["trl"] = rs.Side("trl-1.12", rs.ensure_venv(a.venv, reqs))
    with tempfile.TemporaryDirectory() as tmp:
        base.update(rs.write_models(Path(tmp), a.shape), prompts=rs.prompts(a.steps * a.batch_size))
        variants = [("trl", {})] if not a.skip_trl else []
        variants += [(f"okapi:{c}", {"okapi": {"critic": c}}) for c in a.critics.split(",") if c]
        results: dict[str, list[dict]] = {name: [] for name, _ in variants}
        for i in range(a.repeats):
            for name, extra in (variants if i % 2 == 0 else variants[::-1]):
                side = sides[name.split(":")[0]]
                r = rs.run_child(__file__, side, name.split(":")[0], {**base, **extra}, timeout=a.timeout)
                results[name].append(r)
                print(f"  run {i + 1} {name:<20} " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                          for k, v in r.items()), flush=True)
    if a.skip_trl:
        return
    trl = results["trl"]
    for name, runs in results.items():
        if name == "trl":
            continue
        label = "ppo" if name == "okapi:head" else "ppo+rm-critic"
        report(label, "step_s", rs.median_of(runs, "step_s"), rs.median_of(trl, "step_s"), "trl-1.12", "s")
        report(label, "rss_peak_mb", rs.median_of(runs, "rss_peak_mb"), rs.median_of(trl, "rss_peak_mb"),
               "trl-1.12", "MB")
        report(label, "rss_rise_mb", rs.median_of(runs, "rss_rise_mb"), rs.median_of(trl, "rss_rise_mb"),
               "trl-1.12", "MB")
        if rs.median_of(trl, "cuda_peak_mb") is not None:
            report(label, "cuda_peak_mb", rs.median_of(runs, "cuda_peak_mb"), rs.median_of(trl, "cuda_peak_mb"),
                   "trl-1.12", "MB")


if __name__ == "__main__":
    main()
