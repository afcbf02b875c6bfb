"""Trainers under two processes (DDP over gloo, on CPU): only rank 0 writes, the model is whole.

The test launches this very file with ``accelerate launch --config_file
docs/accelerate/ddp.yaml --num_processes 2`` (on a machine without GPUs: two CPU processes,
gloo); run as a script, it is the per-process driver: it builds a
TrainJob for each job of a spec, calls the trainer, and records every file-system write the
process makes under the job's folders through a Python audit hook (``open`` for writing,
``os.mkdir``, ``os.rename``, ``shutil.copyfile``...), one report per rank and job. Writes
made by native code (safetensors' and torch.save's own file writes) are not audited; the
files written around them (config.json, tokenizer files, metrics) are.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from okapi_kit_rl.vllm_backend import Environment, select_backend

from okapi_kit import OkapiError

ROOT = Path(__file__).resolve().parents[1]
ACCELERATE = ROOT / "docs" / "accelerate"
# Audit events that change the file system, and the argument positions holding their paths.
_WRITES = {"os.mkdir": (0,), "os.rename": (0, 1), "os.replace": (0, 1), "os.remove": (0,),
           "os.rmdir": (0,), "os.symlink": (1,), "os.link": (1,), "os.truncate": (0,),
           "os.chmod": (0,), "os.utime": (0,), "shutil.copyfile": (1,), "shutil.copytree": (1,),
           "shutil.rmtree": (0,), "shutil.move": (1,)}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_WATCH: list[tuple[str, list[str]]] = []  # (folder, log) pairs the hook reports to


# ---------------------------------------------------------------- the per-process driver

def _audit(event: str, args: tuple) -> None:
    """Append ``event path`` to the log of each watched folder that ``path`` lies in."""
    if not _WATCH:
        return
    if event == "open":
        path, mode, flags = (tuple(args) + (None, None, 0))[:3]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
            (mode is None and isinstance(flags, int) and bool(flags & _WRITE_FLAGS))
        paths = [path] if writing else []
    else:
        paths = [args[i] for i in _WRITES.get(event, ()) if i < len(args)]
    for path in paths:
        if isinstance(path, bytes):
            path = path.decode(errors="replace")
        if not isinstance(path, (str, os.PathLike)):
            continue  # a file descriptor
        full = os.path.abspath(os.fspath(path))
        for root, log in _WATCH:
            if full == root or full.startswith(root + os.sep):
                log.append(f"{event} {full}")


def drive(spec_file: str) -> None:
    """One process of the launch: run each job of the spec in turn (one launch amortises the
    start-up over the jobs) and write this rank's writes and facts per job as JSON."""
    import torch

    torch.set_num_threads(1)  # two processes on a small machine
    rank = int(os.environ.get("RANK", "0"))
    sys.addaudithook(_audit)
    from okapi_kit import TrainJob
    from okapi_kit.plugins import registry

    for spec in json.loads(Path(spec_file).read_text()):
        reward = None
        if spec.get("reward"):
            source = registry().get("reward_source", spec["reward"]["name"]).cls
            reward = source(source.Config(**spec["reward"].get("options", {})))
        cls = registry().get("trainer", spec["trainer"]).cls
        trainer = cls(cls.Config(**spec["options"]))
        job = TrainJob(model=spec["model"], output_dir=Path(spec["output"]), work_dir=Path(spec["work"]),
                       records=spec["records"], seed=0, reward=reward)
        writes: list[str] = []
        _WATCH[:] = [(str(Path(spec["output"]).resolve()), writes), (str(Path(spec["work"]).resolve()), writes)]
        try:
            result = trainer.train(job)
        finally:
            _WATCH.clear()
        dist = torch.distributed.is_available() and torch.distributed.is_initialized()
        report = {"rank": rank, "world_size": torch.distributed.get_world_size() if dist else 1,
                  "backend": torch.distributed.get_backend() if dist else None, "writes": writes,
                  "metrics": {k: v for k, v in (result.metrics or {}).items() if isinstance(v, (int, float))}}
        Path(spec["reports"], f"rank{rank}.json").write_text(json.dumps(report))


