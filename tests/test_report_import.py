"""Import of lm-eval results JSON (and its per-item samples files) into the results store."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from okapi_kit.cli import main
from okapi_kit.errors import OkapiError
from okapi_kit.leaderboard import ResultsStore
from okapi_kit.report import build_report, import_lm_eval, task_language

DATE = "2025-03-01T10-20-30.123456"


def results_json(arc_acc: float, *, mmlu_subjects: tuple[float, float] = (0.5, 0.25)) -> dict:
    """lm-eval 0.4's results file, as `lm_eval --output_path ... --log_samples` writes it."""
    algebra, anatomy = mmlu_subjects
    group = (algebra * 4 + anatomy * 4) / 8
    return {
        "results": {
            "arc_vi": {"alias": "arc_vi", "acc,none": arc_acc, "acc_stderr,none": 0.2,
                       "acc_norm,none": 0.5, "acc_norm_stderr,none": 0.25},
            "belebele_vie_Latn": {"alias": "belebele_vie_Latn", "acc,none": 0.3, "acc_stderr,none": 0.05,
                                  "acc_norm,none": 0.3, "acc_norm_stderr,none": 0.05},
            "global_mmlu_full_vi": {"alias": "global_mmlu_full_vi", "acc,none": group,
                                    "acc_stderr,none": 0.17},
            "global_mmlu_full_vi_abstract_algebra": {"alias": " - abstract_algebra", "acc,none": algebra,
                                                     "acc_stderr,none": 0.29},
            "global_mmlu_full_vi_anatomy": {"alias": " - anatomy", "acc,none": anatomy,
                                            "acc_stderr,none": 0.25},
            "mgsm_direct_bn": {"alias": "mgsm_direct_bn", "exact_match,remove_whitespace": 0.1,
                               "exact_match_stderr,remove_whitespace": "N/A"},
        },
        "groups": {"global_mmlu_full_vi": {"alias": "global_mmlu_full_vi", "acc,none": group,
                                           "acc_stderr,none": 0.17}},
        "group_subtasks": {"global_mmlu_full_vi": ["global_mmlu_full_vi_abstract_algebra",
                                                   "global_mmlu_full_vi_anatomy"],
                           "arc_vi": [], "belebele_vie_Latn": [], "mgsm_direct_bn": []},
        "configs": {"arc_vi": {"task": "arc_vi", "output_type": "multiple_choice", "num_fewshot": 25,
                               "training_split": "train", "validation_split": "validation",
                               "test_split": "test"},
                    "belebele_vie_Latn": {"task": "belebele_vie_Latn", "output_type": "multiple_choice"},
                    "mgsm_direct_bn": {"task": "mgsm_direct_bn", "output_type": "generate_until"}},
        "versions": {"arc_vi": 1.0, "belebele_vie_Latn": 0.0, "global_mmlu_full_vi": 0.0,
                     "mgsm_direct_bn": 3.0},
        "n-shot": {"arc_vi": 25, "belebele_vie_Latn": 0, "global_mmlu_full_vi_abstract_algebra": 0,
                   "global_mmlu_full_vi_anatomy": 0, "mgsm_direct_bn": 0},
        "higher_is_better": {"arc_vi": {"acc": True, "acc_norm": True}},
        "n-samples": {"arc_vi": {"original": 1170, "effective": 4},
                      "belebele_vie_Latn": {"original": 900, "effective": 900},
                      "global_mmlu_full_vi_abstract_algebra": {"original": 100, "effective": 4},
                      "global_mmlu_full_vi_anatomy": {"original": 135, "effective": 4},
                      "mgsm_direct_bn": {"original": 250, "effective": 250}},
        "config": {"model": "hf", "model_args": "pretrained=/models/sft", "batch_size": "auto"},
        "git_hash": None, "date": 1740824430.0, "lm_eval_version": "0.4.9",
        "model_name": "/models/sft", "model_name_sanitized": "__models__sft",
        "task_hashes": {}, "total_evaluation_time_seconds": "12.5",
    }


