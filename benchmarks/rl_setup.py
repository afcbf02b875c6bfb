"""What the RL benchmarks share: model shapes, models with random weights, prompts, the
timing callback, the peer's virtual environment and the child-process protocol.

Imports nothing of okapi-kit: the peer's side runs in a virtual environment without it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import _rss_mb  # noqa: E402

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]

# Model shapes (a Qwen2 architecture, random weights). 0.5b is Qwen2-0.5B's shape and vocabulary size.
SHAPES: dict[str, dict[str, int]] = {
    "tiny": dict(hidden=64, layers=2, heads=4, kv_heads=4, intermediate=128, vocab=0),
    "small": dict(hidden=256, layers=4, heads=4, kv_heads=4, intermediate=688, vocab=8192),
    "medium": dict(hidden=512, layers=8, heads=8, kv_heads=8, intermediate=1376, vocab=32000),
    "0.5b": dict(hidden=896, layers=24, heads=14, kv_heads=2, intermediate=4864, vocab=151936),
}


def byte_tokenizer(vocab_size: int = 0):
    """A byte-level BPE tokenizer with no merges (one token per UTF-8 byte), padded with
    never-produced filler tokens up to ``vocab_size`` so that a model of a real vocabulary
    size can be driven by it (fillers decode to bytes, like any sampled token)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    for symbol in alphabet:
        vocab[symbol] = len(vocab)
    for a in alphabet:  # two- then three-symbol fillers, as many as needed
        for b in alphabet:
            if len(vocab) >= vocab_size:
                break
            vocab[a + b] = len(vocab)
    i = 0
    while len(vocab) < vocab_size:
        a, b, c = alphabet[i % 256], alphabet[(i // 256) % 256], alphabet[(i // 65536) % 256]
        vocab.setdefault(a + b + c, len(vocab))
        i += 1
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", model_max_length=4096)


def write_models(folder: Path, shape: str, seed: int = 0) -> dict[str, str]:
    """A policy (causal LM) and a reward model (sequence classifier, one output) of ``shape``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, Qwen2Config

    s = SHAPES[shape]
    tok = byte_tokenizer(s["vocab"])
    config = Qwen2Config(vocab_size=len(tok), hidden_size=s["hidden"], intermediate_size=s["intermediate"],
                         num_hidden_layers=s["layers"], num_attention_heads=s["heads"],
                         num_key_value_heads=s["kv_heads"], max_position_embeddings=2048, tie_word_embeddings=True,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    paths = {}
    for name, cls, extra in (("policy", AutoModelForCausalLM, {}),
                             ("reward", AutoModelForSequenceClassification, {"num_labels": 1})):
        torch.manual_seed(seed)
        cfg = Qwen2Config(**{**config.to_dict(), **extra})
        model = cls.from_config(cfg)
        if name == "policy":
            model.generation_config.pad_token_id = tok.pad_token_id
            model.generation_config.eos_token_id = tok.eos_token_id
        out = folder / name
        model.save_pretrained(out, safe_serialization=True)
        tok.save_pretrained(out)
        paths[name] = str(out)
    return paths


def prompts(n: int, seed: int = 0) -> list[str]:
    """Short instruction-like prompts of varied length (so that left padding matters)."""
    import random

    rng = random.Random(seed)
    topics = ["rivers", "bread", "trains", "rain", "music", "stars", "tea", "cities", "birds", "maths"]
    return [f"Question {i}: say something about {rng.choice(topics)}" + "!" * rng.randint(0, 12) + "\nAnswer:"
            for i in range(n)]


class StepClock:
    """Wall-clock time of every step end; step time = median interval after the first step
    (the first one carries warm-up: allocations, kernel selection, caches)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.ends: list[float] = []
        self.rss_after_load: float | None = None

    def tick(self, *_: Any) -> None:
        self.ends.append(time.perf_counter())

    def summary(self) -> dict[str, float]:
        gaps = [b - a for a, b in zip(self.ends, self.ends[1:])]
        return {"steps": len(self.ends), "step_s": statistics.median(gaps) if gaps else float("nan"),
                "first_step_s": self.ends[0] - self.start if self.ends else float("nan")}


def trl_step_callback(clock: StepClock):
    """A transformers TrainerCallback that ticks ``clock`` at every step end."""
    from transformers import TrainerCallback

    class _Tick(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            clock.tick()

    return _Tick()


@dataclass
class Side:
    """One side of a comparison: the interpreter that runs it and its name in the report."""

    name: str
    python: str


def run_child(script: str, side: Side, mode: str, spec: dict, *, timeout: float, env: dict | None = None) -> dict:
    """Run ``script --child MODE --spec FILE`` with ``side.python``; return its last JSON line."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(spec, fh)
    try:
        done = subprocess.run([side.python, script, "--child", mode, "--spec", fh.name], capture_output=True,
                              text=True, timeout=timeout, env={**os.environ, **(env or {})})
    finally:
        os.unlink(fh.name)
    if done.returncode:
        raise SystemExit(f"{side.name} ({mode}) failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_measure(run, spec: dict, prepare=None) -> dict:
    """Measure ``run(spec, clock)`` in this process: step times, peak RSS (and its rise over
    the baseline after ``prepare()``, which imports what the run would import lazily),
    peak CUDA memory. Prints and returns one JSON dict."""
    import threading

    import torch

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    if prepare is not None:
        prepare()
    cuda = torch.cuda.is_available() and spec.get("device") != "cpu"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    base = _rss_mb()
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], _rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    clock = StepClock()
    start = time.perf_counter()
    try:
        extra = run(spec, clock) or {}
    finally:
        done.set()
        sampler.join()
    peak[0] = max(peak[0], _rss_mb())
    result = {**clock.summary(), "total_s": time.perf_counter() - start, "rss_base_mb": base,
              "rss_peak_mb": peak[0], "rss_rise_mb": peak[0] - base,
              "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None, **extra}
    print(json.dumps(result), flush=True)
    return result


def ensure_venv(path: Path, requirements: list[str]) -> str:
    """The python of a virtual environment at ``path`` holding ``requirements``; created
    (pip, from the configured indexes) when missing or when its marker differs."""
    python = path / "bin" / "python"
    marker = path / "okapi-kit-bench.json"
    wanted = json.dumps(sorted(requirements))
    if python.is_file() and marker.is_file() and marker.read_text() == wanted:
        return str(python)
    print(f"creating {path} with {' '.join(requirements)} (once; minutes)", flush=True)
    if not python.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements], check=True)
    marker.write_text(wanted)
    return str(python)


def installed_version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def common_args(parser: argparse.ArgumentParser, *, steps: int = 6, batch: int = 8, length: int = 16) -> None:
    """Options every RL benchmark takes."""
    parser.add_argument("--shape", default="tiny", choices=sorted(SHAPES),
                        help="model shape, random weights (0.5b: Qwen2-0.5B's shape)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=steps, help="RL steps per run (the first one is not timed)")
    parser.add_argument("--batch-size", type=int, default=batch, help="prompts per step")
    parser.add_argument("--response-length", type=int, default=length, help="max new tokens per completion")
    parser.add_argument("--repeats", type=int, default=1, help="runs per side (medians reported)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (0: torch's default; 1 is steadiest on a shared machine)")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                        help="bf16: mixed precision on both sides (GPU)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per child run")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)


def median_of(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None
