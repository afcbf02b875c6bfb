"""okapi-kit's PPO with LoRA against the same run training all weights: peak memory (and step time).

With LoRA the reference policy is the same model with its adapters disabled (no second
copy of the weights), the optimiser holds state for the adapters only, and no gradient is
kept for the frozen weights. Both runs use the same model, reward model, prompts and PPO
settings (the defaults of the ``ppo`` trainer apart from the sizes below); each is a fresh
process. Memory is the peak RSS (and its rise over the RSS after imports) or, on a GPU,
torch.cuda.max_memory_allocated; ``ratio`` is LoRA / full.

    python benchmarks/ppo_lora_memory.py --shape medium          # CPU
    python benchmarks/ppo_lora_memory.py --shape 0.5b --device cuda --batch-size 32 --precision bf16
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
from ppo_vs_trl112 import prepare_okapi, run_okapi  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    rs.common_args(p, steps=4, batch=8, length=16)
    p.set_defaults(shape="medium")
    p.add_argument("--ppo-epochs", type=int, default=4)
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--critic", default="head", choices=["head", "reward_model"])
    a = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if a.child:
        rs.child_measure(run_okapi, json.loads(Path(a.spec).read_text()), prepare_okapi)
        return

    from transformers.utils import logging as tf_logging

    tf_logging.disable_progress_bar()
    base = dict(steps=a.steps, batch_size=a.batch_size, micro_batch_size=a.batch_size, ppo_epochs=a.ppo_epochs,
                response_length=a.response_length, device=a.device, gradient_checkpointing=a.gradient_checkpointing,
                precision=a.precision, threads=a.threads)
    variants = {"full": {"okapi": {"critic": a.critic}},
                "lora": {"okapi": {"critic": a.critic, "lora": True, "lora_r": a.lora_r}}}
    side = rs.Side("okapi-kit", sys.executable)
    with tempfile.TemporaryDirectory() as tmp:
        base.update(rs.write_models(Path(tmp), a.shape), prompts=rs.prompts(a.steps * a.batch_size))
        results: dict[str, list[dict]] = {name: [] for name in variants}
        for i in range(a.repeats):
            for name in (("full", "lora") if i % 2 == 0 else ("lora", "full")):
                r = rs.run_child(__file__, side, "okapi", {**base, **variants[name]}, timeout=a.timeout)
                results[name].append(r)
                print(f"  run {i + 1} {name:<5} " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                         for k, v in r.items()), flush=True)
    lora, full = results["lora"], results["full"]
    print(f"okapi-kit = PPO with LoRA (r={a.lora_r}), full = the same run training every weight")
    for key, unit in (("rss_peak_mb", "MB"), ("rss_rise_mb", "MB"), ("cuda_peak_mb", "MB"), ("step_s", "s")):
        if rs.median_of(full, key) is not None:
            report("ppo_lora", key, rs.median_of(lora, key), rs.median_of(full, key), "full", unit)


if __name__ == "__main__":
    main()
