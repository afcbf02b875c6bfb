"""Overhead of okapi-kit's ``lm_eval`` evaluator over calling ``lm_eval.simple_evaluate`` directly,
and the cost of re-running an unchanged model through the pipeline.

1. The same model scored on the same okapi tasks (ARC, HellaSwag, MMLU in one language,
   synthetic items in the hub schema) by okapi-kit's evaluator and by lm-eval as a user
   would call it: a task YAML that includes the stock okapi template with local
   ``data_files``, ``TaskManager(include_path=..., include_defaults=False)``, ``HFLM`` and
   ``simple_evaluate`` (per-item samples kept on both sides, ``bootstrap_iters=1000``).
   Each run is a fresh subprocess; the sides alternate; the timer covers loading the
   model and evaluating (not the interpreter start or the imports). Medians of ``--repeats``
   of wall time and of the process's CPU time (user + system; with one torch thread it
   barely moves when other jobs share the machine, unlike wall time).
2. ``okapi-kit evaluate`` run twice on the same run folder: the second run must skip the
   unit (same fingerprint), so it loads no model; its wall time is the price of the check.

    python benchmarks/lm_eval_overhead.py                         # tiny Llama, CPU
    python benchmarks/lm_eval_overhead.py --device cuda --arch qwen2 --hidden 896 --layers 24 \\
        --items 1000 --batch-size 32                              # a 0.5B-parameter shape on a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import measure, report  # noqa: E402

TASKS = {"arc": "arc_vi", "hellaswag": "hellaswag_vi", "mmlu": "m_mmlu_vi"}
TEMPLATES = {"arc": "arc_multilingual/_arc_yaml", "hellaswag": "hellaswag_multilingual/_hellaswag_yaml",
             "mmlu": "mmlu_multilingual/_default_yaml"}
WORDS = ("nước cây nhà sông núi trời mưa nắng gió lửa đất đá cá chim hoa lá quả bánh cơm sách bút "
         "bàn ghế cửa đường xe tàu thuyền người trẻ già học làm chơi ăn uống ngủ đi về").split()


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make_data(folder: Path, items: int, seed: int = 0) -> Path:
    """Synthetic ``<task>_vi.jsonl`` files in the hub schemas, with few-shot pools for ARC and MMLU."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)

    def arc(i: int) -> dict:
        opts = [_words(rng, rng.randint(2, 5)) for _ in range(4)]
        return {"id": f"arc-{i}", "instruction": _words(rng, 12) + "?", "option_a": opts[0], "option_b": opts[1],
                "option_c": opts[2], "option_d": opts[3], "option_e": "", "answer": rng.choice("ABCD")}

    def hellaswag(i: int) -> dict:
        return {"ind": i, "activity_label": _words(rng, 2), "ctx_a": _words(rng, 10) + ".", "ctx_b": _words(rng, 3),
                "endings": [_words(rng, rng.randint(4, 8)) + "." for _ in range(4)], "label": str(rng.randrange(4))}

    def mmlu(i: int) -> dict:
        opts = [_words(rng, rng.randint(1, 3)) for _ in range(4)]
        return {"id": f"mmlu-{i}", "instruction": _words(rng, 14) + "?", "option_a": opts[0], "option_b": opts[1],
                "option_c": opts[2], "option_d": opts[3], "answer": rng.choice("ABCD")}

    for task, row in (("arc", arc), ("hellaswag", hellaswag), ("mmlu", mmlu)):
        (folder / f"{task}_vi.jsonl").write_text(
            "".join(json.dumps(row(i), ensure_ascii=False) + "\n" for i in range(items)), encoding="utf-8")
        if task != "hellaswag":
            (folder / f"{task}_vi.train.jsonl").write_text(
                "".join(json.dumps(row(10_000 + i), ensure_ascii=False) + "\n" for i in range(30)), encoding="utf-8")
    return folder


def shots(a: argparse.Namespace) -> dict[str, int]:
    return {"arc": 25, "hellaswag": 0, "mmlu": 25} if a.protocol == "okapi" else {t: 0 for t in TASKS}


def run_ours(a: argparse.Namespace, work: Path) -> list:
    from okapi_kit_lm_eval import LmEvalEvaluator

    from okapi_kit import EvalTarget

    cfg = LmEvalEvaluator.Config(data_dir=a.data, tasks=a.tasks, protocol=a.protocol, batch_size=a.batch_size,
                                 device=a.device, limit=a.limit)
    return LmEvalEvaluator(cfg).evaluate(EvalTarget(model=a.model, label="bench", language="vi", work_dir=work))


def run_lm_eval(a: argparse.Namespace, work: Path) -> dict:
    """What a user writes to score the same local files with lm-eval alone."""
    import lm_eval
    import torch
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    okapi = Path(lm_eval.__file__).parent / "tasks" / "okapi"
    task_dir = work / "tasks"
    task_dir.mkdir(parents=True)
    for task in a.tasks:
        data = {"test": [str(a.data / f"{task}_vi.jsonl")]}
        train = a.data / f"{task}_vi.train.jsonl"
        if train.exists():
            data["train"] = [str(train)]
        yaml = {"include": str(okapi / TEMPLATES[task]), "task": TASKS[task], "tag": [], "dataset_path": "json",
                "dataset_name": None, "dataset_kwargs": {"data_files": data, "cache_dir": str(work / "cache")},
                "training_split": "train" if "train" in data else None, "validation_split": None,
                "test_split": "test", "fewshot_split": "train" if "train" in data else "test",
                "num_fewshot": shots(a)[task]}
        (task_dir / f"{TASKS[task]}.yaml").write_text(json.dumps(yaml), encoding="utf-8")
    device = a.device if a.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    lm = HFLM(pretrained=a.model, batch_size=a.batch_size, device=device)
    manager = TaskManager(include_path=str(task_dir), include_defaults=False)
    return lm_eval.simple_evaluate(model=lm, tasks=[TASKS[t] for t in a.tasks], task_manager=manager,
                                   limit=a.limit, bootstrap_iters=1000, log_samples=True)


