"""The pipeline end to end on a very small config: skip on rerun, partial reruns after a
config change, resume after SIGKILL with the same records and complete models, and the
evaluate and train commands on the models it made."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

DEMO = Path(__file__).resolve().parents[1] / "okapi_kit" / "demo"
OKAPI = [sys.executable, "-m", "okapi_kit.cli"]

pytestmark = pytest.mark.slow


def small_config(tmp: Path, **changes) -> Path:
    """Every stage of the demo, shrunk: one language, 14 instructions, a few steps each."""
    data = DEMO / "data"
    cfg = {
        "name": "small",
        "seed": 0,
        "base_model": "tiny:llama:32x1",
        "languages": ["vi"],
        "instructions": {"path": str(data / "instructions.en.jsonl"), "limit": 14, "holdout": 4},
        "translation": {"translator": {"name": "translation_memory", "options": {
            "source": str(data / "instructions.en.jsonl"),
            "targets": {"vi": str(data / "translations" / "vi.jsonl")}}}},
        "sft": {"trainer": {"name": "sft", "options": {
            "max_steps": 6, "batch_size": 4, "gradient_accumulation_steps": 1, "learning_rate": 3e-3,
            "max_length": 512, "save_steps": 2, "logging_steps": 1}}},
        "sampling": {"sampler": {"name": "transformers", "options": {"max_new_tokens": 24}},
                     "k": 3, "chunk_size": 2},
        "ranking": {"ranker": "reference_chrf"},
        "reward_model": {"trainer": {"name": "reward", "options": {
            "max_steps": 3, "batch_size": 8, "gradient_accumulation_steps": 1, "learning_rate": 1e-3,
            "max_length": 512, "save_steps": 2, "logging_steps": 1}}},
        "alignment": [{"method": "dpo", "trainer": {"name": "dpo", "options": {
            "max_steps": 3, "batch_size": 8, "gradient_accumulation_steps": 1, "learning_rate": 1e-3,
            "max_length": 512, "save_steps": 2, "logging_steps": 1}}}],
        "evaluation": {"models": ["base", "sft", "dpo"], "samples_per_prompt": 2,
                       "sampler": {"name": "transformers", "options": {"max_new_tokens": 16}},
                       "evaluators": [
                           {"name": "lm_eval", "options": {"data_dir": str(data / "eval"), "limit": 4,
                                                           "tasks": ["arc", "mmlu"]}},
                           "language_fidelity"]},
    }
    for dotted, value in changes.items():
        node = cfg
        *head, last = dotted.split("__")
        for part in head:
            node = node[part]
        node[last] = value
    path = tmp / "small.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def run(config: Path, run_dir: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run([*OKAPI, "run", str(config), "--run-dir", str(run_dir), "--quiet", *extra],
                          capture_output=True, text=True, env=env, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())["units"]


def records(run_dir: Path) -> dict[str, str]:
    root = run_dir / "records"
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*.jsonl"))}


def assert_complete_models(run_dir: Path) -> None:
    from safetensors.torch import load_file

    for name in ("base", "sft", "rm", "dpo"):
        folder = run_dir / "models" / name
        assert (folder / "config.json").exists(), name
        assert (folder / "tokenizer.json").exists(), name
        tensors = load_file(str(folder / "model.safetensors"))
        assert tensors and all(t.isfinite().all() for t in tensors.values()), name
    assert not list((run_dir / "models").glob(".*partial")), "a temporary model folder was left behind"


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ref")
    config = small_config(tmp)
    run(config, tmp / "run")
    return config, tmp / "run"


def test_full_run_writes_every_stage(reference_run):
    config, run_dir = reference_run
    units = manifest(run_dir)
    models = ("base", "sft", "dpo")
    expected = {"base_model", "instructions", "translate/vi", "sft", "sample/vi", "rank/vi",
                "reward_model", "align/dpo", *[f"generate/{m}/vi" for m in models],
                *[f"evaluate/{e}/{m}/vi" for e in ("lm_eval", "language_fidelity") for m in models]}
    assert set(units) == expected
    assert all(u["status"] == "done" and len(u["fingerprint"]) == 64 for u in units.values())
    samples = [json.loads(line) for line in (run_dir / "records/samples/vi.jsonl").read_text().splitlines()]
    assert len(samples) == 10 and all(len(s["responses"]) == 3 for s in samples)
    rankings = [json.loads(line) for line in (run_dir / "records/rankings/vi.jsonl").read_text().splitlines()]
    assert all(sorted(r["order"]) == [0, 1, 2] for r in rankings)
    assert_complete_models(run_dir)
    scores = [s for e in ("lm_eval", "language_fidelity")
              for s in json.loads((run_dir / f"records/eval/{e}/dpo/vi.json").read_text())["scores"]]
    assert {(s["task"], s["metric"]) for s in scores} >= {("arc", "acc"), ("mmlu", "acc"),
                                                           ("language_fidelity", "fidelity")}
    generations = [json.loads(x) for x in (run_dir / "records/generations/dpo/vi.jsonl").read_text().splitlines()]
    assert len(generations) == 4 and all(len(g["responses"]) == 2 for g in generations)
    assert not list((run_dir / "partial").iterdir())
    assert {p.name.rsplit("-", 1)[0] for p in (run_dir / "work").iterdir() if p.is_dir()} == \
        {f"evaluate-{e}-{m}-vi" for e in ("lm_eval", "language_fidelity") for m in models}
    # every trainer wrote per-step metrics
    for name in ("sft", "rm", "dpo"):
        lines = (run_dir / "models" / name / "metrics.jsonl").read_text().splitlines()
        assert lines and "loss" in json.loads(lines[0])


def test_rerun_skips_every_stage(reference_run):
    config, run_dir = reference_run
    before, units = records(run_dir), manifest(run_dir)
    run(config, run_dir)
    assert records(run_dir) == before
    assert manifest(run_dir) == units  # nothing ran again


def test_changed_stage_reruns_it_and_downstream_only(reference_run, tmp_path):
    config, run_dir = reference_run
    fresh_dir = tmp_path / "copy"
    import shutil

    shutil.copytree(run_dir, fresh_dir)
    before = manifest(fresh_dir)
    run(config, fresh_dir, "--set", "ranking.ranker.options.char_order=4")
    after = manifest(fresh_dir)
    rerun = {"rank/vi", "reward_model", "align/dpo", "generate/dpo/vi", "evaluate/lm_eval/dpo/vi",
             "evaluate/language_fidelity/dpo/vi"}
    unchanged = set(before) - rerun
    for key in unchanged:
        assert after[key]["finished"] == before[key]["finished"], key
    for key in rerun:
        assert after[key]["fingerprint"] != before[key]["fingerprint"], key
        assert after[key]["finished"] > before[key]["finished"], key


def test_fresh_starts_over(reference_run, tmp_path):
    config, run_dir = reference_run
    target = tmp_path / "fresh"
    target.mkdir()
    (target / "manifest.json").write_text(json.dumps({"units": {"stale": {"status": "done"}}}))
    (target / "leftover.txt").write_text("x")
    proc = run(config, target, "--fresh", "--set", "evaluation.models=[base]", "--set", "alignment=[]",
               "--set", "reward_model=null")
    assert "stale" not in manifest(target) and not (target / "leftover.txt").exists()
    assert proc.returncode == 0


def _wait_for(predicate, proc, timeout=300.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"the run ended before the kill point: {proc.stderr.read()[-2000:]}")
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail("kill point not reached")


@pytest.mark.parametrize("stage", ["sample/vi", "sft"])
def test_sigkill_mid_stage_then_resume(reference_run, tmp_path, stage):
    """Kill the process inside a stage; the rerun ends with the same records and complete models."""
    config, ref_dir = reference_run
    run_dir = tmp_path / "killed"
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.Popen([*OKAPI, "run", str(config), "--run-dir", str(run_dir), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)

    def inside_stage() -> bool:
        try:
            unit = manifest(run_dir).get(stage, {})
        except (FileNotFoundError, json.JSONDecodeError):
            return False
        if unit.get("status") != "running":
            return False
        if stage == "sample/vi":  # some chunks appended, not all
            part = list((run_dir / "partial").glob("sample-vi-*.jsonl"))
            return bool(part) and 0 < len(part[0].read_text().splitlines()) < 10
        return any((run_dir / "work").glob("sft-*/**/checkpoint-*"))  # a checkpoint, training goes on

    try:
        _wait_for(inside_stage, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert manifest(run_dir)[stage]["status"] == "running"
    assert not (run_dir / "models" / "dpo").exists()

    run(config, run_dir)
    assert records(run_dir) == records(ref_dir)
    assert_complete_models(run_dir)
    assert all(u["status"] == "done" for u in manifest(run_dir).values())


def test_evaluate_command_scores_a_model_without_training(reference_run, tmp_path, capsys):
    from okapi_kit.cli import main
    from okapi_kit.leaderboard import ResultsStore

    _, run_dir = reference_run
    opts = tmp_path / "eval.yaml"
    opts.write_text(yaml.safe_dump({"lm_eval": {"data_dir": str(DEMO / "data" / "eval"), "limit": 3,
                                                "tasks": ["arc"]}}), encoding="utf-8")
    db = tmp_path / "lb.sqlite"
    args = ["evaluate", "--model", str(run_dir / "models" / "sft"), "--label", "mine", "--languages", "vi,bn",
            "--options", str(opts), "--db", str(db), "--run-dir", str(tmp_path / "ev"), "--quiet"]
    assert main(args) == 0, capsys.readouterr().err
    rows = ResultsStore(db).rows(run="evaluate")
    assert {(r.method, r.language, r.task, r.metric, r.n) for r in rows} == {
        ("mine", lang, "arc", metric, 3) for lang in ("vi", "bn") for metric in ("acc", "acc_norm")}
    capsys.readouterr()
    assert main(["leaderboard", "--db", str(db), "--run", "evaluate", "--format", "csv"]) == 0
    assert capsys.readouterr().out.count("mine") == 4
    # another evaluator option replaces the rows (no stale n=3 rows beside the new ones)
    assert main([*args, "--set", "evaluation.evaluators.0.options.limit=2"]) == 0
    assert {r.n for r in ResultsStore(db).rows(run="evaluate")} == {2}


def test_train_command_fine_tunes_from_a_data_file(reference_run, tmp_path, capsys):
    from okapi_kit.cli import main

    _, run_dir = reference_run
    rc = main(["train", "dpo", "--model", str(run_dir / "models" / "sft"),
               "--data", str(Path(__file__).parent / "data" / "okapi" / "multilingual-ranking-data-42k" / "vi.json"),
               "--language", "vi", "--output", str(tmp_path / "t"), "--quiet",
               "--set", "alignment.0.trainer.options={max_steps: 2, batch_size: 4, max_length: 512}"])
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "t" / "models" / "dpo" / "model.safetensors").exists()
    assert json.loads((tmp_path / "t" / "manifest.json").read_text())["units"]["align/dpo"]["status"] == "done"


def test_init_project_runs_as_written(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    subprocess.run([*OKAPI, "init", "proj"], cwd=tmp_path, check=True, capture_output=True, env=env)
    proc = subprocess.run([*OKAPI, "run", "proj/okapi.yaml", "--quiet"], cwd=tmp_path, capture_output=True,
                          text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    units = manifest(tmp_path / "runs" / "my-run")
    assert units and all(u["status"] == "done" for u in units.values())
    assert (tmp_path / "runs" / "leaderboard.sqlite").exists()