# ---------------------------------------------------------------- the test side

def _free_port() -> int:
    with socket.socket() as s:  # torch.distributed.run's static rendezvous does not take port 0
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(base: Path, jobs: dict[str, dict], *, timeout: float = 110) -> dict[str, dict]:
    """Run every job under ``accelerate launch`` with 2 CPU processes (DDP over gloo).

    Returns, per job name, its folders and the two ranks' reports (or the launch's error)."""
    specs, runs = [], {}
    for name, job in jobs.items():
        folder = base / name
        (folder / "ranks").mkdir(parents=True)
        specs.append({**job, "output": str(folder / "out"), "work": str(folder / "work"),
                      "reports": str(folder / "ranks")})
        runs[name] = {"out": folder / "out", "work": folder / "work", "reports": folder / "ranks"}
    (base / "spec.json").write_text(json.dumps(specs))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(base / "hf"),  # no user accelerate config "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "ACCELERATE_USE_CPU": "true", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins"), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    # The command docs/distributed.md gives, with the DDP config shipped there; on a machine
    # without GPUs it starts CPU processes, and accelerate picks the gloo backend.
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE / "ddp.yaml"),
           "--num_processes", "2", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), str(Path(__file__).resolve()), "--spec", str(base / "spec.json")]
    start = time.monotonic()
    # A session of its own, so that a timeout ends the workers too, not only the launcher.
    proc = subprocess.Popen(cmd, env=env, cwd=base, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
    elapsed = time.monotonic() - start
    for name, run in runs.items():
        reports = sorted((json.loads(p.read_text()) for p in run["reports"].glob("rank*.json")),
                         key=lambda r: r["rank"])
        run["ranks"] = reports
        if len(reports) != 2:
            run["error"] = (f"job {name}: reports from ranks {[r['rank'] for r in reports]} "
                            f"(launch exit {proc.returncode} after {elapsed:.0f} s):\n{output[-6000:]}")
    return runs


def check_run(run: dict, model: str) -> list[dict]:
    """The assertions every trainer must pass; returns its metrics lines."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    assert "error" not in run, run.get("error")
    out, ranks = run["out"].resolve(), run["ranks"]
    assert all(r["world_size"] == 2 and r["backend"] == "gloo" for r in ranks), ranks
    # Rank 1 wrote nothing in the model folder; in the work folder at most its own RNG state
    # (each rank checkpoints its own) and the folders for it.
    strays = [w for w in ranks[1]["writes"] if w.split(" ", 1)[1].startswith(str(out))
              or ("rng_state_1" not in w and not w.startswith("os.mkdir"))]
    assert not strays, "rank 1 wrote:\n" + "\n".join(strays)
    assert any(str(out) in w for w in ranks[0]["writes"]), "rank 0 wrote no output"
    # The model is complete: every tensor of the architecture is in its safetensors files.
    tensors: dict = {}
    for f in sorted(out.glob("*.safetensors")):
        tensors.update(load_file(str(f)))
    assert tensors, f"no safetensors in {sorted(p.name for p in out.iterdir())}"
    expected = set(AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).state_dict())
    tied = {"lm_head.weight"}  # the tiny models tie the output layer to the embeddings
    assert expected - tied <= set(tensors), f"missing tensors: {sorted(expected - tied - set(tensors))}"
    base = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).state_dict()
    moved = [k for k, v in base.items() if k in tensors and not torch.equal(v, tensors[k])]
    assert moved, "the saved weights equal the initial ones: training did not reach the output"
    assert (out / "tokenizer.json").is_file(), "no tokenizer saved with the model"
    # metrics.jsonl written once: one line per logged step, no step twice.
    lines = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    steps = [ln["step"] for ln in lines]
    assert steps and len(steps) == len(set(steps)), f"metric steps {steps}"
    return lines


# The RL trainers of the okapi_kit_rl plugin, tested when it is installed.
RL_TRAINERS = ("ppo", "rloo")


def rl_reward(prompts, completions, **kwargs) -> list[float]:
    """A programmatic reward for the RL jobs: the share of the letter 'a' in the completion, 0-10."""
    return [10.0 * c.count("a") / max(len(c), 1) for c in completions]


def _installed_trainers() -> set[str]:
    from okapi_kit.plugins import registry

    found = set()
    for name in ("sft", *RL_TRAINERS):
        try:
            registry().get("trainer", name)
            found.add(name)
        except OkapiError:
            pass
    return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[dict[str, dict], str]:
    """One launch of two processes running every trainer under test, one after the other."""
    from okapi_kit_transformers.tiny import write_tiny_model

    base = tmp_path_factory.mktemp("ddp")
    tiny = str(write_tiny_model(base / "tiny", hidden=32, layers=1, heads=2))
    common = dict(logging_steps=1, learning_rate=1e-3, gradient_checkpointing=False, device="cpu")
    sft_records = [{"prompt": f"Say {w} {i}: ", "completion": f"{w} {w} {w}"}
                   for i, w in enumerate(["xin chào", "bonjour", "hola", "ciao"] * 2)]
    jobs = {"sft": {"trainer": "sft", "model": tiny, "records": sft_records,
                    "options": dict(common, max_steps=2, batch_size=2, gradient_accumulation_steps=1,
                                    save_steps=1, warmup_ratio=0.0, lr_scheduler="constant", max_length=64)}}
    prompts = [{"prompt": f"Write {i}: ", "language": "en"} for i in range(16)]
    reward = {"name": "callable", "options": {"function": f"{Path(__file__).stem}:rl_reward"}}
    for name in sorted(_installed_trainers() & set(RL_TRAINERS)):
        jobs[name] = {"trainer": name, "model": tiny, "records": prompts, "reward": reward,
                      "options": dict(common, max_steps=2, batch_size=4, max_new_tokens=8, save_steps=1)}
    return launch(base, jobs), tiny


@pytest.mark.slow
def test_sft_two_processes(runs):
    results, tiny = runs
    lines = check_run(results["sft"], tiny)
    assert [ln["step"] for ln in lines] == [1, 2]
    # Two optimiser steps of 2 records per process and 2 processes: one epoch over 8 records.
    assert lines[-1]["epoch"] == pytest.approx(1.0)


@pytest.mark.slow
@pytest.mark.parametrize("trainer", RL_TRAINERS)
def test_rl_two_processes(runs, trainer):
    if trainer not in _installed_trainers():
        pytest.skip(f"trainer {trainer!r} is not installed (plugin okapi_kit_rl)")
    results, tiny = runs
    lines = check_run(results[trainer], tiny)
    assert [ln["step"] for ln in lines] == [1, 2]
    assert all("reward" in ln and "kl" in ln for ln in lines), lines
    assert list((results[trainer]["work"]).rglob("*.safetensors")), "no checkpoint at step 1"



@pytest.mark.parametrize(("name", "kind", "extra"), [
    ("ddp", "MULTI_GPU", {}),
    ("deepspeed_zero2", "DEEPSPEED", {"zero_stage": 2}),
    ("deepspeed_zero3", "DEEPSPEED", {"zero_stage": 3, "zero3_save_16bit_model": True}),
    ("fsdp", "FSDP", {"fsdp_version": 2, "fsdp_state_dict_type": "FULL_STATE_DICT"}),
])
def test_shipped_accelerate_configs(name, kind, extra):
    """Each config loads as accelerate's own, and every DeepSpeed/FSDP key in it is an option
    ``accelerate launch`` knows (a misspelt key would be ignored or refused at launch)."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    config = load_config_from_file(str(ACCELERATE / f"{name}.yaml"))
    assert config.distributed_type.value == kind
    nested = {**config.deepspeed_config, **config.fsdp_config}
    assert extra.items() <= nested.items()
    options = {action.dest for action in launch_command_parser()._actions}
    assert set(nested) <= options, sorted(set(nested) - options)


# ---------------------------------------------------------------- the generation backends
# (no GPU here: the choice of backend, the weights handed to vLLM, and the vLLM generator's
# handling of its outputs against a stand-in engine with vLLM's documented interface)

GPU_VLLM = Environment(vllm_installed=True, cuda=True, sharded=False)


@pytest.mark.parametrize(("requested", "env", "device", "chosen"), [
    ("transformers", GPU_VLLM, "auto", "transformers"),
    ("auto", GPU_VLLM, "auto", "vllm"),
    ("auto", GPU_VLLM, "cuda:1", "vllm"),
    ("auto", GPU_VLLM, "cpu", "transformers"),
    ("auto", Environment(vllm_installed=False, cuda=True, sharded=False), "auto", "transformers"),
    ("auto", Environment(vllm_installed=True, cuda=False, sharded=False), "auto", "transformers"),
    ("auto", Environment(vllm_installed=True, cuda=True, sharded=True), "auto", "transformers"),
    ("vllm", GPU_VLLM, "cuda", "vllm"),
])
def test_backend_choice(requested, env, device, chosen):
    assert select_backend(requested, env, device=device) == chosen


@pytest.mark.parametrize(("env", "device", "says"), [
    (Environment(vllm_installed=False, cuda=True, sharded=False), "auto", "vLLM is not installed"),
    (Environment(vllm_installed=True, cuda=False, sharded=False), "auto", "no CUDA GPU"),
    (Environment(vllm_installed=False, cuda=False, sharded=False), "auto", "vLLM is not installed and no CUDA"),
    (GPU_VLLM, "cpu", "the device is 'cpu'"),
    (Environment(vllm_installed=True, cuda=True, sharded=True), "auto", "ZeRO-3 or FSDP"),
])
def test_vllm_refused_with_reason(env, device, says):
    with pytest.raises(OkapiError) as info:
        select_backend("vllm", env, device=device)
    assert says in str(info.value) and info.value.hint


def test_unknown_backend():
    with pytest.raises(OkapiError, match="unknown generation backend 'vlm'"):
        select_backend("vlm", GPU_VLLM)


def test_make_generator_here(tiny_lm):
    """On this machine: transformers for auto; vllm refused unless vLLM and a GPU are here."""
    from okapi_kit_rl.rollout import HFGenerator
    from okapi_kit_rl.vllm_backend import environment, make_generator

    model, tok = tiny_lm
    settings = dict(pad_id=tok.pad_token_id, eos_ids=[tok.eos_token_id], max_new_tokens=4, temperature=1.0,
                    top_k=0, top_p=1.0)
    env = environment(model)
    if env.vllm_installed and env.cuda:
        pytest.skip("vLLM and a GPU are here: the choice is made in test_backend_choice")
    assert isinstance(make_generator(model, backend="auto", **settings), HFGenerator)
    gen = make_generator(model, backend="transformers", **settings)
    assert all(len(c) == 4 for c in gen.generate([[5, 6, 7], [8]]))
    with pytest.raises(OkapiError, match="generation backend 'vllm' requested"):
        make_generator(model, backend="vllm", **settings)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from okapi_kit_transformers.tiny import write_tiny_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = write_tiny_model(tmp_path_factory.mktemp("lm") / "llama", hidden=32, layers=1, heads=2)
    return AutoModelForCausalLM.from_pretrained(str(path)), AutoTokenizer.from_pretrained(str(path))


def test_weights_for_vllm_merge_lora(tiny_lm):
    """vLLM gets the checkpoint's names, with the LoRA update W + s*B@A added in, and the
    model itself is left exactly as it was (training goes on with it)."""
    import copy

    import torch
    from okapi_kit_rl.vllm_backend import named_weights
    from peft import LoraConfig, get_peft_model

    base, _ = tiny_lm
    lm = get_peft_model(copy.deepcopy(base), LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"]))
    layer = lm.base_model.model.model.layers[0].self_attn.q_proj
    torch.nn.init.normal_(layer.lora_B["default"].weight)  # peft starts B at 0: make the update visible
    before = layer.base_layer.weight.detach().clone()
    weights = {name: t.clone() for name, t in named_weights(lm)}
    assert set(weights) == {n for n, _ in base.named_parameters()}
    delta = layer.lora_B["default"].weight @ layer.lora_A["default"].weight * layer.scaling["default"]
    torch.testing.assert_close(weights["model.layers.0.self_attn.q_proj.weight"], before + delta)
    assert torch.equal(layer.base_layer.weight, before)  # untouched, not merged and unmerged
    torch.testing.assert_close(weights["model.layers.0.self_attn.k_proj.weight"],
                               base.model.layers[0].self_attn.k_proj.weight)


class _FakeEngine:
    """Stands in for vllm.LLM with the parts of its documented interface the backend uses."""

    def __init__(self, **kwargs):
        self.kwargs, self.loaded, self.resets, self.calls = kwargs, [], 0, []
        runner = type("Runner", (), {"model": type("M", (), {"load_weights": lambda _, w: self.loaded.append(
            [name for name, _ in w])})()})()
        worker = type("Worker", (), {"model_runner": runner})()
        self.llm_engine = type("Engine", (), {"model_executor": type("Ex", (), {"driver_worker": worker})()})()
        self.replies = []

    def generate(self, prompts, sampling_params, use_tqdm):
        self.calls.append((prompts, sampling_params))
        return self.replies.pop(0)

    def reset_prefix_cache(self):
        self.resets += 1


def _sample(ids, reason, stop=None):
    out = type("Completion", (), {"token_ids": ids, "finish_reason": reason, "stop_reason": stop})()
    return type("RequestOutput", (), {"outputs": [out]})()


def test_vllm_generator_against_stand_in(monkeypatch, tiny_lm):
    import types

    from okapi_kit_rl.vllm_backend import VLLMGenerator

    fake = types.ModuleType("vllm")
    fake.LLM = _FakeEngine
    fake.SamplingParams = lambda **kw: kw
    monkeypatch.setitem(sys.modules, "vllm", fake)
    gen = VLLMGenerator("/models/x", eos_ids=[2, 7], max_new_tokens=3, temperature=0.5, top_k=0, top_p=0.9)
    engine = gen.llm
    assert engine.kwargs["model"] == "/models/x" and engine.kwargs["skip_tokenizer_init"]
    engine.replies = [[_sample([5, 2], "stop", 2), _sample([5, 6], "stop", 7), _sample([5, 6, 6], "length")]]
    assert gen.generate([[1, 4], [1], [3]]) == [[5, 2], [5, 6, 7], [5, 6, 6]]
    prompts, params = engine.calls[0]
    assert prompts == [{"prompt_token_ids": [1, 4]}, {"prompt_token_ids": [1]}, {"prompt_token_ids": [3]}]
    assert params["stop_token_ids"] == [2, 7] and params["max_tokens"] == 3 and params["temperature"] == 0.5
    # sync only marks the weights stale: several updates, one copy, before the next sampling
    model, _ = tiny_lm
    gen.sync(model)
    gen.sync(model)
    assert engine.loaded == []
    engine.replies = [[_sample([9], "length")]]
    gen.generate([[1]])
    assert len(engine.loaded) == 1 and "model.embed_tokens.weight" in engine.loaded[0] and engine.resets == 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="per-process driver of test_distributed")
    parser.add_argument("--spec", required=True)
    drive(parser.parse_args().spec)
