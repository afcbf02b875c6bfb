"""The rm_accuracy evaluator: a reward model's accuracy on preference pairs, per category.

The rewards are recomputed here from the model directly (the sequence built by hand:
the Alpaca prompt, the response, EOS), the Wilson interval from the roots of its
quadratic, and both are compared with what the evaluator reports.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from okapi_kit import EvalTarget, OkapiError  # noqa: E402
from okapi_kit.prompts import format_alpaca  # noqa: E402

DATA = Path(__file__).parent / "fixtures" / "m_rewardbench"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def rm(tmp_path_factory):
    """A tiny reward model (one-output classifier head, fixed by a seed), saved with its tokenizer."""
    import torch
    from okapi_kit_transformers.loading import load_sequence_classifier, load_tokenizer
    from okapi_kit_transformers.tiny import write_tiny_model

    root = tmp_path_factory.mktemp("rm")
    base = write_tiny_model(root / "base", arch="llama", layers=1)
    torch.manual_seed(3)
    model = load_sequence_classifier(str(base)).eval()
    tokenizer = load_tokenizer(str(base))
    model.save_pretrained(root / "rm")
    tokenizer.save_pretrained(root / "rm")
    return root / "rm", model, tokenizer


def own_reward(model, tokenizer, prompt: str, response: str) -> float:
    import torch

    assert tokenizer("a")["input_ids"] == tokenizer("a", add_special_tokens=False)["input_ids"]  # no BOS/EOS added
    ids = tokenizer(format_alpaca(prompt) + response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0, 0].item()


def own_wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The p with (k/n - p)^2 = z^2 p (1 - p) / n: the roots of a p^2 + b p + c = 0."""
    phat = k / n
    a, b, c = 1 + z * z / n, -(2 * phat + z * z / n), phat * phat
    root = math.sqrt(b * b - 4 * a * c)
    return (-b - root) / (2 * a), (-b + root) / (2 * a)


def make(**options):
    from okapi_kit_transformers.rm_accuracy import RmAccuracyEvaluator

    return RmAccuracyEvaluator(RmAccuracyEvaluator.Config(**options))


def target(model, work: Path, lang: str) -> EvalTarget:
    return EvalTarget(model=str(model), label="rm", language=lang, work_dir=work)


def test_registered_by_the_transformers_plugin():
    from okapi_kit_transformers import okapi_register_evaluators
    from okapi_kit_transformers.rm_accuracy import RmAccuracyEvaluator

    seen = []
    okapi_register_evaluators(seen.append)
    assert RmAccuracyEvaluator in seen and RmAccuracyEvaluator.name == "rm_accuracy"
    assert RmAccuracyEvaluator.target_kind == "reward_model"
    for name, field in RmAccuracyEvaluator.Config.model_fields.items():
        assert field.description, name


