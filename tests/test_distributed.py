"""Trainers under two processes (DDP over gloo, on CPU): only rank 0 writes, the model is whole.

The test launches this very file with ``accelerate launch --config_file
docs/accelerate/ddp.yaml --num_processes 2`` (on a machine without GPUs: two CPU processes,
gloo); run as a script, it is the per-process driver: it builds a
TrainJob for each job of a spec, calls the trainer, and records every file-system write the
process makes under the job's folders through a Python audit hook (``open`` for writing,
``os.mkdir``, ``os.rename``, ``shutil.copyfile``...), one report per rank and job. Writes
made by native code (safetensors' and torch.save's own file writes) are not audited; the
files written around them (config.json, tokenizer files, metrics) are. With ``--fsdp2`` it
is one process of the FSDP2 check instead.

The commands (``okapi-kit train``, ``okapi-kit run``) are launched as docs/distributed.md
shows, with the same audit hook installed in each process by a ``sitecustomize`` module.
The rest needs no launch: the rules of ``okapi_kit/graph/processes.py``, the DeepSpeed
pieces of the RL loop that run without DeepSpeed, and the vLLM backend's choice.
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
           "shutil.rmtree": (0,), "shutil.move": (1,), "sqlite3.connect": (0,)}
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


def accelerate_launch(args: list[str], *, cwd: Path, timeout: float,
                      env: dict[str, str] | None = None) -> tuple[int | None, str, float]:
    """``accelerate launch`` with the DDP config of docs/accelerate and 2 CPU processes (gloo);
    returns (exit code, None after a timeout; the output; seconds)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(cwd / "hf"),  # no user accelerate config
           "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "ACCELERATE_USE_CPU": "true",
           "TOKENIZERS_PARALLELISM": "false", **(env or {}),
           "PYTHONPATH": os.pathsep.join([*(env or {}).get("PYTHONPATH", "").split(os.pathsep), str(ROOT),
                                          str(ROOT / "plugins"), str(ROOT / "tests"),
                                          os.environ.get("PYTHONPATH", "")])}
    # The command docs/distributed.md gives, with the DDP config shipped there; on a machine
    # without GPUs it starts CPU processes, and accelerate picks the gloo backend.
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE / "ddp.yaml"),
           "--num_processes", "2", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), *args]
    start = time.monotonic()
    # A session of its own, so that a timeout ends the workers too, not only the launcher.
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
        returncode: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        returncode = None
    return returncode, output, time.monotonic() - start


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
    returncode, output, elapsed = accelerate_launch(
        [str(Path(__file__).resolve()), "--spec", str(base / "spec.json")], cwd=base, timeout=timeout)
    for name, run in runs.items():
        reports = sorted((json.loads(p.read_text()) for p in run["reports"].glob("rank*.json")),
                         key=lambda r: r["rank"])
        run["ranks"] = reports
        if len(reports) != 2:
            run["error"] = (f"job {name}: reports from ranks {[r['rank'] for r in reports]} "
                            f"(launch exit {returncode} after {elapsed:.0f} s):\n{output[-6000:]}")
    return runs


def check_run(run: dict, model: str) -> list[dict]:
    """The assertions every trainer must pass; returns its metrics lines."""
    assert "error" not in run, run.get("error")
    out, ranks = run["out"].resolve(), run["ranks"]
    assert all(r["world_size"] == 2 and r["backend"] == "gloo" for r in ranks), ranks
    # Rank 1 wrote nothing in the model folder; in the work folder at most its own RNG state
    # (each rank checkpoints its own) and the folders for it.
    strays = [w for w in ranks[1]["writes"] if w.split(" ", 1)[1].startswith(str(out))
              or ("rng_state_1" not in w and not w.startswith("os.mkdir"))]
    assert not strays, "rank 1 wrote:\n" + "\n".join(strays)
    assert any(str(out) in w for w in ranks[0]["writes"]), "rank 0 wrote no output"
    check_model(out, model)
    # metrics.jsonl written once: one line per logged step, no step twice.
    lines = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    steps = [ln["step"] for ln in lines]
    assert steps and len(steps) == len(set(steps)), f"metric steps {steps}"
    return lines


