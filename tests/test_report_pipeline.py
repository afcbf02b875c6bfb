"""Per-item values from an evaluator through the pipeline's evaluation units into the results
store, and the run's HTML page from there."""

from __future__ import annotations

from pathlib import Path

from okapi_kit.components import EvalTarget, Evaluator, Score
from okapi_kit.config import validate_config
from okapi_kit.graph import Runner
from okapi_kit.leaderboard import ResultsStore
from okapi_kit.plugins import registry
from okapi_kit.registry import Registry
from okapi_kit.report import build_report, write_run_page
from okapi_kit.stages import build_plan
from okapi_kit.stages.evaluate import result_rows
from okapi_kit.ui import UI

# what each model gets right on 40 prompts: "strong" fixes 12 of "weak"'s mistakes
CORRECT = {"weak": [1] * 20 + [0] * 20, "strong": [1] * 32 + [0] * 8}


class PerPromptEvaluator(Evaluator):
    """Scores a model by its name, with one item per prompt (for tests)."""

    name = "per_prompt_test"

    def evaluate(self, target: EvalTarget) -> list[Score]:
        correct = CORRECT[target.label]
        items = {f"p{i}": float(c) for i, c in enumerate(correct)}
        return [Score(task="quiz", metric="acc", value=sum(correct) / len(correct), stderr=None,
                      n=len(correct), protocol="test", items=items),
                Score(task="quiz_total", metric="acc", value=0.5, stderr=0.1, n=40, protocol="test")]


class Hooks:
    def __getattr__(self, name):
        return lambda **kw: None


class PM:
    hook = Hooks()


def test_items_travel_from_the_evaluator_to_the_store_and_the_page(tmp_path: Path):
    reg = Registry()
    for entry in registry().entries():
        reg.add(entry.kind, entry.cls, plugin=entry.plugin)
    reg.add("evaluator", PerPromptEvaluator, plugin="test")
    for label in CORRECT:  # the evaluator never loads them: folders are enough
        (tmp_path / "models" / label).mkdir(parents=True)
        (tmp_path / "models" / label / "config.json").write_text("{}")
    cfg = validate_config({"name": "items", "languages": ["vi", "bn"],
                           "models": {"weak": "models/weak", "strong": "models/strong"},
                           "evaluation": {"models": ["weak", "strong"], "evaluators": ["per_prompt_test"]}},
                          "test")
    plan = build_plan(cfg, base_dir=tmp_path, run_dir=tmp_path / "run", registry=reg)
    Runner(plan, ui=UI(quiet=True), pm=PM(), config_dump={}).run()
    rows = result_rows(plan)
    assert len(rows) == 8
    quiz = {(r.method, r.language): r for r in rows if r.task == "quiz"}
    assert quiz[("strong", "vi")].items == {f"p{i}": float(c) for i, c in enumerate(CORRECT["strong"])}
    assert all(r.items is None for r in rows if r.task == "quiz_total")
    db = tmp_path / "lb.sqlite"
    ResultsStore(db).replace_run("items", rows)
    stored = ResultsStore(db, create=False).rows(run="items")
    assert {(r.method, r.language): r.items for r in stored if r.task == "quiz"} == {
        k: r.items for k, r in quiz.items()}
    report = build_report(stored, compare=[("weak", "strong")])
    d = next(d for d in report.differences if d.task == "quiz" and d.language == "vi")
    assert (d.how, d.items, d.verdict) == ("bootstrap", 40, "better")
    page = write_run_page(db, "items", tmp_path / "run" / "leaderboard.html",
                          compare=[("weak", "strong")]).read_text(encoding="utf-8")
    assert '<tr data-language="vi">' in page and '<tr data-language="bn">' in page
    assert "strong vs weak: better in 2" in page
