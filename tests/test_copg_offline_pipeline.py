"""``copg_offline`` in the pipeline and in ``okapi-kit train``: the align unit plans on rankings (with
the run's reward model only when some ranking may lack scores), its scored pairs come from the
rankings' own scores or from a reward source, and a tiny run trains."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from okapi_kit import OkapiError  # noqa: E402
from okapi_kit.cli import main  # noqa: E402
from okapi_kit.config import validate_config  # noqa: E402
from okapi_kit.graph import Model, Records  # noqa: E402
from okapi_kit.plugins import registry  # noqa: E402
from okapi_kit.records import Ranking  # noqa: E402
from okapi_kit.stages import build_plan  # noqa: E402
from okapi_kit.stages.scored_pairs import scored_pairs  # noqa: E402

SCORED = [
    {"id": "k1", "prompt": "P1", "responses": ["a", "bb", "ccc"], "scores": [0.2, 0.9, 0.5]},
    {"id": "p1", "prompt": "P2", "chosen": "yes", "rejected": "no", "chosen_reward": 1.0, "rejected_reward": -1.0},
]
UNSCORED = [{"id": "u1", "prompt": "P3", "chosen": "good", "rejected": "bad"}]
REWARD_PY = "def length(prompts, completions, **kwargs):\n    return [float(len(c)) for c in completions]\n"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def stand_in_model(tmp: Path, name: str) -> str:
    folder = tmp / "models" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}")
    return f"models/{name}"


def config(tmp: Path, rows: list[dict], **extra) -> dict:
    write_jsonl(tmp / "rankings.jsonl", rows)
    align = {"method": "copg", "trainer": {"name": "copg_offline", "options": {"max_steps": 1}}}
    align.update(extra.pop("align", {}))
    return {"name": "copg", "languages": ["vi"], "models": {"sft": stand_in_model(tmp, "sft"), **extra.pop("models", {})},
            "data": {"rankings": {"vi": "rankings.jsonl"}}, "alignment": [align],
            "evaluation": {"models": [], "evaluators": []}, **extra}


def align_unit(cfg: dict, tmp: Path):
    plan = build_plan(validate_config(cfg, "test"), base_dir=tmp, run_dir=tmp / "run", registry=registry())
    return next(u for u in plan.units if u.key == "align/copg")


def test_the_unit_plans_on_rankings_and_reads_the_rm_only_when_scores_may_be_missing(tmp_path):
    rm = stand_in_model(tmp_path, "rm")
    rankings, sft = Records("rankings", "vi"), Model("sft", None)
    assert align_unit(config(tmp_path, SCORED), tmp_path).consumes == [sft, rankings]
    # every supplied record has its rewards: an RM of the run is not read
    assert Model("rm", None) not in align_unit(config(tmp_path, SCORED, models={"rm": rm}), tmp_path).consumes
    # a record without them: the run's RM scores the pairs
    assert align_unit(config(tmp_path, SCORED + UNSCORED, models={"rm": rm}), tmp_path).consumes == [
        sft, rankings, Model("rm", None)]
    # ... and with nothing to score them, planning fails at the record
    with pytest.raises(OkapiError) as err:
        align_unit(config(tmp_path, SCORED + UNSCORED), tmp_path)
    assert err.value.where.endswith("rankings.jsonl:3") and "has no rewards" in err.value.message
    assert "chosen_reward" in err.value.hint and "reward_model stage" in err.value.hint
    # the alignment's own reward source: read in place of the scores (its file is an input)
    (tmp_path / "rewards.py").write_text(REWARD_PY)
    unit = align_unit(config(tmp_path, UNSCORED, align={"reward": {"name": "callable", "options": {
        "function": "rewards.py:length"}}}), tmp_path)
    assert unit.consumes == [sft, rankings] and unit.reads["reward"]["component"] == "callable"
    assert tmp_path / "rewards.py" in unit.files


def test_rankings_of_the_rank_stage_read_the_runs_rm(tmp_path):
    """A ranker's scores are known only once it has ranked: the run's RM is read, to score them
    if they have none."""
    cfg = config(tmp_path, SCORED, ranking={"ranker": "reference_chrf"},
                 reward_model={"trainer": {"name": "reward", "options": {"max_steps": 1}}})
    write_jsonl(tmp_path / "samples.jsonl", [{"id": "s", "prompt": "P", "responses": ["a", "b"], "reference": "a"}])
    cfg["data"] = {"samples": {"vi": "samples.jsonl"}}
    unit = align_unit(cfg, tmp_path)
    assert Model("rm", None) in unit.consumes and Records("rankings", "vi") in unit.consumes


def test_scored_pairs_follow_the_ranking_and_its_scores():
    r = Ranking(id="k", lang="vi", prompt="P", responses=["a", "b", "c", "b"], order=[1, 2, 0, 3],
                scores=[0.2, 0.9, 0.5, 0.1])
    rows = scored_pairs([r], [r.scores], "all", lambda x: x.prompt)
    got = [(x["chosen"], x["rejected"], x["chosen_reward"], x["rejected_reward"]) for x in rows]
    # C(4,2) pairs in ranked order, but b against b is no pair
    assert got == [("b", "c", 0.9, 0.5), ("b", "a", 0.9, 0.2), ("c", "a", 0.5, 0.2), ("c", "b", 0.5, 0.1),
                   ("a", "b", 0.2, 0.1)]
    assert scored_pairs([r], [r.scores], "best_worst", lambda x: x.prompt) == []  # the best is the worst: b
    r.order = [1, 2, 3, 0]
    assert scored_pairs([r], [r.scores], "best_worst", lambda x: "fmt " + x.prompt) == [
        {"prompt": "fmt P", "chosen": "b", "rejected": "a", "chosen_reward": 0.9, "rejected_reward": 0.2}]


@pytest.fixture
def captured(monkeypatch):
    """The records copg_offline would train on (no training: a stand-in folder is saved)."""
    from okapi_kit_rl.copg import OfflineCoPGTrainer

    from okapi_kit import TrainResult

    seen: list[list[dict]] = []

    def train(self, job):
        seen.append(job.records)
        job.output_dir.mkdir(parents=True)
        (job.output_dir / "config.json").write_text("{}")
        return TrainResult(job.output_dir)

    monkeypatch.setattr(OfflineCoPGTrainer, "train", train)
    return seen


def test_the_records_come_from_the_scores_or_the_reward(tmp_path, monkeypatch, captured):
    monkeypatch.chdir(tmp_path)
    stand_in_model(tmp_path, "sft")
    write_jsonl(tmp_path / "pairs.jsonl", SCORED)
    args = ["train", "copg_offline", "--model", "models/sft", "--data", "pairs.jsonl", "--quiet"]
    assert main([*args, "--output", "a", "--set", "alignment.0.pairs=best_worst"]) == 0
    assert captured[-1][0] == {"prompt": "P1", "chosen": "bb", "rejected": "a", "chosen_reward": 0.9,
                               "rejected_reward": 0.2}
    assert [(r["chosen"], r["rejected"], r["chosen_reward"], r["rejected_reward"]) for r in captured[-1]][1:] == [
        ("yes", "no", 1.0, -1.0)]
    assert main([*args, "--output", "b"]) == 0
    assert len(captured[-1]) == 3 + 1  # all C(3,2) pairs of the ranking, and the pair
    # --reward scores every response in place of the file's rewards
    (tmp_path / "rewards.py").write_text(REWARD_PY)
    write_jsonl(tmp_path / "plain.jsonl", UNSCORED)
    assert main([*args[:5], "plain.jsonl", "--quiet", "--output", "c", "--reward", "rewards.py:length"]) == 0
    assert [(r["chosen_reward"], r["rejected_reward"]) for r in captured[-1]] == [(4.0, 3.0)]


def test_rankings_without_scores_and_no_reward_fail_the_unit(tmp_path, monkeypatch, captured, capsys):
    """The reference_chrf ranker gives no scores; with no reward model in the run the unit says so."""
    monkeypatch.chdir(tmp_path)
    cfg = config(tmp_path, SCORED, ranking={"ranker": "reference_chrf"})
    write_jsonl(tmp_path / "samples.jsonl", [{"id": "s", "prompt": "P", "responses": ["a", "b"], "reference": "a"}])
    cfg["data"] = {"samples": {"vi": "samples.jsonl"}}
    (tmp_path / "cfg.yaml").write_text(json.dumps(cfg))
    assert main(["run", "cfg.yaml", "--run-dir", "r", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "ranking 's' (vi) has no per-response scores" in err and "align/copg" in err
    assert not captured


@pytest.mark.slow
def test_okapi_kit_train_copg_offline_trains_a_tiny_model(tmp_path, monkeypatch):
    from okapi_kit_transformers.tiny import write_tiny_model

    monkeypatch.chdir(tmp_path)
    tiny = write_tiny_model(tmp_path / "tiny", hidden=32, layers=1, heads=2)
    rows = [{"prompt": f"Question {i}: ", "chosen": "a a a", "rejected": "b", "chosen_reward": 1.0,
             "rejected_reward": 0.0} for i in range(8)]
    write_jsonl(tmp_path / "pairs_vi.jsonl", rows)
    (tmp_path / "o.yaml").write_text("max_steps: 2\nbatch_size: 4\nlearning_rate: 0.001\ndevice: cpu\n")
    assert main(["train", "copg_offline", "--model", str(tiny), "--data", "pairs_vi.jsonl", "--options", "o.yaml",
                 "--output", "run", "--quiet"]) == 0
    model = tmp_path / "run" / "models" / "copg_offline"
    assert (model / "model.safetensors").is_file()
    lines = [json.loads(x) for x in (model / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [1, 2] and lines[0]["reward_gap"] == pytest.approx(1.0)


def test_the_reward_a_unit_gets(tmp_path):
    """Online RL without ``reward:`` gets the run's RM; copg_offline gets it only when it reads it."""
    from okapi_kit.graph.unit import UnitRun
    from okapi_kit.stages import align

    def reward_of(cfg: dict):
        plan = build_plan(validate_config(cfg, "test"), base_dir=tmp_path, run_dir=tmp_path / "run",
                          registry=registry())
        unit = next(u for u in plan.units if u.key.startswith("align/"))
        return align._reward_source(UnitRun(unit, "f" * 64, plan), 0, None)

    rm = stand_in_model(tmp_path, "rm")
    write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": "P"}])
    online = config(tmp_path, SCORED, models={"rm": rm}, align={"trainer": "rloo"})
    online["data"] = {"prompts": {"vi": "prompts.jsonl"}}
    source = reward_of(online)
    assert source.name == "reward_model" and source.config.path == str(tmp_path / rm)
    assert reward_of(config(tmp_path, SCORED + UNSCORED, models={"rm": rm})).config.path == str(tmp_path / rm)
    assert reward_of(config(tmp_path, SCORED, models={"rm": rm})) is None