def sample(doc_id: int, acc: float, acc_norm: float) -> dict:
    """A line of samples_<task>_<date>.jsonl (fields as lm-eval 0.4 writes them)."""
    return {"doc_id": doc_id, "doc": {"id": f"Mercury_{doc_id}", "question": "?"}, "target": 2,
            "arguments": {"gen_args_0": {"arg_0": "Question: ?", "arg_1": " A"}},
            "resps": [[["-1.5", "False"]]], "filtered_resps": [["-1.5", "False"]], "filter": "none",
            "metrics": ["acc", "acc_norm"], "doc_hash": "x", "prompt_hash": "y", "target_hash": "z",
            "acc": acc, "acc_norm": acc_norm}


def write_run(folder: Path, arc: list[int], *, subjects=((1, 1, 0, 0), (1, 0, 0, 0))) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"results_{DATE}.json"
    algebra, anatomy = (sum(s) / len(s) for s in subjects)
    path.write_text(json.dumps(results_json(sum(arc) / len(arc), mmlu_subjects=(algebra, anatomy))),
                    encoding="utf-8")
    lines = [sample(i, float(c), 0.5) for i, c in enumerate(arc)]
    (folder / f"samples_arc_vi_{DATE}.jsonl").write_text("\n".join(map(json.dumps, lines)) + "\n")
    for name, values in zip(("abstract_algebra", "anatomy"), subjects):
        rows = [dict(sample(i, float(v), float(v)), metrics=["acc"]) for i, v in enumerate(values)]
        (folder / f"samples_global_mmlu_full_vi_{name}_{DATE}.jsonl").write_text(
            "\n".join(map(json.dumps, rows)) + "\n")
    return path


@pytest.mark.parametrize("task, expected", [
    ("arc_vi", ("vi", "arc")),
    ("hellaswag_vi", ("vi", "hellaswag")),
    ("m_mmlu_vi", ("vi", "mmlu")),  # okapi-kit's lm_eval evaluator calls it mmlu
    ("global_mmlu_full_vi", ("vi", "global_mmlu_full")),
    ("global_mmlu_full_vi_us_foreign_policy", ("vi", "global_mmlu_full_us_foreign_policy")),
    ("xcopa_vi", ("vi", "xcopa")),
    ("xcopa_sw", ("sw", "xcopa")),
    ("belebele_vie_Latn", ("vi", "belebele")),
    ("belebele_npi_Deva", ("ne", "belebele")),
    ("belebele_quy_Latn", ("quy", "belebele")),
    ("mgsm_direct_bn", ("bn", "mgsm_direct")),
    ("include_base_44_vietnamese", ("vi", "include_base_44")),
    ("arc_challenge", None),
    ("hellaswag", None),
])
def test_language_from_the_task_name(task, expected):
    assert task_language(task) == expected


def test_import_reads_every_task_metric_and_item(tmp_path):
    path = write_run(tmp_path / "sft", [1, 0, 1, 1])
    rows = import_lm_eval([path], run="mine", method="sft")
    got = {(r.language, r.task, r.metric): r for r in rows}
    assert set(got) == {("vi", "arc", "acc"), ("vi", "arc", "acc_norm"), ("vi", "belebele", "acc"),
                        ("vi", "belebele", "acc_norm"), ("vi", "global_mmlu_full", "acc"),
                        ("bn", "mgsm_direct", "exact_match,remove_whitespace")}
    arc = got[("vi", "arc", "acc")]
    assert (arc.run, arc.method, arc.model, arc.value, arc.stderr, arc.n) == ("mine", "sft", "-", 0.75, 0.2, 4)
    # as okapi-kit's lm_eval evaluator writes it, so imports line up with the pipeline's results
    assert arc.protocol == "lm-eval; arc_vi; 25-shot from train; lm-eval 0.4.9"
    assert got[("vi", "global_mmlu_full", "acc")].protocol == "lm-eval; global_mmlu_full_vi; 0-shot; lm-eval 0.4.9"
    okapi = import_lm_eval([path], run="mine", method="sft", protocol="okapi")
    assert {r.protocol.split(";")[0] for r in okapi} == {"okapi"}
    # keyed by each document's own id (every one has a distinct one), as the pipeline keys them
    assert arc.items == {"Mercury_0": 1.0, "Mercury_1": 0.0, "Mercury_2": 1.0, "Mercury_3": 1.0}
    assert got[("vi", "arc", "acc_norm")].items == {f"Mercury_{i}": 0.5 for i in range(4)}
    # a group: its subtasks' items, prefixed by the subtask; n summed over the subtasks
    mmlu = got[("vi", "global_mmlu_full", "acc")]
    assert mmlu.n == 8 and len(mmlu.items) == 8
    assert mmlu.items["global_mmlu_full_vi_anatomy/Mercury_0"] == 1.0
    assert got[("bn", "mgsm_direct", "exact_match,remove_whitespace")].stderr is None  # "N/A"
    assert got[("vi", "belebele", "acc")].items is None  # no samples file
    # subtasks on request
    with_subtasks = import_lm_eval([path], run="mine", method="sft", subtasks=True)
    assert {r.task for r in with_subtasks} >= {"global_mmlu_full_abstract_algebra", "global_mmlu_full_anatomy"}