def test_accuracy_per_category_and_language_matches_own_rewards(rm, tmp_path):
    path, model, tokenizer = rm
    evaluator = make(data_dir=DATA, batch_size=3)
    outcomes = []
    for lang, file, column in [("vi", DATA / "vi" / "test.jsonl", "subset"), ("de", DATA / "de.jsonl", "category")]:
        rows = read_jsonl(file)
        right = {r["id"]: float(own_reward(model, tokenizer, r["prompt"], r["chosen"])
                                > own_reward(model, tokenizer, r["prompt"], r["rejected"])) for r in rows}
        outcomes += right.values()
        work = tmp_path / lang
        scores = evaluator.evaluate(target(path, work, lang))
        by_key = {(s.task, s.metric): s for s in scores}
        overall = by_key[("m_rewardbench", "accuracy")]
        assert overall.items == right and overall.n == len(rows)
        assert overall.value == pytest.approx(sum(right.values()) / len(rows))
        assert overall.protocol == "rm_accuracy; r(chosen) > r(rejected), ties wrong; alpaca prompt; max_length 1024"
        categories = sorted({r[column] for r in rows})
        per_category = {}
        for c in categories:
            ids = [r["id"] for r in rows if r[column] == c]
            s = by_key[(f"m_rewardbench.{c}", "accuracy")]
            assert s.items == {i: right[i] for i in ids} and s.n == len(ids)
            per_category[c] = sum(right[i] for i in ids) / len(ids)
        assert by_key[("m_rewardbench", "accuracy_macro")].value == pytest.approx(
            sum(per_category.values()) / len(categories))
        assert len(scores) == 2 + len(categories)

        summary = json.loads((work / "rm_accuracy.json").read_text(encoding="utf-8"))
        assert summary["category_column"] == column and summary["source"] == str(file)
        for entry in summary["scores"]:
            if "correct" in entry:
                assert (entry["ci_low"], entry["ci_high"]) == pytest.approx(own_wilson(entry["correct"], entry["n"]))
        rows_out = read_jsonl(work / "rm_accuracy_rows.jsonl")
        assert [r["id"] for r in rows_out] == [r["id"] for r in rows]
        assert rows_out[0]["reward_chosen"] == pytest.approx(
            own_reward(model, tokenizer, rows[0]["prompt"], rows[0]["chosen"]), abs=1e-4)
    assert 0 < sum(outcomes) < len(outcomes)  # the random model is right on some pairs only


def test_wilson_interval_does_not_collapse_at_zero_or_one():
    from okapi_kit_transformers.rm_accuracy import wilson

    low, high = wilson(7, 7, 0.95)
    assert (low, high) == pytest.approx(own_wilson(7, 7)) and 0.6 < low < 0.7 and high == 1.0
    low, high = wilson(0, 3, 0.95)
    assert low == 0.0 and high == pytest.approx(own_wilson(0, 3)[1]) and high > 0.5


