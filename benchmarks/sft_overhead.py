"""Overhead of okapi-kit's "sft" trainer over calling trl.SFTTrainer directly.

Both sides train the same model on the same prompt-completion records with the same
hyperparameters, load the model from its folder and save the result. Each run is a
fresh subprocess (so peak memory is per run), the two sides alternate, and the timer
covers loading, training and saving (not the interpreter start or the imports).

    python benchmarks/sft_overhead.py                       # tiny model, CPU
    python benchmarks/sft_overhead.py --device cuda --model /models/bloom-560m --max-steps 50
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import measure, report  # noqa: E402

LANGS = {"vi": "xin chào", "fr": "bonjour", "ru": "привет", "hi": "नमस्ते", "ar": "مرحبا", "zh": "你好"}


def make_records(n: int, seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        lang, hello = rng.choice(sorted(LANGS.items()))
        k = rng.randint(1, 6)
        out.append({"prompt": f"### Instruction:\nGreet person #{i} in {lang}, {k} times.\n\n### Response:\n",
                    "completion": " ".join([hello] * k) + f" ({i})"})
    return out


def shared_options(a: argparse.Namespace) -> dict:
    return dict(learning_rate=1e-4, max_steps=a.max_steps, batch_size=a.batch_size,
                gradient_accumulation_steps=1, max_length=a.max_length, warmup_ratio=0.1,
                lr_scheduler="cosine", weight_decay=0.0, max_grad_norm=1.0, save_steps=10**6,
                logging_steps=10, gradient_checkpointing=a.gradient_checkpointing, device=a.device)


def run_ours(a, records, out: Path) -> None:
    from okapi_kit import TrainJob
    from okapi_kit.plugins import registry

    cls = registry().get("trainer", "sft").cls
    cls(cls.Config(**shared_options(a))).train(
        TrainJob(model=a.model, output_dir=out / "model", work_dir=out / "work", records=records, seed=0))


def run_trl(a, records, out: Path) -> None:
    import torch
    import trl
    from datasets import Dataset
    from transformers import AutoTokenizer

    o = shared_options(a)
    use_cpu = a.device == "cpu" or not torch.cuda.is_available()
    bf16 = not use_cpu and torch.cuda.is_bf16_supported()
    args = trl.SFTConfig(
        output_dir=str(out / "work"), learning_rate=o["learning_rate"], max_steps=o["max_steps"],
        per_device_train_batch_size=o["batch_size"], gradient_accumulation_steps=1,
        max_length=o["max_length"], warmup_steps=o["warmup_ratio"], lr_scheduler_type="cosine",
        weight_decay=0.0, max_grad_norm=1.0, save_strategy="no", logging_steps=o["logging_steps"],
        activation_checkpointing=o["gradient_checkpointing"], seed=0, data_seed=0, report_to="none",
        disable_tqdm=True, use_cpu=use_cpu, bf16=bf16, fp16=False, completion_only_loss=True)
    tok = AutoTokenizer.from_pretrained(a.model)
    trainer = trl.SFTTrainer(model=a.model, args=args, train_dataset=Dataset.from_list(records),
                             processing_class=tok)
    trainer.train()
    trainer.save_model(str(out / "model"))


def child(a) -> None:
    """One measured run; prints a JSON line."""
    import datasets  # noqa: F401  (imports are not timed)
    import torch
    import transformers  # noqa: F401
    import trl  # noqa: F401

    if a.threads:
        torch.set_num_threads(a.threads)
    records = make_records(a.records)
    with tempfile.TemporaryDirectory() as tmp:
        fn = run_ours if a.child == "ours" else run_trl
        m = measure(lambda: fn(a, records, Path(tmp)))
    print(json.dumps({"wall_s": m.wall_s, "rss_mb": m.peak_rss_mb, "cuda_mb": m.peak_cuda_mb}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model folder (default: a tiny Llama written to a temp folder)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--records", type=int, default=300)
    p.add_argument("--max-steps", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--child", choices=["ours", "trl"], help=argparse.SUPPRESS)
    a = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if a.child:
        return child(a)

    with tempfile.TemporaryDirectory() as tmp:
        if a.model is None:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
            from okapi_kit_transformers.tiny import write_tiny_model
            from transformers.utils import logging as tf_logging

            tf_logging.disable_progress_bar()

            a.model = str(write_tiny_model(Path(tmp) / "tiny", hidden=64, layers=2, heads=4))
        results: dict[str, list[dict]] = {"ours": [], "trl": []}
        argv = [sys.executable, __file__, "--model", a.model, "--device", a.device, "--records", str(a.records),
                "--max-steps", str(a.max_steps), "--batch-size", str(a.batch_size),
                "--max-length", str(a.max_length), "--threads", str(a.threads)]
        argv += ["--gradient-checkpointing"] if a.gradient_checkpointing else []
        for i in range(a.repeats):
            for side in (("ours", "trl") if i % 2 == 0 else ("trl", "ours")):
                out = subprocess.run(argv + ["--child", side], capture_output=True, text=True)
                if out.returncode:
                    sys.exit(f"{side} run failed:\n{out.stderr[-3000:]}")
                results[side].append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(f"  run {i + 1} {side:<4} {results[side][-1]}", flush=True)

    def med(side: str, key: str) -> float:
        return statistics.median(r[key] for r in results[side])

    report("sft_overhead", "wall_s", med("ours", "wall_s"), med("trl", "wall_s"), "trl.SFTTrainer", "s")
    report("sft_overhead", "peak_rss_mb", med("ours", "rss_mb"), med("trl", "rss_mb"), "trl.SFTTrainer", "MB")
    if results["ours"][0]["cuda_mb"] is not None:
        report("sft_overhead", "peak_cuda_mb", med("ours", "cuda_mb"), med("trl", "cuda_mb"), "trl.SFTTrainer", "MB")


if __name__ == "__main__":
    main()