def test_items_that_do_not_add_up_to_the_value_are_dropped(tmp_path):
    path = write_run(tmp_path / "sft", [1, 0, 1, 1])
    data = json.loads(path.read_text())
    data["results"]["arc_vi"]["acc,none"] = 0.5  # not the mean of the samples' 0.75
    path.write_text(json.dumps(data))
    arc = next(r for r in import_lm_eval([path], run="r", method="sft") if r.task == "arc" and r.metric == "acc")
    assert arc.value == 0.5 and arc.items is None


def test_repeated_lines_of_one_document_are_one_item(tmp_path):
    path = write_run(tmp_path / "sft", [1, 0])
    samples = tmp_path / "sft" / f"samples_arc_vi_{DATE}.jsonl"
    lines = [sample(0, 1.0, 1.0), sample(0, 0.0, 0.0), sample(1, 1.0, 1.0), sample(1, 1.0, 1.0)]
    samples.write_text("\n".join(map(json.dumps, lines)))
    data = json.loads(path.read_text())
    data["results"]["arc_vi"]["acc,none"] = 0.75
    path.write_text(json.dumps(data))
    arc = next(r for r in import_lm_eval([path], run="r", method="sft") if r.task == "arc" and r.metric == "acc")
    assert arc.items == {"Mercury_0": 0.5, "Mercury_1": 1.0}


def test_samples_given_on_the_command_line_and_inline(tmp_path):
    path = write_run(tmp_path / "a", [1, 1, 0, 0])
    renamed = tmp_path / "results.json"  # no date in the name: the samples must be named
    renamed.write_text(path.read_text())
    rows = import_lm_eval([renamed], run="r", method="sft")
    assert all(r.items is None for r in rows)
    # okapi-kit's lm_eval evaluator names its samples files lm_eval_samples_<task>.jsonl
    okapi = tmp_path / "okapi"
    okapi.mkdir()
    (okapi / "lm_eval_results.json").write_text(path.read_text())
    (okapi / "lm_eval_samples_arc_vi.jsonl").write_text(
        (tmp_path / "a" / f"samples_arc_vi_{DATE}.jsonl").read_text())
    arc = next(r for r in import_lm_eval([okapi / "lm_eval_results.json"], run="r", method="sft")
               if r.task == "arc" and r.metric == "acc")
    assert len(arc.items) == 4
    rows = import_lm_eval([renamed, tmp_path / "a" / f"samples_arc_vi_{DATE}.jsonl"], run="r", method="sft")
    assert next(r for r in rows if r.task == "arc" and r.metric == "acc").items == {
        "Mercury_0": 1.0, "Mercury_1": 1.0, "Mercury_2": 0.0, "Mercury_3": 0.0}
    data = json.loads(path.read_text())
    data["samples"] = {"arc_vi": [sample(i, float(c), 0.5) for i, c in enumerate([1, 1, 0, 0])]}
    data["okapi_kit"] = {"label": "dpo", "language": "vi"}  # as okapi-kit's evaluator writes it
    renamed.write_text(json.dumps(data))
    rows = import_lm_eval([renamed], run="r")
    arc = next(r for r in rows if r.task == "arc" and r.metric == "acc")
    assert arc.method == "dpo" and len(arc.items) == 4