def check_model(out: Path, model: str) -> None:
    """The model in ``out`` is complete (every tensor of the architecture in its safetensors,
    and a tokenizer) and trained (its weights differ from those of ``model``)."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

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


# ---------------------------------------------------------------- the commands under accelerate launch
# `okapi-kit train` and `okapi-kit run` launched as docs/distributed.md says. Each process's
# writes under the watched folder are recorded by the audit hook, installed at start-up by a
# sitecustomize module (so the command launched is the real one) and written out at exit.

AUDIT = "OKAPI_KIT_TEST_AUDIT"  # "<watched folder><os.pathsep><report folder>"
OKAPI = Path(__file__).resolve().parent / "data" / "okapi"


def start_audit(spec: str) -> None:
    """In a launched process: record its writes under the watched folder in
    ``<report folder>/rank<RANK>.json`` at exit (the launcher itself, with no RANK, is left out)."""
    import atexit

    rank = os.environ.get("RANK")
    if rank is None:
        return
    watched, reports = spec.split(os.pathsep)
    writes: list[str] = []
    _WATCH[:] = [(str(Path(watched).resolve()), writes)]
    sys.addaudithook(_audit)
    atexit.register(lambda: Path(reports, f"rank{rank}.json").write_text(json.dumps(writes)))


SITECUSTOMIZE = f"""
import os
if os.environ.get({AUDIT!r}):
    import sys
    sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
    import {Path(__file__).stem}
    {Path(__file__).stem}.start_audit(os.environ[{AUDIT!r}])
"""


def okapi_launch(base: Path, args: list[str], label: str, *, timeout: float = 150) -> dict:
    """``accelerate launch ... ARGS`` in ``base``, with every write under ``base/out`` audited;
    the exit code, the output and each rank's writes."""
    site, reports = base / "site", base / f"audit-{label}"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    reports.mkdir()
    (base / "out").mkdir(exist_ok=True)
    code, output, seconds = accelerate_launch(
        args, cwd=base, timeout=timeout,
        env={AUDIT: f"{base / 'out'}{os.pathsep}{reports}", "PYTHONPATH": str(site)})
    writes = {int(p.stem[4:]): json.loads(p.read_text()) for p in reports.glob("rank*.json")}
    return {"code": code, "output": output, "seconds": seconds, "writes": writes}


def check_books(result: dict, run_dir: Path) -> None:
    """Both processes ended well; rank 0 kept the books (the manifest), rank 1 wrote nothing
    but its own RNG states in the trainers' checkpoints and folders for them."""
    assert result["code"] == 0, f"exit {result['code']} after {result['seconds']:.0f} s:\n{result['output'][-6000:]}"
    assert sorted(result["writes"]) == [0, 1], result["writes"].keys()
    assert any(w.endswith(f"{run_dir.resolve() / 'manifest.json'}") for w in result["writes"][0]), \
        "rank 0 did not write the manifest"
    strays = [w for w in result["writes"][1] if "rng_state_1" not in w and not w.startswith("os.mkdir")]
    assert not strays, "rank 1 wrote:\n" + "\n".join(strays)


def okapi_command() -> str:
    command = Path(sys.executable).with_name("okapi-kit")
    if not command.is_file():
        pytest.skip("the okapi-kit command is not installed beside this Python")
    return str(command)


@pytest.fixture(scope="module")
def cli_tiny(tmp_path_factory) -> str:
    from okapi_kit_transformers.tiny import write_tiny_model

    return str(write_tiny_model(tmp_path_factory.mktemp("cli") / "tiny", hidden=32, layers=1, heads=2))


