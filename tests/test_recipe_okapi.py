"""The recipe "Align with Okapi's released data" runs from its shipped config.

docs/recipes/okapi-released-data.yaml is copied next to a data folder laid out as the recipe
says, filled with the small Okapi-format files of tests/data/okapi (and the demo's lm-eval
files); only the base model and the training lengths are changed, with --set.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from okapi_kit.cli import main
from okapi_kit.graph import Model, RunLayout
from okapi_kit.leaderboard import ResultsStore

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "docs" / "recipes" / "okapi-released-data.yaml"
OKAPI_FILES = ROOT / "tests" / "data" / "okapi"
EVAL_FILES = ROOT / "okapi_kit" / "demo" / "data" / "eval"
FOLDERS = ("multilingual-alpaca-52k", "multilingual-ranking-data-42k", "multilingual-rl-tuning-64k")
LANGS = ("vi", "bn")

pytestmark = pytest.mark.slow


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """The recipe's config beside ``data/`` holding Okapi's folders and the lm-eval files."""
    root = tmp_path / "project"
    for folder in FOLDERS:
        shutil.copytree(OKAPI_FILES / folder, root / "data" / folder)
    shutil.copytree(EVAL_FILES, root / "data" / "eval")
    shutil.copy(RECIPE, root / "okapi.yaml")
    return root / "okapi.yaml"


def _shrink() -> list[str]:
    """--set overrides: a tiny random model and one or two optimiser steps per trainer."""
    sets = ["base_model=tiny:llama:32x1"]
    for trainer in ("sft.trainer", "reward_model.trainer", "alignment.0.trainer"):
        sets += [f"{trainer}.options.max_steps=1", f"{trainer}.options.batch_size=8",
                 f"{trainer}.options.gradient_accumulation_steps=1", f"{trainer}.options.max_length=256"]
    lm_eval = "evaluation.evaluators.0.options"
    sets += [f"{lm_eval}.tasks=[arc]", f"{lm_eval}.limit=4", f"{lm_eval}.protocol=lm-eval"]
    return [arg for s in sets for arg in ("--set", s)]


def test_the_recipe_page_shows_the_shipped_config():
    page = (RECIPE.parent / "okapi-released-data.md").read_text(encoding="utf-8")
    assert "```yaml\n" + RECIPE.read_text(encoding="utf-8") + "```" in page, (
        "docs/recipes/okapi-released-data.md must show okapi-released-data.yaml whole; keep them in sync")


def test_the_shipped_config_names_okapis_files_and_validates(project, capsys):
    cfg = yaml.safe_load(RECIPE.read_text(encoding="utf-8"))
    named = [p for kind in cfg["data"].values() for p in kind.values()]
    assert sorted(named) == sorted(f"data/{folder}/{lang}.json" for folder in FOLDERS[:2] for lang in LANGS)
    assert cfg["base_model"] and not cfg["base_model"].startswith("tiny:")  # a real model as shipped
    assert main(["validate", str(project)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "OK" in out and "translate" not in out and "sample" not in out


def test_the_recipe_trains_sft_rm_dpo_and_fills_the_leaderboard(project, tmp_path, monkeypatch, capsys):
    elsewhere = tmp_path / "elsewhere"  # relative paths in the config must not depend on this
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run_dir, db = tmp_path / "run", tmp_path / "results.sqlite"
    rc = main(["run", str(project), "--run-dir", str(run_dir), "--db", str(db), "--quiet", *_shrink()])
    assert rc == 0, capsys.readouterr().err

    layout = RunLayout(run_dir)
    for label in ("sft", "rm", "dpo"):  # model_scope: per_language, as in Okapi
        for lang in LANGS:
            folder = layout.model(Model(label, lang))
            assert any(folder.glob("*.safetensors")), f"no {label} model for {lang} in {folder}"

    units = json.loads(layout.manifest.read_text(encoding="utf-8"))["units"]
    assert not [k for k in units if k.split("/")[0] in ("instructions", "translate", "sample", "rank")]
    for lang in LANGS:  # every Okapi record reached its trainer: one pair per ranking record
        alpaca = json.loads((project.parent / "data" / FOLDERS[0] / f"{lang}.json").read_text("utf-8"))
        pairs = json.loads((project.parent / "data" / FOLDERS[1] / f"{lang}.json").read_text("utf-8"))
        assert units[f"sft/{lang}"]["info"]["records"] == len(alpaca)
        assert units[f"reward_model/{lang}"]["info"]["records"] == len(pairs)
        assert units[f"align/dpo/{lang}"]["info"]["records"] == len(pairs)

    rows = ResultsStore(db, create=False).rows(run="okapi-released")
    assert {(r.method, r.language) for r in rows} == {(m, lang) for m in ("base", "sft", "dpo") for lang in LANGS}
    assert {r.task for r in rows} == {"arc"}
    assert not list(elsewhere.iterdir()), "the run wrote into the working directory"