def pipeline_rows(arc: list[int], *, method: str, own_ids: bool = True) -> list:
    """What okapi-kit's lm_eval evaluator stores for arc_vi (Scores made by its own code from
    lm-eval's results and samples), as the evaluate stage turns them into rows."""
    from okapi_kit_lm_eval.prepare import RunPlan
    from okapi_kit_lm_eval.results import to_scores
    from okapi_kit_lm_eval.specs import TaskSpec

    from okapi_kit.leaderboard import ResultRow

    results = results_json(sum(arc) / len(arc))
    lines = [sample(i, float(c), 0.5) for i, c in enumerate(arc)]
    if not own_ids:
        for line in lines:
            del line["doc"]["id"]
    plan = RunPlan(names=["arc_vi"], specs={"arc_vi": TaskSpec("arc", "arc", okapi="arc")},
                   protocols={"arc_vi": "lm-eval"})
    return [ResultRow(run="mine", model="-", method=method, language="vi", task=s.task, metric=s.metric,
                      value=s.value, stderr=s.stderr, n=s.n, protocol=s.protocol, items=s.items)
            for s in to_scores(results, {"arc_vi": lines}, plan, "0.4.9")]


@pytest.mark.parametrize("own_ids", [True, False])
def test_imported_and_pipeline_results_of_the_same_items_pair_up(tmp_path, own_ids):
    """Both sides key an item by the document's own id (else by doc_id alike), so the paired
    bootstrap compares an imported model with one the pipeline evaluated."""
    sft = pipeline_rows([1, 0, 0, 0, 1, 0, 0, 0] * 10, method="sft", own_ids=own_ids)
    path = write_run(tmp_path / "ppo", [1, 1, 1, 0, 1, 1, 0, 1] * 10)
    if not own_ids:
        samples = path.parent / f"samples_arc_vi_{DATE}.jsonl"
        lines = [json.loads(x) for x in samples.read_text().splitlines()]
        for line in lines:
            del line["doc"]["id"]
        samples.write_text("\n".join(map(json.dumps, lines)) + "\n")
    ppo = [r for r in import_lm_eval([path], run="mine", method="ppo") if r.task == "arc"]
    arc_sft = next(r for r in sft if r.metric == "acc")
    arc_ppo = next(r for r in ppo if r.metric == "acc")
    assert arc_sft.items.keys() == arc_ppo.items.keys() and len(arc_sft.items) == 80
    assert ("Mercury_0" in arc_sft.items) is own_ids
    assert arc_sft.protocol == arc_ppo.protocol
    report = build_report(sft + ppo, compare=[("sft", "ppo")])
    diff = next(d for d in report.differences if (d.task, d.metric) == ("arc", "acc"))
    assert (diff.how, diff.items) == ("bootstrap", 80) and diff.delta == pytest.approx(0.5)


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("{", "invalid JSON"),
    ("[]", "not an lm-eval results file"),
    ('{"results": {}}', "no results to import"),
    ('{"results": {"arc_challenge": {"acc,none": 0.5}}}', "cannot tell the language of task 'arc_challenge'"),
])
def test_bad_files_are_refused(tmp_path, content, message):
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(OkapiError, match=message) as err:
        import_lm_eval([path], run="r", method="sft")
    assert str(path) in err.value.where and err.value.hint