@pytest.mark.slow
def test_train_command_two_processes(tmp_path, cli_tiny):
    """`accelerate launch $(which okapi-kit) train ppo ...`: both processes train, rank 0 alone
    keeps the run folder's books; the same command again skips the finished training."""
    if "ppo" not in _installed_trainers():
        pytest.skip("trainer 'ppo' is not installed (plugin okapi_kit_rl)")
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps({"prompt": f"Write {i}: "}) + "\n"
                                                    for i in range(16)))
    (tmp_path / "ppo.yaml").write_text(json.dumps(dict(max_steps=2, batch_size=4, max_new_tokens=8, save_steps=1,
                                                       logging_steps=1, learning_rate=1e-3, device="cpu")))
    args = [okapi_command(), "train", "ppo", "--model", cli_tiny, "--data", "prompts.jsonl", "--options", "ppo.yaml",
            "--reward", f"{Path(__file__).stem}:rl_reward", "--output", "out/run"]
    run = tmp_path / "out" / "run"
    first = okapi_launch(tmp_path, args, "first")
    check_books(first, run)
    check_model(run / "models" / "ppo", cli_tiny)
    assert first["output"].count("model: ") == 1, first["output"][-3000:]  # one answer, from rank 0
    units = json.loads((run / "manifest.json").read_text())["units"]
    assert units["align/ppo"]["status"] == "done"
    again = okapi_launch(tmp_path, args, "again")
    check_books(again, run)
    assert json.loads((run / "manifest.json").read_text())["units"] == units  # skipped: nothing re-ran
    assert again["writes"][1] == [], again["writes"][1]


@pytest.mark.slow
def test_run_command_two_processes(tmp_path):
    """`accelerate launch -m okapi_kit.cli run CONFIG`: the base model, the data and the evaluation
    are the main process's, sft and dpo train on both; the leaderboard is written once."""
    (tmp_path / "eval_vi.jsonl").write_text("".join(json.dumps({"instruction": f"Câu hỏi số {i}?"}) + "\n"
                                                    for i in range(3)))
    trl = dict(max_steps=2, batch_size=2, gradient_accumulation_steps=1, max_length=512, logging_steps=1,
               save_steps=1, learning_rate=1e-3, gradient_checkpointing=False, device="cpu")
    config = {"name": "ddp", "seed": 0, "base_model": "tiny:llama:32x1", "languages": ["vi"],
              "data": {"translations": {"vi": str(OKAPI / "multilingual-alpaca-52k" / "vi.json")},
                       "rankings": {"vi": str(OKAPI / "multilingual-ranking-data-42k" / "vi.json")},
                       "eval_prompts": {"vi": "eval_vi.jsonl"}},
              "sft": {"trainer": {"name": "sft", "options": trl}},
              "alignment": [{"method": "dpo", "pairs": "best_worst",
                             "trainer": {"name": "dpo", "options": dict(trl, beta=0.1)}}],
              "evaluation": {"models": ["dpo"], "samples_per_prompt": 1,
                             "sampler": {"name": "transformers", "options": {"max_new_tokens": 4}},
                             "evaluators": ["language_fidelity"]}}
    (tmp_path / "okapi.yaml").write_text(json.dumps(config))
    args = ["-m", "okapi_kit.cli", "run", "okapi.yaml", "--run-dir", "out/run"]
    run = tmp_path / "out" / "run"
    first = okapi_launch(tmp_path, args, "first")
    check_books(first, run)
    check_model(run / "models" / "dpo", str(run / "models" / "sft"))
    units = json.loads((run / "manifest.json").read_text())["units"]
    assert {"base_model", "sft", "align/dpo", "generate/dpo/vi", "evaluate/language_fidelity/dpo/vi"} <= set(units)
    assert all(u["status"] == "done" for u in units.values()), units
    page, db = run / "leaderboard.html", tmp_path / "out" / "leaderboard.sqlite"
    assert page.is_file() and db.is_file()
    assert any(w.endswith(str(page.resolve())) for w in first["writes"][0])
    assert any(w == f"sqlite3.connect {db.resolve()}" for w in first["writes"][0])
    assert first["output"].count("Stages (") == 1  # the summary, printed by rank 0 alone
    again = okapi_launch(tmp_path, args, "again")
    check_books(again, run)
    assert json.loads((run / "manifest.json").read_text())["units"] == units  # every unit skipped
    assert again["writes"][1] == [], again["writes"][1]


@pytest.mark.slow
def test_main_process_failure_stops_the_others(tmp_path):
    """The main process cannot take the run folder (another run holds it): it tells the other
    process, which stops at once instead of waiting for a word that never comes."""
    from okapi_kit.graph.artifacts import RunLayout
    from okapi_kit.graph.runner import RunLock

    run = tmp_path / "out" / "run"
    args = [okapi_command(), "train", "sft", "--model", "tiny-model-not-needed", "--data",
            str(OKAPI / "multilingual-alpaca-52k" / "vi.json"), "--output", "out/run"]
    (tmp_path / "tiny-model-not-needed").mkdir()
    with RunLock(RunLayout(run).lock):
        result = okapi_launch(tmp_path, args, "locked", timeout=60)
    assert result["code"] not in (0, None), result["output"][-3000:]
    assert "is in use by" in result["output"]
    assert "the main process stopped the run" in result["output"], result["output"][-3000:]


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


