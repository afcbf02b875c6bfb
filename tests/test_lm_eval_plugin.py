"""The lm_eval evaluator on a tiny model, checked against our own scoring.

The expected prompts below are written from lm-eval's stock task definitions
(lm_eval/tasks/okapi/*, xcopa, belebele), independently of the plugin; the
log-likelihoods are computed directly with the model. If the plugin used another
template, other data, another few-shot order, miscounted items or kept wrong per-item
results, these tests fail.
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
HUB = Path(__file__).parent / "fixtures" / "hub"
LETTERS = "ABCDE"
LM_EVAL = version("lm_eval")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---- the stock protocols, restated --------------------------------------------------------

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


def xcopa_vi_item(doc):
    """xcopa/utils.py: the premise without its full stop, then the Vietnamese connector."""
    connector = {"cause": "bởi vì", "effect": "vì vậy"}[doc["question"]]
    lower = [c[0].lower() + c[1:] for c in (doc["choice1"], doc["choice2"])]
    return doc["premise"].strip()[:-1] + f" {connector}", lower, doc["label"]


def belebele_item(doc):
    text = (f"P: {doc['flores_passage']}\nQ: {doc['question'].strip()}\nA: {doc['mc_answer1']}\n"
            f"B: {doc['mc_answer2']}\nC: {doc['mc_answer3']}\nD: {doc['mc_answer4']}\nAnswer:")
    return text, list("ABCD"), int(doc["correct_answer_num"]) - 1


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
    """Our acc / acc_norm, per-item correctness and log-likelihoods, for (context, choices, gold) items."""
    right, right_norm, lls_all = [], [], []
    for context, choices, gold in items:
        lls = [loglikelihood(model, tokenizer, context, " " + c) for c in choices]
        lls_all.append(lls)
        right.append(float(max(range(len(lls)), key=lambda i: lls[i]) == gold))
        right_norm.append(float(max(range(len(lls)), key=lambda i: lls[i] / len(choices[i])) == gold))
    n = len(items)
    return sum(right) / n, sum(right_norm) / n, lls_all, right, right_norm


# ---- fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from okapi_kit_transformers.loading import load_causal_lm, load_tokenizer
    from okapi_kit_transformers.tiny import write_tiny_model

    path = write_tiny_model(tmp_path_factory.mktemp("lm") / "m", arch="llama", layers=1)
    return path, load_causal_lm(str(path)).eval(), load_tokenizer(str(path))


@pytest.fixture(scope="module")
def few_folders_index():
    """lm-eval's own index of the folders these tests name (the whole one takes 20-60 s)."""
    import importlib.util

    from lm_eval.tasks import TaskManager

    root = Path(list(importlib.util.find_spec("lm_eval").submodule_search_locations)[0]) / "tasks"
    folders = [root / "xcopa", root / "belebele", root / "include" / "default" / "Vietnamese"]
    return TaskManager(include_path=[str(f) for f in folders], include_defaults=False).task_index


@pytest.fixture
def small_index(few_folders_index, monkeypatch):
    from okapi_kit_lm_eval import catalog

    monkeypatch.setattr(catalog, "task_index", lambda: few_folders_index)


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


def check_items(score, ids, right):
    """Per-item results: one value per scored item, under its id, averaging to the score."""
    assert score.items == dict(zip(ids, right, strict=True))
    assert score.value == pytest.approx(sum(right) / len(right))


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
    assert (cfg.tasks, cfg.num_fewshot, cfg.protocol) == (["arc", "hellaswag", "mmlu"], {"*": 25}, "lm-eval")
    assert LmEvalEvaluator.Config().data_dir is None  # the hub
    with pytest.raises(ValueError, match="did you mean 'winogrande'"):
        LmEvalEvaluator.Config(tasks=["winogrand"])
    with pytest.raises(ValueError, match="protocol"):
        LmEvalEvaluator.Config(protocol="mlmm")