def test_a_local_clone_of_the_hub_dataset_reads_the_language_s_configuration(rm, tmp_path, monkeypatch):
    """The hub path (datasets.load_dataset with the FLORES configuration), on a local clone."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    clone = tmp_path / "multilingual-reward-bench"
    (clone / "vie_Latn").mkdir(parents=True)
    (clone / "vie_Latn" / "test-00000-of-00001.jsonl").write_text(
        (DATA / "vi" / "test.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    (clone / "README.md").write_text("---\nconfigs:\n- config_name: vie_Latn\n  data_files:\n  - split: test\n"
                                     "    path: vie_Latn/test-*\n---\n", encoding="utf-8")
    path, _, _ = rm
    from_hub = make(dataset=str(clone), limit=4).evaluate(target(path, tmp_path / "w1", "vi"))
    from_dir = make(data_dir=DATA, limit=4).evaluate(target(path, tmp_path / "w2", "vi"))
    assert [(s.task, s.metric, s.value, s.items) for s in from_hub] == \
        [(s.task, s.metric, s.value, s.items) for s in from_dir]
    assert from_hub[0].n == 4
    summary = json.loads((tmp_path / "w1" / "rm_accuracy.json").read_text(encoding="utf-8"))
    assert summary["source"] == f"{clone}:vie_Latn/test"


def test_languages_and_data_are_checked_before_any_work(tmp_path):
    make().check("vi")  # M-RewardBench has vie_Latn
    with pytest.raises(OkapiError) as err:
        make().check("bn")
    assert "no 'bn' (ben_Beng) configuration" in str(err.value) and "vi" in err.value.hint
    make(configs={"bn": "ben_Beng"}).check("bn")  # the user knows better
    make(dataset="someone/prefs").check("bn")  # another dataset: its configurations are its own
    with pytest.raises(OkapiError, match="expected bn/test.jsonl or bn.jsonl"):
        make(data_dir=DATA).check("bn")
    flores = tmp_path / "vie_Latn"
    flores.mkdir()
    (flores / "test.jsonl").write_text((DATA / "vi" / "test.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    make(data_dir=tmp_path).check("vi")
    assert list(tmp_path.iterdir()) == [flores]  # nothing written


def test_bad_rows_and_columns_are_errors(rm, tmp_path):
    path, _, _ = rm
    (tmp_path / "vi.jsonl").write_text(json.dumps({"prompt": "p", "chosen": "a"}) + "\n", encoding="utf-8")
    with pytest.raises(OkapiError, match="row 0 has no text in rejected"):
        make(data_dir=tmp_path).evaluate(target(path, tmp_path / "w", "vi"))
    with pytest.raises(OkapiError, match="a row has no 'domain' column"):
        make(data_dir=DATA, category_column="domain").evaluate(target(path, tmp_path / "w", "vi"))
    with pytest.raises(ValueError, match="plain name"):
        make(task="a/b")


def test_okapi_kit_evaluate_scores_a_reward_model(rm, tmp_path, monkeypatch, capsys):
    """``okapi-kit evaluate --model RM --evaluator rm_accuracy``: the model is the reward model."""
    from okapi_kit.cli import main

    path, _, _ = rm
    monkeypatch.chdir(tmp_path)
    (tmp_path / "o.yaml").write_text(f"rm_accuracy: {{data_dir: {DATA}, limit: 3}}\n", encoding="utf-8")
    code = main(["evaluate", "--model", str(path), "--label", "myrm", "--languages", "vi,de", "--evaluator",
                 "rm_accuracy", "--options", "o.yaml", "--run-dir", "runs/e", "--quiet"])
    assert code == 0, capsys.readouterr().err
    files = sorted(p.relative_to(tmp_path) for p in (tmp_path / "runs" / "e").rglob("rm_accuracy.json"))
    assert len(files) == 2
    for lang in ("vi", "de"):
        found = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "e").rglob("rm_accuracy.json")
                 if json.loads(p.read_text())["language"] == lang]
        assert found and found[0]["model"] == str(path) and found[0]["scores"][0]["n"] == 3


def test_the_demo_ships_a_preference_set_per_language(rm, tmp_path):
    """okapi_kit/demo/data/rewardbench/<lang>.jsonl: the demo's held-out instructions with a proper
    answer against a worse one (in English, to another question, or cut short), read by the demo's
    rm_accuracy evaluator."""
    import yaml

    import okapi_kit

    demo = Path(okapi_kit.__file__).parent / "demo"
    [entry] = [e for e in yaml.safe_load((demo / "demo.yaml").read_text())["evaluation"]["evaluators"]
               if isinstance(e, dict) and e["name"] == "rm_accuracy"]
    data_dir = demo / entry["options"]["data_dir"]
    held_out = {json.loads(line)["instruction"] for line in
                (demo / "data" / "instructions.en.jsonl").read_text(encoding="utf-8").splitlines()[-12:]}
    english = {json.loads(line)["output"] for line in
               (demo / "data" / "instructions.en.jsonl").read_text(encoding="utf-8").splitlines()}
    evaluator = make(data_dir=data_dir, limit=6)
    for lang in ("vi", "hi", "bn"):
        rows = read_jsonl(data_dir / f"{lang}.jsonl")
        assert 24 <= len(rows) <= 40 and len({r["id"] for r in rows}) == len(rows)
        assert {r["category"] for r in rows} == {"language", "relevance", "completeness"}
        for r in rows:
            assert r["chosen"].strip() and r["rejected"].strip() and r["chosen"] != r["rejected"]
            assert r["prompt"] not in held_out  # in the language, not the English original
            assert (r["rejected"] in english) == (r["category"] == "language")
            if r["category"] == "completeness":
                assert r["chosen"].startswith(r["rejected"]) and len(r["rejected"]) < len(r["chosen"]) / 2
        evaluator.check(lang)
        scores = evaluator.evaluate(target(rm[0], tmp_path / lang, lang))
        assert {s.task for s in scores} >= {"m_rewardbench", "m_rewardbench.language"}