# ---------------------------------------------------------------- the run's processes (no launch)


@pytest.mark.parametrize(("env", "rank", "world"), [({}, 0, 1), ({"WORLD_SIZE": "2", "RANK": "1"}, 1, 2),
                                                    ({"WORLD_SIZE": "4", "RANK": "0"}, 0, 4)])
def test_launch_from_environment(monkeypatch, env, rank, world):
    from okapi_kit.graph import processes

    for name in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    here = processes.launch()
    assert (here.rank, here.world_size, here.main, here.several) == (rank, world, rank == 0, world > 1)


@pytest.mark.parametrize(("env", "says"), [({"WORLD_SIZE": "two"}, "not a number"),
                                           ({"WORLD_SIZE": "2", "RANK": "2"}, "does not fit")])
def test_bad_launch_environment(monkeypatch, env, says):
    from okapi_kit.graph import processes

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(OkapiError, match=says):
        processes.launch()


def test_which_units_run_everywhere():
    from okapi_kit.graph import Unit, processes

    def unit(stage: str, **kw) -> Unit:
        return Unit(key=stage, stage=stage, version=1, reads={}, consumes=[], produces=[], run=lambda run: None, **kw)

    assert [processes.runs_everywhere(unit(s)) for s in ("sft", "reward_model", "align")] == [True] * 3
    assert not any(processes.runs_everywhere(unit(s)) for s in ("base_model", "translate", "sample", "rank",
                                                                 "generate", "evaluate", "supplied"))
    assert processes.runs_everywhere(unit("rm_transfer_train", distributed=True))


def test_training_in_a_main_only_unit_is_refused(monkeypatch):
    """A plugin stage that trains without saying so would leave the trainer waiting for the
    other processes forever: train_model refuses it instead."""
    from okapi_kit.graph import processes

    processes.check_together("any")  # one process: anything goes
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(OkapiError, match="runs on the main process only") as info:
        processes.check_together("my_stage/x")
    assert "distributed=True" in info.value.hint
    with processes.together("my_stage/x"):
        processes.check_together("my_stage/x")


def test_one_process_needs_no_channel(monkeypatch):
    """Alone, the leader's calls and the barriers do nothing (and import no torch.distributed)."""
    from okapi_kit.graph import processes

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    leader = processes.Leader()
    with leader.stop_on_error(), leader.running(object(), "fp"):
        processes.wait_for_everyone()
    leader.end()
    assert processes._channel is None