def child(a: argparse.Namespace) -> None:
    """One measured run in this fresh process; prints a JSON line."""
    import datasets  # noqa: F401  (imports are not timed)
    import lm_eval  # noqa: F401
    import okapi_kit_lm_eval.evaluator  # noqa: F401
    import torch
    import transformers  # noqa: F401
    from lm_eval.models import huggingface  # noqa: F401

    if a.threads:
        torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        fn = run_ours if a.child == "ours" else run_lm_eval
        before = resource.getrusage(resource.RUSAGE_SELF)
        m = measure(lambda: fn(a, Path(tmp)))
        after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(json.dumps({"wall_s": m.wall_s, "cpu_s": cpu, "rss_mb": m.peak_rss_mb, "cuda_mb": m.peak_cuda_mb}))


def rerun(a: argparse.Namespace, tmp: Path) -> None:
    """``okapi-kit evaluate`` twice: the second run skips the unit and loads no model."""
    exe = str(Path(sys.executable).parent / "okapi-kit")
    options = tmp / "options.yaml"
    options.write_text(json.dumps({"lm_eval": {"data_dir": str(a.data), "tasks": a.tasks, "protocol": a.protocol,
                                               "batch_size": a.batch_size, "device": a.device}}), encoding="utf-8")
    cmd = [exe, "evaluate", "--model", a.model, "--label", "bench", "--languages", "vi", "--options", str(options),
           "--run-dir", str(tmp / "run"), "--db", str(tmp / "lb.sqlite"), "--quiet"]
    walls = []
    for _ in range(2):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env=os.environ, capture_output=True)
        walls.append(time.perf_counter() - start)
        manifest = json.loads((tmp / "run" / "manifest.json").read_text(encoding="utf-8"))["units"]
        unit = manifest["evaluate/lm_eval/bench/vi"]
        if len(walls) == 1:
            first_finished = unit["finished"]
            log = next((tmp / "run").rglob("lm_eval.log"))
            log_mtime = log.stat().st_mtime_ns
    skipped = unit["finished"] == first_finished and log.stat().st_mtime_ns == log_mtime
    print(f"  okapi-kit evaluate: first {walls[0]:.2f} s, rerun {walls[1]:.2f} s; "
          f"rerun skipped the unit (no model load): {skipped}", flush=True)
    report("lm_eval_rerun", "wall_s", walls[1], walls[0], "first_run", "s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model folder (default: a random tiny model written to a temp folder)")
    p.add_argument("--arch", default="llama", choices=["llama", "bloom", "qwen2"])
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--device", default="auto")
    p.add_argument("--items", type=int, default=60, help="synthetic items per task")
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--protocol", default="lm-eval", choices=["lm-eval", "okapi"])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--limit", type=int)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (0: torch's default; 1 keeps CPU time comparable on a shared machine)")
    p.add_argument("--no-rerun", action="store_true", help="skip the okapi-kit evaluate rerun check")
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--child", choices=["ours", "lm_eval"], help=argparse.SUPPRESS)
    a = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    if a.child:
        return child(a)

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        os.environ["HF_DATASETS_CACHE"] = str(tmp_path / "hf_cache")  # lm-eval's side caches here
        if a.model is None:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
            from okapi_kit_transformers.tiny import write_tiny_model

            a.model = str(write_tiny_model(tmp_path / "model", arch=a.arch, hidden=a.hidden, layers=a.layers,
                                           heads=a.heads))
        a.data = make_data(tmp_path / "data", a.items)
        argv = [sys.executable, __file__, "--model", a.model, "--device", a.device, "--data", str(a.data),
                "--protocol", a.protocol, "--batch-size", str(a.batch_size), "--threads", str(a.threads),
                "--tasks", *a.tasks] + (["--limit", str(a.limit)] if a.limit else [])
        results: dict[str, list[dict]] = {"ours": [], "lm_eval": []}
        for i in range(a.repeats):
            for side in (("ours", "lm_eval") if i % 2 == 0 else ("lm_eval", "ours")):
                out = subprocess.run(argv + ["--child", side], capture_output=True, text=True)
                if out.returncode:
                    sys.exit(f"{side} run failed:\n{out.stderr[-3000:]}")
                results[side].append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(f"  run {i + 1} {side:<8} {results[side][-1]}", flush=True)

        def med(side: str, key: str) -> float:
            return statistics.median(r[key] for r in results[side])

        peer = "lm_eval.simple_evaluate"
        report("lm_eval_overhead", "wall_s", med("ours", "wall_s"), med("lm_eval", "wall_s"), peer, "s")
        report("lm_eval_overhead", "cpu_s", med("ours", "cpu_s"), med("lm_eval", "cpu_s"), peer, "s")
        report("lm_eval_overhead", "peak_rss_mb", med("ours", "rss_mb"), med("lm_eval", "rss_mb"), peer, "MB")
        if results["ours"][0]["cuda_mb"] is not None:
            report("lm_eval_overhead", "peak_cuda_mb", med("ours", "cuda_mb"), med("lm_eval", "cuda_mb"), peer, "MB")
        if not a.no_rerun:
            rerun(a, tmp_path)


if __name__ == "__main__":
    main()
