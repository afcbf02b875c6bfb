"""The lm_eval evaluator: lm-eval's okapi tasks on local files, checked against our own scoring.

The expected prompts below are written from the stock okapi task definitions
(lm_eval/tasks/okapi/*), independently of the plugin; the log-likelihoods are computed
directly with the model. If the plugin used another template, other data, another
few-shot order or miscounted items, these tests fail.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from okapi_kit import EvalTarget, OkapiError  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "eval"
LETTERS = "ABCDE"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---- the stock okapi protocol, restated -------------------------------------------------

def stock_clean(text: str) -> str:
    """arc/hellaswag utils.preprocess, kept as stock (lm-eval issue #2000: [...] is removed)."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def arc_item(doc):
    options = [doc[f"option_{c}"] for c in "abcde" if doc[f"option_{c}"]]
    return ("Question: " + stock_clean(doc["instruction"]) + "\nAnswer:",
            [stock_clean(o) for o in options], LETTERS.index(doc["answer"]))


def hellaswag_item(doc):
    ctx = doc["activity_label"] + ": " + doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
    return stock_clean(ctx), [stock_clean(e) for e in doc["endings"]], int(doc["label"])


def mmlu_text(doc):
    return (doc["instruction"].strip() + "".join(f"\n{c}. {doc['option_' + c.lower()]}" for c in "ABCD")
            + "\nAnswer:")


def mmlu_item(doc, shots=()):
    prefix = "".join(mmlu_text(s) + " " + s["answer"] + "\n\n" for s in shots)
    return prefix + mmlu_text(doc), list("ABCD"), LETTERS.index(doc["answer"])


def loglikelihood(model, tokenizer, context: str, continuation: str) -> float:
    import torch

    ctx = tokenizer.encode(context, add_special_tokens=False)
    whole = tokenizer.encode(context + continuation, add_special_tokens=False)
    assert whole[: len(ctx)] == ctx  # byte-level: the split is exact
    with torch.no_grad():
        logits = model(torch.tensor([whole])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    return sum(logprobs[i - 1, whole[i]].item() for i in range(len(ctx), len(whole)))


def own_scores(model, tokenizer, items):
    """Our acc / acc_norm, and the per-item log-likelihoods, for (context, choices, gold) items."""
    acc = acc_norm = 0
    lls_all = []
    for context, choices, gold in items:
        lls = [loglikelihood(model, tokenizer, context, " " + c) for c in choices]
        lls_all.append(lls)
        acc += max(range(len(lls)), key=lambda i: lls[i]) == gold
        acc_norm += max(range(len(lls)), key=lambda i: lls[i] / len(choices[i])) == gold
    return acc / len(items), acc_norm / len(items), lls_all


# ---- fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from okapi_kit_transformers.loading import load_causal_lm, load_tokenizer
    from okapi_kit_transformers.tiny import write_tiny_model

    path = write_tiny_model(tmp_path_factory.mktemp("lm") / "m", arch="llama", layers=1)
    return path, load_causal_lm(str(path)).eval(), load_tokenizer(str(path))


def make(**options):
    from okapi_kit_lm_eval import LmEvalEvaluator

    return LmEvalEvaluator(LmEvalEvaluator.Config(**options))


def target(model_path, work_dir, lang="vi"):
    return EvalTarget(model=str(model_path), label="base", language=lang, work_dir=work_dir)


def samples(work_dir: Path, name: str) -> list[dict]:
    return sorted(read_jsonl(work_dir / f"lm_eval_samples_{name}.jsonl"), key=lambda r: r["doc_id"])


def check_samples(rows, items, lls_all):
    """lm-eval scored exactly our prompts, and got our log-likelihoods."""
    assert [r["doc_id"] for r in rows] == list(range(len(items)))
    for row, (context, choices, _), lls in zip(rows, items, lls_all, strict=True):
        assert [tuple(a) for a in row["arguments"]] == [(context, " " + c) for c in choices]
        theirs = [resp[0] for resp in row["filtered_resps"]]
        assert theirs == pytest.approx(lls, abs=1e-3)


# ---- tests ---------------------------------------------------------------------------------

def test_import_is_light():
    code = ("import sys, okapi_kit_lm_eval; "
            "print(sorted(m for m in ('torch', 'transformers', 'lm_eval', 'datasets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_registered_with_documented_config():
    from okapi_kit_lm_eval import LmEvalEvaluator, okapi_register_evaluators

    seen = []
    okapi_register_evaluators(seen.append)
    assert seen == [LmEvalEvaluator] and LmEvalEvaluator.name == "lm_eval"
    for name, field in LmEvalEvaluator.Config.model_fields.items():
        assert field.description, name
    cfg = LmEvalEvaluator.Config(data_dir=FIXTURES, num_fewshot=25)
    assert (cfg.tasks, cfg.num_fewshot.arc, cfg.num_fewshot.mmlu) == (["arc", "hellaswag", "mmlu"], 25, 25)
    assert LmEvalEvaluator.Config(data_dir=FIXTURES).num_fewshot.model_dump() == {
        "arc": 0, "hellaswag": 0, "mmlu": 0}
    with pytest.raises(ValueError):
        LmEvalEvaluator.Config(data_dir=FIXTURES, tasks=["winogrande"])
    with pytest.raises(ValueError):
        LmEvalEvaluator.Config(data_dir=FIXTURES, num_fewshot={"arc": 25, "gsm8k": 5})


def test_missing_file_names_file_and_folder(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(FIXTURES / "arc_vi.jsonl", data / "arc_vi.jsonl")
    with pytest.raises(OkapiError) as err:
        make(data_dir=data, tasks=["arc", "mmlu"]).evaluate(target("unused", tmp_path / "w"))
    assert "mmlu_vi.jsonl" in str(err.value) and str(data) in str(err.value)
    with pytest.raises(OkapiError, match="arc_fr.jsonl"):  # another language, same folder
        make(data_dir=data, tasks=["arc"]).evaluate(target("unused", tmp_path / "w", lang="fr"))


def test_check_names_missing_files_before_any_work(tmp_path):
    make(data_dir=FIXTURES).check("vi")
    with pytest.raises(OkapiError) as err:
        make(data_dir=FIXTURES, tasks=["mmlu"]).check("bn")
    assert "mmlu_bn.jsonl" in str(err.value) and str(FIXTURES) in str(err.value)


def test_zero_shot_matches_own_scoring(tiny, tmp_path):
    model_path, model, tokenizer = tiny
    work = tmp_path / "work"
    scores = make(data_dir=FIXTURES, log_samples=True, batch_size=4).evaluate(target(model_path, work))

    expected_items = {
        "arc": [arc_item(d) for d in read_jsonl(FIXTURES / "arc_vi.jsonl")],
        "hellaswag": [hellaswag_item(d) for d in read_jsonl(FIXTURES / "hellaswag_vi.jsonl")],
        "mmlu": [mmlu_item(d) for d in read_jsonl(FIXTURES / "mmlu_vi.jsonl")],
    }
    # Stock #2000 behaviour kept: bracketed genotypes vanish from the ARC question.
    assert expected_items["arc"][3][0].startswith("Question: Ở đậu Hà Lan, tính trạng thân cao trội so")
    # Options left empty in the hub schema are dropped (5, 4 and 3 choices occur).
    assert [len(c) for _, c, _ in expected_items["arc"]] == [4, 4, 4, 4, 5, 3]

    by_key = {(s.task, s.metric): s for s in scores}
    assert set(by_key) == {("arc", "acc"), ("arc", "acc_norm"), ("hellaswag", "acc"),
                           ("hellaswag", "acc_norm"), ("mmlu", "acc")}
    lm_names = {"arc": "arc_vi", "hellaswag": "hellaswag_vi", "mmlu": "m_mmlu_vi"}
    for task, items in expected_items.items():
        acc, acc_norm, lls = own_scores(model, tokenizer, items)
        check_samples(samples(work, lm_names[task]), items, lls)
        assert by_key[(task, "acc")].value == pytest.approx(acc)
        if task != "mmlu":
            assert by_key[(task, "acc_norm")].value == pytest.approx(acc_norm)
        p = acc
        assert by_key[(task, "acc")].stderr == pytest.approx(math.sqrt(p * (1 - p) / 5))
    for s in scores:
        assert s.n == 6
        assert s.protocol == f"lm-eval {version('lm_eval')}; {lm_names[s.task]}; 0-shot; loglikelihood"

    results = json.loads((work / "lm_eval_results.json").read_text(encoding="utf-8"))
    for key in ("results", "configs", "versions", "n-shot", "n-samples", "config"):
        assert key in results
    assert results["configs"]["arc_vi"]["dataset_path"] == "json"
    assert results["versions"]["arc_vi"] == 2.0  # the stock okapi ARC template's version


def test_few_shot_from_train_file_and_from_same_file(tiny, tmp_path):
    model_path, model, tokenizer = tiny
    work = tmp_path / "work"
    scores = make(data_dir=FIXTURES, tasks=["mmlu", "arc"], num_fewshot={"mmlu": 2, "arc": 2},
                  limit=4, log_samples=True).evaluate(target(model_path, work))

    # MMLU: the stock first_n sampler takes the first 2 items of mmlu_vi.train.jsonl.
    shots = read_jsonl(FIXTURES / "mmlu_vi.train.jsonl")[:2]
    items = [mmlu_item(d, shots) for d in read_jsonl(FIXTURES / "mmlu_vi.jsonl")[:4]]
    acc, _, lls = own_scores(model, tokenizer, items)
    check_samples(samples(work, "m_mmlu_vi"), items, lls)
    mmlu = [s for s in scores if s.task == "mmlu"]
    assert [(s.metric, s.n) for s in mmlu] == [("acc", 4)]
    assert mmlu[0].value == pytest.approx(acc)
    assert mmlu[0].protocol.endswith("; m_mmlu_vi; 2-shot (mmlu_vi.train.jsonl); loglikelihood")

    # ARC has no train file: shots come from arc_vi.jsonl itself, never the scored item.
    arc_docs = read_jsonl(FIXTURES / "arc_vi.jsonl")
    for row in samples(work, "arc_vi"):
        context = row["arguments"][0][0]
        own_question = arc_item(arc_docs[row["doc_id"]])[0]
        assert context.endswith("\n\n" + own_question) and context.count("Question: ") == 3
        assert context.count(own_question) == 1
    arc = [s for s in scores if s.task == "arc"]
    assert {s.n for s in arc} == {4}
    assert arc[0].protocol.endswith("; arc_vi; 2-shot (same file, item itself left out); loglikelihood")


def test_json_array_file_and_wrong_schema(tiny, tmp_path):
    model_path, model, tokenizer = tiny
    data = tmp_path / "data"
    data.mkdir()
    docs = read_jsonl(FIXTURES / "arc_vi.jsonl")
    (data / "arc_vi.json").write_text(json.dumps(docs, ensure_ascii=False), encoding="utf-8")
    scores = make(data_dir=data, tasks=["arc"]).evaluate(target(model_path, tmp_path / "w1"))
    acc, acc_norm, _ = own_scores(model, tokenizer, [arc_item(d) for d in docs])
    assert [(s.metric, s.n) for s in scores] == [("acc", 6), ("acc_norm", 6)]
    assert (scores[0].value, scores[1].value) == (pytest.approx(acc), pytest.approx(acc_norm))

    bad = [{k: v for k, v in d.items() if k != "endings"} for d in read_jsonl(FIXTURES / "hellaswag_vi.jsonl")]
    (data / "hellaswag_vi.jsonl").write_text("\n".join(json.dumps(b) for b in bad), encoding="utf-8")
    with pytest.raises(OkapiError, match="hub schemas"):
        make(data_dir=data, tasks=["hellaswag"]).evaluate(target(model_path, tmp_path / "w2"))


def bar_or_git_noise(text: str) -> list[str]:
    """Lines that look like a tqdm bar or git's complaint."""
    return [line for line in text.replace("\r", "\n").splitlines()
            if "fatal:" in line or "it/s" in line or "%|" in line]


def test_console_stays_quiet_and_no_cache_is_left(tiny, tmp_path, monkeypatch, capfd):
    model_path, _, _ = tiny
    monkeypatch.chdir(tmp_path)  # outside a git repository lm-eval's `git describe` complains
    work = tmp_path / "work"
    (work / "hf_datasets_cache" / "stale").mkdir(parents=True)  # as an interrupted run leaves it
    capfd.readouterr()
    scores = make(data_dir=FIXTURES, tasks=["arc"], limit=2).evaluate(target(model_path, work))
    out, err = capfd.readouterr()
    assert [(s.metric, s.n) for s in scores] == [("acc", 2), ("acc_norm", 2)]
    assert bar_or_git_noise(err) == [] and bar_or_git_noise(out) == []
    assert (out, err) == ("", "")
    assert not (work / "hf_datasets_cache").exists()
    assert sorted(p.name for p in work.iterdir()) == ["lm_eval.log", "lm_eval_results.json", "lm_eval_tasks"]
    log = (work / "lm_eval.log").read_text(encoding="utf-8")
    assert "Generating test split" in log  # what lm-eval and datasets print is kept there
    if shutil.which("git"):
        assert "fatal: not a git repository" in log


def test_user_caches_stay_untouched(tiny, tmp_path):
    """In a fresh process with the Hugging Face caches pointed at empty folders."""
    model_path, _, _ = tiny
    caches = {var: tmp_path / "caches" / var for var in ("HF_HOME", "HF_DATASETS_CACHE", "XDG_CACHE_HOME")}
    for folder in caches.values():
        folder.mkdir(parents=True)
    work = tmp_path / "work"
    code = ("import sys; from pathlib import Path; from okapi_kit import EvalTarget; "
            "from okapi_kit_lm_eval import LmEvalEvaluator as E; "
            "s = E(E.Config(data_dir=sys.argv[1], tasks=['mmlu'], limit=2)).evaluate("
            "EvalTarget(model=sys.argv[2], label='base', language='vi', work_dir=Path(sys.argv[3]))); "
            "print(len(s))")
    env = dict(os.environ, **{var: str(folder) for var, folder in caches.items()})
    proc = subprocess.run([sys.executable, "-c", code, str(FIXTURES), str(model_path), str(work)],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"
    assert bar_or_git_noise(proc.stderr) == []
    assert [p for folder in caches.values() for p in folder.rglob("*")] == []
    assert not (work / "hf_datasets_cache").exists()
