"""The stage graph without training: what is planned, what each change re-runs (the
fingerprint matrix), supplied data, paths, and the single-stage commands that run fast."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from okapi_kit.cli import main
from okapi_kit.config import validate_config
from okapi_kit.graph.runner import fingerprints
from okapi_kit.plugins import registry
from okapi_kit.stages import build_plan

DEMO = Path(__file__).resolve().parents[1] / "okapi_kit" / "demo" / "data"
OKAPI = Path(__file__).resolve().parent / "data" / "okapi"


def small(tmp: Path) -> dict:
    """Every stage, one language; the data is copied so tests may edit it."""
    data = tmp / "data"
    if not data.exists():
        shutil.copytree(DEMO, data)
    return {
        "name": "small", "seed": 0, "base_model": "tiny:llama:32x1", "languages": ["vi"],
        "instructions": {"path": "data/instructions.en.jsonl", "limit": 14, "holdout": 4},
        "translation": {"translator": {"name": "translation_memory", "options": {
            "source": "data/instructions.en.jsonl", "targets": {"vi": "data/translations/vi.jsonl"}}}},
        "sft": {"trainer": {"name": "sft", "options": {"max_steps": 2}}},
        "sampling": {"sampler": {"name": "transformers", "options": {"max_new_tokens": 8}}, "k": 3},
        "ranking": {"ranker": "reference_chrf"},
        "reward_model": {"trainer": {"name": "reward", "options": {"max_steps": 2}}},
        "alignment": [{"method": "dpo", "trainer": {"name": "dpo", "options": {"max_steps": 2}}}],
        "evaluation": {"models": ["base", "sft", "dpo"],
                       "sampler": {"name": "transformers", "options": {"max_new_tokens": 8}},
                       "evaluators": [{"name": "lm_eval", "options": {"data_dir": "data/eval", "limit": 2}},
                                      "language_fidelity"]},
    }


def plan_of(cfg: dict, base: Path):
    return build_plan(validate_config(cfg, "test"), base_dir=base, run_dir=base / "run", registry=registry())


def set_key(cfg: dict, dotted: str, value) -> dict:
    cfg = json.loads(json.dumps(cfg))
    node = cfg
    *head, last = dotted.split(".")
    for part in head:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[last] = value
    return cfg


ALL = {"base_model", "instructions", "translate/vi", "sft", "sample/vi", "rank/vi", "reward_model", "align/dpo",
       *[f"generate/{m}/vi" for m in ("base", "sft", "dpo")],
       *[f"evaluate/{e}/{m}/vi" for e in ("lm_eval", "language_fidelity") for m in ("base", "sft", "dpo")]}
SFT_DOWN = {"sft", "sample/vi", "rank/vi", "reward_model", "align/dpo", "generate/sft/vi", "generate/dpo/vi",
            *[f"evaluate/{e}/{m}/vi" for e in ("lm_eval", "language_fidelity") for m in ("sft", "dpo")]}
DPO = {"align/dpo", "generate/dpo/vi", "evaluate/lm_eval/dpo/vi", "evaluate/language_fidelity/dpo/vi"}
RANK_DOWN = {"rank/vi", "reward_model"} | DPO
GEN = {f"generate/{m}/vi" for m in ("base", "sft", "dpo")}
FIDELITY = {f"evaluate/language_fidelity/{m}/vi" for m in ("base", "sft", "dpo")}
LM_EVAL = {f"evaluate/lm_eval/{m}/vi" for m in ("base", "sft", "dpo")}
BASE = {"base_model", "generate/base/vi", "evaluate/lm_eval/base/vi", "evaluate/language_fidelity/base/vi"}

# config change -> the units whose fingerprint changes (so they, and only they, re-run)
MATRIX = [
    ("name", "other", set()),
    ("translation.train_on_source", False, SFT_DOWN),
    ("sft.trainer.options.max_steps", 3, SFT_DOWN),
    ("sampling.k", 4, {"sample/vi"} | RANK_DOWN),
    ("sampling.sampler.options.max_new_tokens", 9, {"sample/vi"} | RANK_DOWN),
    ("ranking.ranker", {"name": "reference_chrf", "options": {"char_order": 4}}, RANK_DOWN),
    ("reward_model.pairs", "best_worst", {"reward_model"}),
    ("reward_model.trainer.options.max_steps", 3, {"reward_model"}),
    ("alignment.0.trainer.options.beta", 0.2, DPO),
    ("alignment.0.pairs", "best_worst", DPO),
    ("evaluation.samples_per_prompt", 2, GEN | FIDELITY),
    ("evaluation.sampler.options.max_new_tokens", 9, GEN | FIDELITY),
    ("evaluation.evaluators.0.options.limit", 3, LM_EVAL),
    ("base_model", "tiny:llama:32x2", BASE | SFT_DOWN),
    ("seed", 1, ALL - {"instructions", "translate/vi"}),
    ("instructions.holdout", 5, ALL - {"base_model"} - {"evaluate/lm_eval/base/vi"}),
    ("prompt_template", "auto", SFT_DOWN | {"generate/base/vi", "evaluate/language_fidelity/base/vi"}
     | {"reward_model"}),
]


@pytest.mark.parametrize("key,value,expected", MATRIX, ids=[m[0] for m in MATRIX])
def test_fingerprint_matrix(tmp_path, key, value, expected):
    cfg = small(tmp_path)
    before = fingerprints(plan_of(cfg, tmp_path))
    assert set(before) == ALL
    after = fingerprints(plan_of(set_key(cfg, key, value), tmp_path))
    changed = {k for k in before if after.get(k) != before[k]}
    assert changed == expected


def test_fingerprint_follows_file_content_not_path(tmp_path):
    cfg = small(tmp_path)
    before = fingerprints(plan_of(cfg, tmp_path))
    # the same memory file under another name: nothing re-runs
    shutil.copy(tmp_path / "data/translations/vi.jsonl", tmp_path / "data/vi-copy.jsonl")
    moved = fingerprints(plan_of(set_key(cfg, "translation.translator.options.targets",
                                         {"vi": "data/vi-copy.jsonl"}), tmp_path))
    assert moved == before
    # one edited translation: translate and everything downstream of it re-run
    path = tmp_path / "data/translations/vi.jsonl"
    path.write_text(path.read_text(encoding="utf-8").replace("a", "á", 1), encoding="utf-8")
    edited = fingerprints(plan_of(cfg, tmp_path))
    assert {k for k in before if edited[k] != before[k]} == ALL - {"base_model", "instructions",
                                                                   "evaluate/lm_eval/base/vi"}


def test_adding_a_model_or_evaluator_runs_only_what_is_new(tmp_path):
    cfg = set_key(small(tmp_path), "evaluation.models", ["base", "sft"])
    before = fingerprints(plan_of(cfg, tmp_path))
    after = fingerprints(plan_of(set_key(cfg, "evaluation.models", ["base", "sft", "dpo"]), tmp_path))
    assert all(after[k] == v for k, v in before.items())
    assert set(after) - set(before) == DPO - {"align/dpo"}


def test_relative_paths_come_from_the_config_folder(tmp_path, monkeypatch):
    cfg = small(tmp_path / "e")
    (tmp_path / "data").mkdir()
    decoy = tmp_path / "data" / "instructions.en.jsonl"
    decoy.write_text('{"id": "x", "instruction": "decoy"}\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    plan = plan_of(cfg, tmp_path / "e")
    unit = next(u for u in plan.units if u.key == "instructions")
    assert unit.files == [tmp_path / "e" / "data" / "instructions.en.jsonl"]


def test_okapi_released_files_skip_translation_and_ranking(tmp_path):
    cfg = {"name": "okapi", "base_model": "tiny:llama:32x1", "languages": ["vi", "bn"],
           "data": {"translations": {lang: str(OKAPI / "multilingual-alpaca-52k" / f"{lang}.json")
                                     for lang in ("vi", "bn")},
                    "rankings": {lang: str(OKAPI / "multilingual-ranking-data-42k" / f"{lang}.json")
                                 for lang in ("vi", "bn")}},
           "sft": {"trainer": "sft"}, "reward_model": {"trainer": "reward"},
           "alignment": [{"method": "dpo", "trainer": "dpo"}], "evaluation": {"models": []}}
    keys = [u.key for u in plan_of(cfg, tmp_path).units]
    assert keys == ["base_model", "supplied/translations/vi", "supplied/translations/bn",
                    "supplied/rankings/vi", "supplied/rankings/bn", "sft", "reward_model", "align/dpo"]


def test_a_supplied_model_replaces_its_stage(tmp_path):
    model = tmp_path / "my-sft"
    model.mkdir()
    cfg = set_key(small(tmp_path), "models", {"sft": str(model)})
    keys = {u.key for u in plan_of(cfg, tmp_path).units}
    assert "sft" not in keys and "sample/vi" in keys


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def tm_config(tmp_path: Path) -> Path:
    """Only instructions and translation: runs in about a second."""
    cfg = small(tmp_path)
    data = {k: cfg[k] for k in ("name", "languages", "instructions", "translation")}
    data["evaluation"] = {"models": []}
    path = tmp_path / "tm.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_translation_miss_then_fixed_memory_gives_full_records(tmp_path, capsys):
    config = tm_config(tmp_path)
    memory = tmp_path / "data/translations/vi.jsonl"
    lines = memory.read_text(encoding="utf-8").splitlines()
    removed = json.loads(lines[3])
    memory.write_text("\n".join(lines[:3] + lines[4:]) + "\n", encoding="utf-8")
    rc, _, err = run_cli(capsys, "run", config, "--run-dir", tmp_path / "r", "--quiet")
    assert rc == 2 and "vi translation(s) by 'translation_memory' failed" in err and removed["id"] in err
    failures = (tmp_path / "r/failures/translate-vi.jsonl").read_text(encoding="utf-8")
    assert removed["id"] in failures and "no translation" in failures
    memory.write_text("\n".join(lines) + "\n", encoding="utf-8")  # the user fixes the memory
    rc, _, err = run_cli(capsys, "run", config, "--run-dir", tmp_path / "r", "--quiet")
    assert rc == 0, err
    rows = [json.loads(x) for x in (tmp_path / "r/records/translations/vi.jsonl").read_text().splitlines()]
    held = [json.loads(x) for x in (tmp_path / "r/records/eval_prompts/vi.jsonl").read_text().splitlines()]
    assert len(rows) == 10 and len(held) == 4
    assert all(r["instruction"].strip() for r in rows + held)
    assert any(r["id"] == removed["id"] and r["instruction"] == removed["instruction"] for r in rows + held)
    assert not list((tmp_path / "r/partial").iterdir())  # chunk files go once the unit is done
    assert not (tmp_path / "r/failures/translate-vi.jsonl").exists()


def test_toggling_train_on_source_does_not_translate_again(tmp_path, capsys):
    config = tm_config(tmp_path)
    assert run_cli(capsys, "run", config, "--run-dir", tmp_path / "r", "--quiet")[0] == 0
    rc, out, err = run_cli(capsys, "run", config, "--run-dir", tmp_path / "r",
                           "--set", "translation.train_on_source=false")
    assert rc == 0, err
    assert "translate/vi" in out and "done" not in out.replace("done=", "")


def test_translate_and_rank_commands(tmp_path, capsys):
    cfg = small(tmp_path)
    opts = tmp_path / "tm.yaml"
    opts.write_text(yaml.safe_dump({"source": "data/instructions.en.jsonl",
                                    "targets": {"vi": "data/translations/vi.jsonl"}}), encoding="utf-8")
    rc, out, err = run_cli(capsys, "translate", tmp_path / cfg["instructions"]["path"], "--to", "vi",
                           "--translator", "translation_memory", "--options", opts, "--output", tmp_path / "tr",
                           "--quiet")
    assert rc == 0, err
    out_file = tmp_path / "tr/records/translations/vi.jsonl"
    assert str(out_file) in out and len(out_file.read_text().splitlines()) == 72
    samples = tmp_path / "samples_vi.jsonl"
    samples.write_text("".join(json.dumps({"id": f"s{i}", "prompt": "Nói xin chào", "reference": "xin chào",
                                           "responses": ["tạm biệt", "xin chào", "xin chào bạn"]}) + "\n"
                               for i in range(3)), encoding="utf-8")
    rc, out, err = run_cli(capsys, "rank", samples, "--language", "vi", "--ranker", "reference_chrf",
                           "--output", tmp_path / "rk", "--quiet")
    assert rc == 0, err
    ranked = [json.loads(x) for x in (tmp_path / "rk/records/rankings/vi.jsonl").read_text().splitlines()]
    assert [r["order"][0] for r in ranked] == [1, 1, 1] and [r["order"][-1] for r in ranked] == [0, 0, 0]
    rc, out, _ = run_cli(capsys, "rank", samples, "--language", "vi", "--ranker", "reference_chrf",
                         "--output", tmp_path / "rk")
    assert rc == 0 and "skipped" in out  # resumable like run


def test_two_runs_with_one_folder_name_keep_their_own_rows(tmp_path):
    from okapi_kit.leaderboard import ResultRow, ResultsStore

    db = ResultsStore(tmp_path / "lb.sqlite")
    row = dict(model="m", method="sft", language="vi", task="arc", metric="acc", stderr=0.1, n=10, protocol="p")
    db.replace_run("exp-a", [ResultRow(run="exp-a", value=0.5, run_dir=str(tmp_path / "A/exp"), **row)])
    db.replace_run("exp-b", [ResultRow(run="exp-b", value=0.7, run_dir=str(tmp_path / "B/exp"), **row)])
    assert sorted((r.run, r.value) for r in db.rows()) == [("exp-a", 0.5), ("exp-b", 0.7)]


def test_secret_options_never_reach_manifest_files_or_fingerprints(tmp_path):
    from okapi_kit_translation_memory.translator import TranslationMemory, TranslationMemoryConfig
    from pydantic import SecretStr

    from okapi_kit.graph import Runner
    from okapi_kit.pipeline import redacted_config
    from okapi_kit.registry import Registry
    from okapi_kit.ui import UI

    class KeyedConfig(TranslationMemoryConfig):
        api_key: SecretStr

    class KeyedMemory(TranslationMemory):
        """A translation memory behind an API key (stands in for a paid translator)."""

        name = "keyed_memory"
        Config = KeyedConfig

    reg = Registry()
    for entry in registry().entries():
        reg.add(entry.kind, entry.cls, plugin=entry.plugin)
    reg.add("translator", KeyedMemory, plugin="test")
    cfg = small(tmp_path)
    data = {k: cfg[k] for k in ("name", "languages", "instructions", "translation")}
    data["translation"]["translator"]["name"] = "keyed_memory"
    data["evaluation"] = {"models": []}

    def plan_with(key: str):
        data["translation"]["translator"]["options"]["api_key"] = key
        return build_plan(validate_config(data, "test"), base_dir=tmp_path, run_dir=tmp_path / "run", registry=reg)

    secret = "sk-do-not-store-4242"
    plan = plan_with(secret)
    assert fingerprints(plan) == fingerprints(plan_with("sk-another-key"))

    class Hooks:
        def __getattr__(self, name):
            return lambda **kw: None

    class PM:
        hook = Hooks()

    Runner(plan, ui=UI(quiet=True), pm=PM(), config_dump=redacted_config(plan)).run()
    written = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert written and not [p for p in written if secret.encode() in p.read_bytes()]
    assert (tmp_path / "run/records/translations/vi.jsonl").exists()


def test_a_local_base_model_enters_fingerprints_by_content(tmp_path):
    first, second = tmp_path / "m1", tmp_path / "m2"
    for folder, text in ((first, "a"), (second, "b")):
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"weights": text}), encoding="utf-8")
    cfg = set_key(small(tmp_path), "base_model", str(first))
    before = fingerprints(plan_of(cfg, tmp_path))
    assert "base_model" not in before  # a model the user has is not built
    base_units = {"generate/base/vi", "evaluate/lm_eval/base/vi", "evaluate/language_fidelity/base/vi"}
    other = fingerprints(plan_of(set_key(cfg, "base_model", str(second)), tmp_path))
    assert {k for k in before if other[k] != before[k]} == base_units | SFT_DOWN
    (first / "config.json").write_text(json.dumps({"weights": "c"}), encoding="utf-8")  # retrained in place
    edited = fingerprints(plan_of(cfg, tmp_path))
    assert {k for k in before if edited[k] != before[k]} == base_units | SFT_DOWN


def test_editing_a_reward_function_reruns_what_it_trained(tmp_path):
    (tmp_path / "sft").mkdir()
    (tmp_path / "sft" / "config.json").write_text("{}", encoding="utf-8")
    rewards = tmp_path / "rewards.py"
    rewards.write_text("def score(prompts, completions, **kw):\n    return [0.0 for _ in completions]\n",
                       encoding="utf-8")
    prompts = tmp_path / "prompts_vi.jsonl"
    prompts.write_text('{"instruction": "Viết một câu."}\n', encoding="utf-8")
    cfg = {"name": "rl", "languages": ["vi"], "models": {"sft": "sft"}, "data": {"prompts": {"vi": str(prompts)}},
           "alignment": [{"method": "rloo", "trainer": {"name": "rloo", "options": {"max_steps": 1}},
                          "reward": {"name": "callable", "options": {"function": "rewards.py:score"}}}],
           "evaluation": {"models": []}}
    before = fingerprints(plan_of(cfg, tmp_path))
    rewards.write_text("def score(prompts, completions, **kw):\n    return [1.0 for _ in completions]\n",
                       encoding="utf-8")
    after = fingerprints(plan_of(cfg, tmp_path))
    assert {k for k in before if after[k] != before[k]} == {"align/rloo"}


def test_a_reward_model_evaluator_scores_the_runs_reward_model(tmp_path):
    cfg = small(tmp_path)
    cfg["evaluation"]["evaluators"].append(
        {"name": "rm_accuracy", "options": {"data_dir": str(Path(__file__).parent / "fixtures" / "m_rewardbench")}})
    plan = plan_of(cfg, tmp_path)
    [unit] = [u for u in plan.units if u.key.startswith("evaluate/rm_accuracy/")]
    assert unit.key == "evaluate/rm_accuracy/rm/vi"
    assert plan.inputs[unit.key][unit.consumes[0]].producer == "reward_model"
    before = fingerprints(plan)[unit.key]
    after = fingerprints(plan_of(set_key(cfg, "reward_model.trainer.options.max_steps", 3), tmp_path))[unit.key]
    assert before != after  # a retrained RM is scored again
