"""Batch-size sweep of okapi-kit's ``lm_eval`` evaluator on two kinds of multiple-choice task.

- MMLU schema (``m_mmlu_vi``): one short prompt per item and four one-token choices
  (`` A`` .. `` D``), so lm-eval scores one sequence per item and reads four tokens of it.
- ARC schema (``arc_vi``): four multi-token choices per item, four sequences to score.

Each batch size runs in a fresh subprocess on the same synthetic items (hub schemas), the
model loaded once per run; the timer covers loading and evaluating. ``auto`` lets lm-eval
probe for the largest batch that fits (on a CPU it settles on its upper bound, 64).
Reported: wall time, CPU time, items per second, peak memory, and that every batch size
gave the same accuracy (batching must not change a score).

    python benchmarks/lm_eval_batch_sweep.py                         # tiny Llama, CPU
    python benchmarks/lm_eval_batch_sweep.py --device cuda --arch qwen2 --hidden 896 --layers 24 \\
        --items 2000 --batch-sizes 1 8 32 128 auto
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import measure  # noqa: E402
from lm_eval_overhead import make_data  # noqa: E402


def child(a: argparse.Namespace) -> None:
    import lm_eval  # noqa: F401  (imports are not timed)
    import torch
    from lm_eval.models import huggingface  # noqa: F401
    from okapi_kit_lm_eval import LmEvalEvaluator

    from okapi_kit import EvalTarget

    if a.threads:
        torch.set_num_threads(a.threads)
    batch = a.child if a.child == "auto" else int(a.child)
    cfg = LmEvalEvaluator.Config(data_dir=a.data, tasks=[a.task], batch_size=batch, device=a.device)
    with tempfile.TemporaryDirectory() as tmp:
        before = resource.getrusage(resource.RUSAGE_SELF)
        m = measure(lambda: LmEvalEvaluator(cfg).evaluate(
            EvalTarget(model=a.model, label="bench", language="vi", work_dir=Path(tmp))))
        after = resource.getrusage(resource.RUSAGE_SELF)
    acc = next(s.value for s in m.value if s.metric == "acc")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(json.dumps({"wall_s": m.wall_s, "cpu_s": cpu, "rss_mb": m.peak_rss_mb, "cuda_mb": m.peak_cuda_mb,
                      "acc": acc}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model folder (default: a random tiny model written to a temp folder)")
    p.add_argument("--arch", default="llama", choices=["llama", "bloom", "qwen2"])
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--device", default="auto")
    p.add_argument("--items", type=int, default=200, help="synthetic items per task")
    p.add_argument("--tasks", nargs="+", default=["mmlu", "arc"], choices=["mmlu", "arc"])
    p.add_argument("--batch-sizes", nargs="+", default=["1", "4", "16", "64", "auto"])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--task", help=argparse.SUPPRESS)
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    if a.child:
        return child(a)

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        if a.model is None:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
            from okapi_kit_transformers.tiny import write_tiny_model

            a.model = str(write_tiny_model(tmp_path / "model", arch=a.arch, hidden=a.hidden, layers=a.layers,
                                           heads=a.heads))
        data = make_data(tmp_path / "data", a.items)
        print(f"{'task':<6}{'batch':>6}{'wall s':>9}{'cpu s':>9}{'items/s':>9}{'peak MB':>9}{'acc':>8}")
        for task in a.tasks:
            accs = set()
            for batch in a.batch_sizes:
                argv = [sys.executable, __file__, "--model", a.model, "--device", a.device, "--data", str(data),
                        "--threads", str(a.threads), "--task", task, "--child", batch]
                out = subprocess.run(argv, capture_output=True, text=True)
                if out.returncode:
                    sys.exit(f"{task} batch {batch} failed:\n{out.stderr[-3000:]}")
                r = json.loads(out.stdout.strip().splitlines()[-1])
                accs.add(round(r["acc"], 9))
                mem = r["cuda_mb"] if r["cuda_mb"] is not None else r["rss_mb"]
                print(f"{task:<6}{batch:>6}{r['wall_s']:>9.2f}{r['cpu_s']:>9.2f}{a.items / r['wall_s']:>9.1f}"
                      f"{mem:>9.0f}{r['acc']:>8.3f}", flush=True)
            print(f"{task}: the same accuracy at every batch size: {len(accs) == 1}", flush=True)


if __name__ == "__main__":
    main()