# ---------------------------------------------------------------- DeepSpeed and FSDP2 in the RL loop
# (what runs here: the config DeepSpeed gets, the loading context, the DeepSpeed call protocol
# against a stand-in engine, the rebuild of a whole model from a state dict, and the FSDP2
# helpers on a model sharded over two CPU processes with torch's own fully_shard)


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_config_filled_from_the_trainer(stage):
    """The loop's micro-batch and clipping go into accelerate's DeepSpeedPlugin config (built
    here without DeepSpeed installed); 'auto' is left nowhere DeepSpeed would refuse it."""
    from accelerate.utils import DeepSpeedPlugin
    from okapi_kit_rl.sharding import fill_deepspeed_config, frozen_deepspeed_config

    plugin = DeepSpeedPlugin(zero_stage=stage, gradient_clipping=1.0, zero3_save_16bit_model=True)
    plugin.deepspeed_config["zero_optimization"]["reduce_bucket_size"] = "auto"
    ds = fill_deepspeed_config(plugin.deepspeed_config, micro_batch_size=4, processes=8, max_grad_norm=0.5,
                               hidden_size=64)
    assert ds is plugin.deepspeed_config  # changed in place: accelerate reads it at prepare()
    assert (ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"], ds["train_batch_size"]) == (4, 1, 32)
    assert ds["gradient_clipping"] == 0.5 and ds["zero_optimization"]["reduce_bucket_size"] == 64 * 64
    assert not plugin.is_auto("train_micro_batch_size_per_gpu")
    frozen = frozen_deepspeed_config(ds)
    assert frozen["zero_optimization"] == ({"stage": 0} if stage == 2 else ds["zero_optimization"])
    assert frozen is not ds and ds["zero_optimization"]["stage"] == stage


@pytest.mark.parametrize(("change", "says"), [
    (lambda ds: ds.update(optimizer={"type": "AdamW"}), "'optimizer' section"),
    (lambda ds: ds["zero_optimization"].update(stage3_gather_16bit_weights_on_model_save=False),
     "stage3_gather_16bit_weights_on_model_save"),
    (lambda ds: ds["zero_optimization"].update(stage3_prefetch_bucket_size="auto"), "hidden size is unknown"),
])
def test_deepspeed_config_refused(change, says):
    from accelerate.utils import DeepSpeedPlugin
    from okapi_kit_rl.sharding import fill_deepspeed_config

    ds = DeepSpeedPlugin(zero_stage=3, zero3_save_16bit_model=True).deepspeed_config
    change(ds)
    with pytest.raises(OkapiError, match=says):
        fill_deepspeed_config(ds, micro_batch_size=2, processes=2, max_grad_norm=1.0, hidden_size=None)


def test_whole_model_loading(monkeypatch):
    """Inside, transformers neither partitions (ZeRO-3) nor leaves empty (FSDP's
    cpu_ram_efficient_loading) what it loads; after, both settings are back."""
    from okapi_kit_rl.sharding import whole_model_loading
    from transformers.integrations import deepspeed as hf_deepspeed

    class ZeRO3:
        def is_zero3(self):
            return True

    config = ZeRO3()
    monkeypatch.setattr(hf_deepspeed, "_hf_deepspeed_config_weak_ref", __import__("weakref").ref(config))
    monkeypatch.setenv("FSDP_CPU_RAM_EFFICIENT_LOADING", "true")
    assert hf_deepspeed.is_deepspeed_zero3_enabled()
    with whole_model_loading():
        assert not hf_deepspeed.is_deepspeed_zero3_enabled()
        assert os.environ["FSDP_CPU_RAM_EFFICIENT_LOADING"] == "false"
    assert hf_deepspeed.is_deepspeed_zero3_enabled() and os.environ["FSDP_CPU_RAM_EFFICIENT_LOADING"] == "true"


def test_deepspeed_step_protocol():
    """Under DeepSpeed the Session tells the engine where a mini-batch ends, lets the engine
    step there, and never steps the optimiser itself (against a stand-in engine)."""
    import types

    from okapi_kit_rl.engine import Session
    from okapi_kit_rl.sharding import Sharding

    calls: list = []
    engine = types.SimpleNamespace(
        set_gradient_accumulation_boundary=lambda last: calls.append(("boundary", last)),
        backward=lambda loss: calls.append(("backward", loss)), step=lambda: calls.append(("step",)),
        get_global_grad_norm=lambda: 0.25)
    optimizer = types.SimpleNamespace(step=lambda: calls.append(("optimizer.step",)))
    scheduler = types.SimpleNamespace(step=lambda: calls.append(("scheduler.step",)))
    session = types.SimpleNamespace(sharding=Sharding("deepspeed", 3, 2), model=engine, optimizer=optimizer,
                                    scheduler=scheduler, generator=None)
    for last, loss in ((False, 1.0), (True, 2.0)):
        with Session.accumulate(session, last):
            Session.backward(session, loss)
    assert Session.update(session) == 0.25
    assert calls == [("boundary", False), ("backward", 1.0), ("step",), ("boundary", True), ("backward", 2.0),
                     ("step",), ("scheduler.step",)]


@pytest.mark.parametrize("lora", [False, True])
def test_final_model_rebuilt_from_a_state_dict(tiny_lm, tmp_path, lora):
    """What ZeRO-3/FSDP2 saving does on the main process: the gathered state dict of the
    trained module, loaded into a fresh copy (LoRA merged), gives the model the DDP path saves."""
    import copy
    import types

    import torch
    from okapi_kit_rl.modules import PolicyModule, add_lora, lm_from_state, merged_lm, value_head

    base, tok = tiny_lm
    base.save_pretrained(tmp_path / "m")
    config = types.SimpleNamespace(lora=lora, lora_r=2, lora_alpha=4, lora_dropout=0.0, lora_target_modules="all-linear")
    lm = copy.deepcopy(base)
    if lora:
        lm = add_lora(lm, config)
    module = PolicyModule(lm, value_head(lm))
    torch.manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)  # "trained"
    state = {k: v.clone() for k, v in module.state_dict().items()}
    rebuilt = lm_from_state(state, model=str(tmp_path / "m"), config=config, trust_remote_code=False).state_dict()
    expected = merged_lm(module.lm).state_dict()
    assert set(rebuilt) == set(expected)
    for name, tensor in expected.items():
        torch.testing.assert_close(rebuilt[name], tensor)