def test_language_option_and_missing_method(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{"results": {"arc_challenge": {"acc,none": 0.5, "acc_stderr,none": 0.1}}}')
    [row] = import_lm_eval([path], run="r", method="sft", language="en")
    assert (row.language, row.task, row.protocol) == ("en", "arc_challenge", "lm-eval; arc_challenge; 0-shot; lm-eval ?")
    with pytest.raises(OkapiError, match="which method produced these results") as err:
        import_lm_eval([path], run="r", language="en")
    assert "--method" in err.value.hint
    with pytest.raises(OkapiError, match="two results for sft en arc_challenge"):
        import_lm_eval([path, path], run="r", method="sft", language="en")


# ---- the command ---------------------------------------------------------------------------------

def test_import_command_then_paired_comparison(tmp_path, capsys):
    db = tmp_path / "lb.sqlite"
    sft = write_run(tmp_path / "sft", [1, 0, 0, 0, 1, 0, 0, 0] * 10)
    ppo = write_run(tmp_path / "ppo", [1, 1, 1, 0, 1, 1, 0, 1] * 10)
    assert main(["leaderboard", "import", str(sft), "--run", "mine", "--method", "sft", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "imported 6 results (3 with per-item values) of sft in bn, vi into run 'mine'" in out
    # the leaderboard's own --db is used by import too
    assert main(["leaderboard", "--db", str(db), "import", str(ppo), "--run", "mine", "--method", "ppo"]) == 0
    capsys.readouterr()
    rows = ResultsStore(db, create=False).rows(run="mine")
    assert len(rows) == 12 and sum(1 for r in rows if r.items) == 6
    report = build_report(rows, compare=[("sft", "ppo")])
    arc = next(d for d in report.differences if (d.task, d.metric) == ("arc", "acc"))
    assert arc.how == "bootstrap" and arc.items == 80 and arc.verdict == "better"
    assert arc.delta == pytest.approx(0.75 - 0.25)
    assert main(["leaderboard", "--db", str(db), "--run", "mine", "--compare", "sft", "ppo",
                 "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert [(x["language"], x["task"]) for x in summary[0]["better"]] == [("vi", "arc")]
    # importing the same file again replaces its rows (and items)
    assert main(["leaderboard", "import", str(ppo), "--run", "mine", "--method", "ppo", "--db", str(db)]) == 0
    assert len(ResultsStore(db).rows(run="mine")) == 12


def test_import_command_protocols_must_match(tmp_path, capsys):
    db = tmp_path / "lb.sqlite"
    sft = write_run(tmp_path / "sft", [1, 0, 1, 0])
    ppo = write_run(tmp_path / "ppo", [1, 1, 1, 0])
    data = json.loads(ppo.read_text())
    data["lm_eval_version"] = "0.4.11"
    ppo.write_text(json.dumps(data))
    for path, method in ((sft, "sft"), (ppo, "ppo")):
        assert main(["leaderboard", "import", str(path), "--run", "m", "--method", method, "--db", str(db)]) == 0
    capsys.readouterr()
    assert main(["leaderboard", "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert "cannot compare ppo with sft" in err
    assert re.search(r"sft was measured with protocol 'lm-eval; [^']*; lm-eval 0\.4\.9' and ppo with "
                     r"'lm-eval; [^']*; lm-eval 0\.4\.11'", err)  # both protocols named
    # one version, but the settings named differently: refused too
    for path, method, protocol in ((sft, "sft", "okapi"), (sft, "ppo", "lm-eval")):
        assert main(["leaderboard", "import", str(path), "--run", "n", "--method", method, "--db", str(db),
                     "--protocol", protocol]) == 0
    assert main(["leaderboard", "--db", str(db), "--run", "n", "--format", "csv"]) == 2
    assert "'okapi; " in capsys.readouterr().err
    assert main(["leaderboard", "import", str(sft), "--run", "n", "--method", "ppo", "--db", str(db),
                 "--protocol", "okapi"]) == 0
    assert main(["leaderboard", "--db", str(db), "--run", "n", "--format", "csv"]) == 0


@pytest.mark.parametrize("args, message", [
    (["missing.json", "--method", "sft"], "missing.json: no such file"),
    (["r.json", "--method", "sft", "--language", "Vietnamese"], "'Vietnamese' is not a language code"),
    (["r.json", "--method", " "], "--method is empty"),
    ([], "Missing argument"),
])
def test_import_command_bad_input(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.json").write_text('{"results": {"arc_vi": {"acc,none": 0.5}}}')
    assert main(["leaderboard", "import", *args, "--db", "lb.sqlite"] if args else
                ["leaderboard", "import"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "lb.sqlite").exists()