def test_missing_file_names_file_and_folder(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(FIXTURES / "arc_vi.jsonl", data / "arc_vi.jsonl")
    with pytest.raises(OkapiError) as err:
        make(data_dir=data, tasks=["arc", "mmlu"]).evaluate(target("unused", tmp_path / "w"))
    assert "mmlu_vi.jsonl" in str(err.value) and str(data) in str(err.value)
    with pytest.raises(OkapiError, match="arc_fr.jsonl"):  # another language, same folder
        make(data_dir=data, tasks=["arc"]).evaluate(target("unused", tmp_path / "w", lang="fr"))
    assert not (tmp_path / "w").exists()


def test_check_names_missing_files_before_any_work(tmp_path):
    make(data_dir=FIXTURES).check("vi")
    with pytest.raises(OkapiError) as err:
        make(data_dir=FIXTURES, tasks=["mmlu"]).check("bn")
    assert "mmlu_bn.jsonl" in str(err.value) and str(FIXTURES) in str(err.value)


def test_zero_shot_matches_own_scoring(tiny, tmp_path):
    model_path, model, tokenizer = tiny
    work = tmp_path / "work"
    scores = make(data_dir=FIXTURES, log_samples=True, batch_size=4).evaluate(target(model_path, work))

    docs = {t: read_jsonl(FIXTURES / f"{t}_vi.jsonl") for t in ("arc", "hellaswag", "mmlu")}
    expected_items = {"arc": [arc_item(d) for d in docs["arc"]],
                      "hellaswag": [hellaswag_item(d) for d in docs["hellaswag"]],
                      "mmlu": [mmlu_item(d) for d in docs["mmlu"]]}
    # Stock #2000 behaviour kept: bracketed genotypes vanish from the ARC question.
    assert expected_items["arc"][3][0].startswith("Question: Ở đậu Hà Lan, tính trạng thân cao trội so")
    # Options left empty in the hub schema are dropped (5, 4 and 3 choices occur).
    assert [len(c) for _, c, _ in expected_items["arc"]] == [4, 4, 4, 4, 5, 3]

    by_key = {(s.task, s.metric): s for s in scores}
    assert set(by_key) == {("arc", "acc"), ("arc", "acc_norm"), ("hellaswag", "acc"),
                           ("hellaswag", "acc_norm"), ("mmlu", "acc")}
    lm_names = {"arc": "arc_vi", "hellaswag": "hellaswag_vi", "mmlu": "m_mmlu_vi"}
    for task, items in expected_items.items():
        acc, acc_norm, lls, right, right_norm = own_scores(model, tokenizer, items)
        check_samples(samples(work, lm_names[task]), items, lls)
        # item ids: the documents' `id` where every one has its own, else their index
        ids = [d["id"] for d in docs[task]] if task != "hellaswag" else [str(i) for i in range(6)]
        check_items(by_key[(task, "acc")], ids, right)
        if task != "mmlu":
            check_items(by_key[(task, "acc_norm")], ids, right_norm)
        assert by_key[(task, "acc")].stderr == pytest.approx(math.sqrt(acc * (1 - acc) / 5))
    assert len({s.value for s in scores}) > 1  # the tiny model is right on some items only
    for s in scores:
        assert s.n == 6
        assert s.protocol == f"lm-eval; {lm_names[s.task]}; 0-shot; lm-eval {LM_EVAL}"

    results = json.loads((work / "lm_eval_results.json").read_text(encoding="utf-8"))
    for key in ("results", "configs", "versions", "n-shot", "n-samples", "config"):
        assert key in results
    assert results["configs"]["arc_vi"]["dataset_path"] == "json"
    assert results["versions"]["arc_vi"] == 2.0  # the stock okapi ARC template's version
    assert results["okapi_kit"]["protocol"] == "lm-eval"


def test_few_shot_from_train_file_and_from_same_file(tiny, tmp_path):
    model_path, model, tokenizer = tiny
    work = tmp_path / "work"
    scores = make(data_dir=FIXTURES, tasks=["mmlu", "arc"], num_fewshot={"mmlu": 2, "arc": 2},
                  limit=4, log_samples=True).evaluate(target(model_path, work))

    # MMLU: the stock first_n sampler takes the first 2 items of mmlu_vi.train.jsonl.
    shots = read_jsonl(FIXTURES / "mmlu_vi.train.jsonl")[:2]
    items = [mmlu_item(d, shots) for d in read_jsonl(FIXTURES / "mmlu_vi.jsonl")[:4]]
    acc, _, lls, _, _ = own_scores(model, tokenizer, items)
    check_samples(samples(work, "m_mmlu_vi"), items, lls)
    mmlu = [s for s in scores if s.task == "mmlu"]
    assert [(s.metric, s.n) for s in mmlu] == [("acc", 4)]
    assert mmlu[0].value == pytest.approx(acc)
    assert mmlu[0].protocol == f"custom; m_mmlu_vi; 2-shot from train; lm-eval {LM_EVAL}"

    # ARC has no train file: shots come from arc_vi.jsonl itself, never the scored item.
    arc_docs = read_jsonl(FIXTURES / "arc_vi.jsonl")
    for row in samples(work, "arc_vi"):
        context = row["arguments"][0][0]
        own_question = arc_item(arc_docs[row["doc_id"]])[0]
        assert context.endswith("\n\n" + own_question) and context.count("Question: ") == 3
        assert context.count(own_question) == 1
    arc = [s for s in scores if s.task == "arc"]
    assert {s.n for s in arc} == {4}
    assert arc[0].protocol == f"custom; arc_vi; 2-shot from the scored split; lm-eval {LM_EVAL}"


def test_json_array_file_and_wrong_schema(tiny, tmp_path):
    model_path, model, tokenizer = tiny
    data = tmp_path / "data"
    data.mkdir()
    docs = read_jsonl(FIXTURES / "arc_vi.jsonl")
    (data / "arc_vi.json").write_text(json.dumps(docs, ensure_ascii=False), encoding="utf-8")
    scores = make(data_dir=data, tasks=["arc"]).evaluate(target(model_path, tmp_path / "w1"))
    acc, acc_norm, _, _, _ = own_scores(model, tokenizer, [arc_item(d) for d in docs])
    assert [(s.metric, s.n) for s in scores] == [("acc", 6), ("acc_norm", 6)]
    assert (scores[0].value, scores[1].value) == (pytest.approx(acc), pytest.approx(acc_norm))

    bad = [{k: v for k, v in d.items() if k != "endings"} for d in read_jsonl(FIXTURES / "hellaswag_vi.jsonl")]
    (data / "hellaswag_vi.jsonl").write_text("\n".join(json.dumps(b) for b in bad), encoding="utf-8")
    with pytest.raises(OkapiError, match="hub schemas"):
        make(data_dir=data, tasks=["hellaswag"]).evaluate(target(model_path, tmp_path / "w2"))


def test_local_copies_and_any_lm_eval_task_in_one_run(tiny, tmp_path, small_index, monkeypatch):
    """A hub-layout copy (ARC), a save_to_disk copy (MMLU) and three other lm-eval tasks, one of
    them a group: one model load, each score with its language's items and the protocol."""
    import datasets
    from okapi_kit_lm_eval import model as model_module

    model_path, model, tokenizer = tiny
    data = tmp_path / "data"
    shutil.copytree(HUB, data)
    shutil.rmtree(data / "alexandrainst" / "m_mmlu")
    mmlu_docs, mmlu_train = read_jsonl(FIXTURES / "mmlu_vi.jsonl"), read_jsonl(FIXTURES / "mmlu_vi.train.jsonl")
    datasets.DatasetDict({"test": datasets.Dataset.from_list(mmlu_docs),
                          "train": datasets.Dataset.from_list(mmlu_train)}).save_to_disk(str(data / "m_mmlu" / "vi"))
    loads = []
    real_load = model_module.load
    monkeypatch.setattr(model_module, "load", lambda *a, **k: loads.append(a) or real_load(*a, **k))

    work = tmp_path / "work"
    evaluator = make(data_dir=data, protocol="okapi", num_fewshot={"arc": 2, "mmlu": 2}, log_samples=True,
                     tasks=["arc", "mmlu", "xcopa_vi", "belebele_vie_Latn", "include_base_44_vietnamese"])
    scores = evaluator.evaluate(target(model_path, work))
    assert len(loads) == 1
    by_key = {(s.task, s.metric): s for s in scores}
    assert sorted(by_key) == [("arc", "acc"), ("arc", "acc_norm"), ("belebele", "acc"), ("belebele", "acc_norm"),
                              ("include_base_44", "acc"), ("mmlu", "acc"), ("xcopa", "acc")]

    # MMLU read back from Arrow files: the first 2 train items as shots, as from the flat files.
    items = [mmlu_item(d, mmlu_train[:2]) for d in mmlu_docs]
    _, _, lls, right, _ = own_scores(model, tokenizer, items)
    check_samples(samples(work, "m_mmlu_vi"), items, lls)
    check_items(by_key[("mmlu", "acc")], [d["id"] for d in mmlu_docs], right)

    # ARC from the hub layout: 2 shots drawn from train.jsonl, then the scored question.
    arc_train = {arc_item(d)[0] for d in read_jsonl(HUB / "alexandrainst" / "m_arc" / "data" / "vi" / "train.jsonl")}
    arc_docs = read_jsonl(HUB / "alexandrainst" / "m_arc" / "data" / "vi" / "test.jsonl")
    for row in samples(work, "arc_vi"):
        *shots, own = row["arguments"][0][0].split("\n\n")
        assert own == arc_item(arc_docs[row["doc_id"]])[0]
        assert len(shots) == 2 and all(s.split("\nAnswer:")[0] + "\nAnswer:" in arc_train for s in shots)
    assert by_key[("arc", "acc")].protocol == f"custom; arc_vi; 2-shot from train; lm-eval {LM_EVAL}"

    for task, name, item_of, file in [("xcopa", "xcopa_vi", xcopa_vi_item, "cambridgeltl/xcopa/vi/test.jsonl"),
                                      ("belebele", "belebele_vie_Latn", belebele_item,
                                       "facebook/belebele/vie_Latn/test.jsonl")]:
        items = [item_of(d) for d in read_jsonl(HUB / file)]
        _, _, lls, right, _ = own_scores(model, tokenizer, items)
        check_samples(samples(work, name), items, lls)
        check_items(by_key[(task, "acc")], [str(i) for i in range(len(items))], right)
        assert by_key[(task, "acc")].protocol == f"okapi; {name}; 0-shot; lm-eval {LM_EVAL}"  # stock under okapi

    # The group: one score over its three tasks, items named <task>/<index>.
    group = by_key[("include_base_44", "acc")]
    leaves = ["include_base_44_vietnamese_stem", "include_base_44_vietnamese_arts_humanities",
              "include_base_44_vietnamese_social_science"]
    expected = {f"{leaf}/{i}": float(row["acc"]) for leaf in leaves for i, row in enumerate(samples(work, leaf))}
    assert group.items == expected and group.n == 6 and len(expected) == 6
    assert group.value == pytest.approx(sum(expected.values()) / 6)
    assert group.protocol == f"okapi; include_base_44_vietnamese; 0-shot; lm-eval {LM_EVAL}"
    assert not (work / "hf_datasets_cache").exists()

    # In another language the tasks bound to Vietnamese are left out, with no model load.
    assert make(tasks=["xcopa_vi"]).evaluate(target(model_path, tmp_path / "bn", lang="bn")) == []
    assert len(loads) == 1 and not (tmp_path / "bn").exists()


def test_a_peft_adapter_is_applied_to_the_base_it_names(tiny, tmp_path):
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model

    model_path, model, tokenizer = tiny
    torch.manual_seed(0)
    adapter = tmp_path / "adapter"
    base = type(model).from_pretrained(str(model_path))
    get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
                   ).save_pretrained(str(adapter))
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(model_path)
    work = tmp_path / "work"
    make(data_dir=FIXTURES, tasks=["arc"], limit=3, log_samples=True).evaluate(target(adapter, work))

    tuned = PeftModel.from_pretrained(type(model).from_pretrained(str(model_path)), str(adapter)).eval()
    items = [arc_item(d) for d in read_jsonl(FIXTURES / "arc_vi.jsonl")[:3]]
    _, _, lls, _, _ = own_scores(tuned, tokenizer, items)
    check_samples(samples(work, "arc_vi"), items, lls)
    _, _, base_lls, _, _ = own_scores(model, tokenizer, items)
    assert lls[0] != pytest.approx(base_lls[0], abs=1e-3)  # the adapter changes the scores

    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": ""}))
    with pytest.raises(OkapiError, match="names no base model"):
        make(data_dir=FIXTURES, tasks=["arc"], limit=1).evaluate(target(adapter, tmp_path / "w2"))


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
    proc = subprocess.run([sys.executable, "-c", code, str(HUB), str(model_path), str(work)],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"
    assert bar_or_git_noise(proc.stderr) == []
    assert [p for folder in caches.values() for p in folder.rglob("*")] == []
    assert not (work / "hf_datasets_cache").exists()