def test_number_of_a_grad_norm():
    import math

    import torch
    from okapi_kit_rl.engine import _number

    assert math.isnan(_number(None)) and _number(torch.tensor(2.5)) == 2.5 and _number(3) == 3.0


def fsdp2_check(model: str, report: str) -> None:
    """One process of test_fsdp2_helpers: the policy sharded by torch's fully_shard (one unit
    per decoder layer and the root, as accelerate does on GPUs), then what the RL loop does."""
    import types

    import torch
    import torch.distributed as dist
    from okapi_kit_rl.modules import PolicyModule, lm_from_state
    from okapi_kit_rl.rollout import HFGenerator
    from okapi_kit_rl.sharding import Sharding, gathered_for_generation
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,))
    whole = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    root = PolicyModule(AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32))
    for layer in root.lm.model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(root, mesh=mesh)
    split = Sharding("fsdp", 0, world)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        root(ids, torch.ones_like(ids), 1)  # as the Session does first
    prompts = [[5, 6, 7], list(range(10, 12 + 3 * rank))]  # each process its own prompts
    outputs = {}
    for name, lm in (("sharded", root.lm), ("whole", whole)):
        gen = HFGenerator(lm, pad_id=0, eos_ids=[1], max_new_tokens=6, temperature=1.0, top_k=0, top_p=1.0,
                          batch_size=None)
        if name == "sharded":
            gen.gathered = lambda: gathered_for_generation(split, root, root.lm)
            gen.synced = True
        torch.manual_seed(rank)
        outputs[name] = gen.generate(prompts)
    resharded = all(isinstance(p, DTensor) for p in root.parameters())
    logps, _ = root(ids, torch.ones_like(ids), 3)  # training goes on after generation
    logps.sum().backward()
    state = get_model_state_dict(root, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    rebuilt = None
    if rank == 0:
        lm = lm_from_state(state, model=model, config=types.SimpleNamespace(lora=False), trust_remote_code=False)
        rebuilt = all(torch.equal(v, whole.state_dict()[k]) for k, v in lm.state_dict().items())
    Path(report, f"rank{rank}.json").write_text(json.dumps(
        {"generation": outputs["sharded"] == outputs["whole"], "resharded": resharded, "rebuilt": rebuilt}))
    dist.destroy_process_group()


@pytest.mark.slow
def test_fsdp2_helpers(tmp_path, cli_tiny):
    """On two CPU processes: generation with the weights gathered samples what the whole model
    samples, the weights are sharded again after, training goes on, and the final model
    rebuilt from the gathered state dict is the whole model."""
    (tmp_path / "reports").mkdir()
    code, output, seconds = accelerate_launch(
        [str(Path(__file__).resolve()), "--fsdp2", cli_tiny, "--report", str(tmp_path / "reports")],
        cwd=tmp_path, timeout=90)
    assert code == 0, f"exit {code} after {seconds:.0f} s:\n{output[-6000:]}"
    reports = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "reports").glob("rank*.json")}
    assert reports["rank0"] == {"generation": True, "resharded": True, "rebuilt": True}, reports
    assert reports["rank1"] == {"generation": True, "resharded": True, "rebuilt": None}, reports


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="per-process driver of test_distributed")
    parser.add_argument("--spec")
    parser.add_argument("--fsdp2", metavar="MODEL")
    parser.add_argument("--report")
    cli_args = parser.parse_args()
    if cli_args.fsdp2:
        fsdp2_check(cli_args.fsdp2, cli_args.report)
    else:
        drive(cli_args.spec)
