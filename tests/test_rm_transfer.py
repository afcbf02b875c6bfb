"""Cross-lingual reward-model transfer: the matrix and its intervals, the representation measure,
the transfer methods, ``okapi-kit rm-transfer`` on tiny models with known structure, and
``reward: {from: en}`` in the alignment stage."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from okapi_kit_transfer.matrix import ALL, RMRow, to_markdown, transfer_matrix
from okapi_kit_transfer.representation import (
    RepresentationTable,
    mean_cosine,
    mismatched_cosine,
    similarity_rows,
)

from okapi_kit import OkapiError, RewardSource
from okapi_kit.report.stats import newcombe_paired_interval

pytestmark = pytest.mark.usefixtures("one_thread")


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


# ------------------------------------------------------------------ the matrix


def _outcomes(n: int, right: set[int]) -> dict[str, bool]:
    return {f"r{i}": i in right for i in range(n)}


def test_identical_rms_give_identical_rows_and_a_zero_difference():
    rows = [RMRow("rm-en", "en"), RMRow("rm-en-copy", "en"), RMRow("rm-vi", "vi")]
    got_en = {"en": _outcomes(40, set(range(36))), "vi": _outcomes(40, set(range(30))),
              "bn": _outcomes(40, set(range(24)))}
    got_vi = {"en": _outcomes(40, set(range(20))), "vi": _outcomes(40, set(range(5, 33))),
              "bn": _outcomes(40, set(range(22)))}
    outcomes = {("rm-en", t): v for t, v in got_en.items()} | {("rm-en-copy", t): v for t, v in got_en.items()}
    outcomes |= {("rm-vi", t): v for t, v in got_vi.items()}
    m = transfer_matrix(rows, ["en", "vi", "bn"], outcomes)
    for t in ("en", "vi", "bn"):
        a, b = m.cell("rm-en", t), m.cell("rm-en-copy", t)
        assert (a.accuracy, a.ci, a.n) == (b.accuracy, b.ci, b.n)
    same = m.cell("rm-en-copy", "en")  # the copy against the English-native RM: no row differs
    assert same.native == "rm-en" and same.diff == 0.0 and same.diff_ci.low < 0 < same.diff_ci.high
    assert m.cell("rm-en", "en").native == "rm-en"
    # the vi-native RM on vi is rm-vi: rm-en got 30 right, rm-vi 28, with 5 + 3 rows differing
    cell = m.cell("rm-en", "vi")
    assert cell.native == "rm-vi" and cell.diff == pytest.approx((30 - 28) / 40)
    expected = newcombe_paired_interval(25, 3, 5, 7)  # both, only the native, only rm-en, neither
    assert (cell.diff_ci.low, cell.diff_ci.high) == pytest.approx((expected.low, expected.high))
    assert m.cell("rm-en", "bn").native is None and m.cell("rm-en", "bn").diff is None  # no bn RM


def test_a_cell_has_its_wilson_interval_and_averages_leave_the_own_language_out():
    rows = [RMRow("rm-en", "en"), RMRow("rm-vi", "vi")]
    outcomes = {("rm-en", "en"): _outcomes(263, set(range(81))), ("rm-en", "vi"): _outcomes(100, set(range(70))),
                ("rm-vi", "en"): _outcomes(263, set(range(60))), ("rm-vi", "vi"): _outcomes(100, set(range(90)))}
    m = transfer_matrix(rows, ["en", "vi"], outcomes)
    c = m.cell("rm-en", "en")
    assert (c.correct, c.n) == (81, 263)
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion": 81/263 -> 0.2553-0.3662
    assert c.ci.low == pytest.approx(0.2553, abs=1e-4) and c.ci.high == pytest.approx(0.3662, abs=1e-4)
    avg = m.averages[("rm-en", ALL)]
    assert avg.accuracy == pytest.approx((81 / 263 + 0.7) / 2)
    assert avg.transfer_accuracy == pytest.approx(0.7) and avg.transfer_targets == 1
    assert avg.diff == pytest.approx(0.7 - 0.9) and avg.diff_targets == 1  # only vi, where rm-vi is native
    assert avg.accuracy_ci.low < avg.accuracy < avg.accuracy_ci.high


def test_per_category_cells_and_mismatched_rows_are_refused():
    rows = [RMRow("rm-en", "en"), RMRow("rm-vi", "vi")]
    got = _outcomes(10, {0, 1, 2, 3, 4, 5})
    cats = {"vi": {f"r{i}": ("near" if i < 4 else "far") for i in range(10)}}
    m = transfer_matrix(rows, ["vi"], {("rm-en", "vi"): got, ("rm-vi", "vi"): _outcomes(10, {0, 9})}, cats)
    assert m.categories == [ALL, "far", "near"]
    assert (m.cell("rm-en", "vi", "near").correct, m.cell("rm-en", "vi", "near").n) == (4, 4)
    assert (m.cell("rm-en", "vi", "far").correct, m.cell("rm-en", "vi", "far").n) == (2, 6)
    assert m.cell("rm-en", "vi", "far").diff == pytest.approx((2 - 1) / 6)
    text = to_markdown(m)
    assert "| `rm-vi` | native |" in text and "category `near`" in text
    with pytest.raises(ValueError, match="different rows"):
        transfer_matrix(rows, ["vi"], {("rm-en", "vi"): got, ("rm-vi", "vi"): _outcomes(9, {0})})


# ------------------------------------------------------------------ the representation measure


def test_mean_cosine_on_states_with_known_geometry():
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 20, 8))
    assert mean_cosine(a, a) == pytest.approx([1.0, 1.0, 1.0])
    assert mean_cosine(a, -2 * a) == pytest.approx([-1.0, -1.0, -1.0])  # scale does not matter
    b = a.copy()
    b[2] = rng.normal(size=(20, 8))  # the last layer no longer shares content
    sims = mean_cosine(a, b)
    assert sims[:2] == pytest.approx([1.0, 1.0]) and abs(sims[2]) < 0.3
    # parallel items agree, different items do not: the matched mean stands above the baseline
    assert all(abs(x) < 0.3 for x in mismatched_cosine(a, a))
    table = RepresentationTable(layers=3, pooling="last", items=20)
    similarity_rows("rm-x", {"en": a, "vi": b}, {"en": a, "vi": a}, table)
    comps = [c for _, c, _ in table.rows]
    assert comps == ["en~vi", "en~vi mismatched", "rm~base en", "rm~base vi"]
    assert table.rows[2][2] == pytest.approx([1.0, 1.0, 1.0])
    assert RepresentationTable.from_json(json.loads(json.dumps(table.to_json()))).rows[0][2] == \
        pytest.approx(table.rows[0][2], abs=1e-6)
    with pytest.raises(ValueError):
        mean_cosine(a, a[:, :10])


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> Path:
    from okapi_kit_transformers.tiny import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "lm", hidden=32, layers=2)


def test_pooled_states_follow_the_weights_layer_by_layer(tiny_lm, tmp_path):
    """The model against itself is 1 at every layer; with its second block re-drawn, the states
    agree up to block 1 and differ from block 2 on."""
    import torch
    from okapi_kit_transfer.representation import pooled_states
    from transformers import AutoModelForCausalLM

    changed = tmp_path / "changed"
    model = AutoModelForCausalLM.from_pretrained(tiny_lm)
    torch.manual_seed(1)
    for p in model.model.layers[1].parameters():
        if p.dim() > 1:
            torch.nn.init.normal_(p, std=0.5)
    model.save_pretrained(changed)
    shutil.copy(tiny_lm / "tokenizer.json", changed)
    shutil.copy(tiny_lm / "tokenizer_config.json", changed)
    pairs = [(f"What is {i} plus 2?\n", f"It is {i + 2}.") for i in range(6)]
    for pooling in ("last", "mean"):
        a = pooled_states(str(tiny_lm), pairs, pooling=pooling, batch_size=4, device="cpu")
        b = pooled_states(str(changed), pairs, pooling=pooling, batch_size=4, device="cpu")
        assert a.shape == (3, 6, 32)
        assert mean_cosine(a, a) == pytest.approx([1.0] * 3)
        sims = mean_cosine(a, b)
        assert sims[:2] == pytest.approx([1.0, 1.0], abs=1e-5) and sims[2] < 0.95


# ------------------------------------------------------------------ transfer methods


class Recorder(RewardSource):
    """Scores a response by its length, and keeps what it was given."""

    name = "recorder"

    def __init__(self):
        super().__init__()
        self.calls = []

    def score(self, prompts, responses, languages):
        self.calls.append((list(prompts), list(responses), list(languages)))
        return [float(len(r)) for r in responses]


def test_direct_and_translate_then_score(tmp_path):
    from okapi_kit.plugins import registry
    from okapi_kit.prompts import format_alpaca
    from okapi_kit.registry import create_component
    from okapi_kit.transfer import TransferredReward

    _write_jsonl(tmp_path / "src.jsonl", [{"id": "1", "instruction": "Cộng 2 và 3.", "output": "Là 5."},
                                                {"id": "2", "instruction": "Chào", "output": "Xin chào bạn"}])
    _write_jsonl(tmp_path / "en.jsonl", [{"id": "1", "instruction": "Add 2 and 3.", "output": "It is 5."},
                                              {"id": "2", "instruction": "Hi", "output": "Hello"}])
    reg = registry()
    direct = create_component(reg, "transfer", "direct", {}, where="t")
    rec = Recorder()
    assert direct.score(rec, ["p"], ["abc"], rm_language="en", languages=["vi"]) == [3.0]
    assert rec.calls[-1] == (["p"], ["abc"], ["vi"])
    options = {"translator": {"name": "translation_memory", "options": {"source": "src.jsonl",
                                                                         "targets": {"en": "en.jsonl"}}}}
    tts = create_component(reg, "transfer", "translate_then_score", options, where="t", base_dir=tmp_path)
    reward = TransferredReward(rec, tts, "en")
    prompts = [format_alpaca("Cộng 2 và 3."), "Add 1 and 1.", "Chào\n"]
    scores = reward.score(prompts, ["Là 5.", "2", "Không biết"], ["vi", "en", "vi"])
    sent_prompts, sent_responses, langs = rec.calls[-1]
    assert sent_prompts == [format_alpaca("Add 2 and 3."), "Add 1 and 1.", "Hi\n"]  # templates are kept
    assert sent_responses == ["It is 5.", "2", "Không biết"]  # not in the memory: scored as written
    assert langs == ["en"] * 3 and scores == [8.0, 1.0, 10.0] and tts.untranslated == 1
    strict = create_component(reg, "transfer", "translate_then_score", {**options, "on_failure": "error"},
                              where="t", base_dir=tmp_path)
    with pytest.raises(OkapiError, match="could not translate"):
        strict.score(rec, ["Chào"], ["Không biết"], rm_language="en", languages=["vi"])
    with pytest.raises(OkapiError, match="no translator named"):
        create_component(reg, "transfer", "translate_then_score", {"translator": {"name": "nope"}}, where="t")


# ------------------------------------------------------------------ rm-transfer on tiny models


WORDS = {"en": ["sun", "tree", "river", "stone", "cloud", "bird"], "vi": ["mặt trời", "cây", "sông", "đá", "mây", "chim"],
         "bn": ["সূর্য", "গাছ", "নদী", "পাথর", "মেঘ", "পাখি"]}
ASK = {"en": "Say something about the {w}.", "vi": "Hãy nói về {w}.", "bn": "{w} সম্পর্কে কিছু বলুন।"}
SAY = {"en": "The {w} is here", "vi": "{w} ở đây", "bn": "{w} এখানে"}


def _pairs(lang: str, n: int, seed: int, *, rule: str) -> list[dict]:
    """rule ``mark``: the chosen response ends with " +", the rejected with " -" (in any language).
    rule ``topic`` (a rule of one language, never seen in English): the chosen response talks
    about the prompt's word, the rejected about another, and each ends with a mark drawn at random."""
    rng = random.Random(seed)
    words = WORDS[lang]
    rows = []
    for i in range(n):
        w = words[rng.randrange(len(words))]  # one seed: the same items in every language
        body = SAY[lang].format(w=w)
        if rule == "mark":
            chosen, rejected = f"{body} +", f"{body} -"
        else:
            other = SAY[lang].format(w=rng.choice([x for x in words if x != w]))
            chosen, rejected = f"{body} {rng.choice('+-')}", f"{other} {rng.choice('+-')}"
        rows.append({"id": f"t{i}", "prompt": ASK[lang].format(w=w), "chosen": chosen, "rejected": rejected,
                     "category": rule})
    return rows


def _transfer_config(tmp: Path, tiny: Path, extra_sources: str = "") -> Path:
    _write_jsonl(tmp / "train" / "en.jsonl", [{"prompt": r["prompt"], "chosen": r["chosen"],
                                              "rejected": r["rejected"]} for r in _pairs("en", 96, 1, rule="mark")])
    _write_jsonl(tmp / "test" / "en.jsonl", _pairs("en", 40, 2, rule="mark"))
    _write_jsonl(tmp / "test" / "vi" / "test.jsonl", _pairs("vi", 40, 2, rule="mark"))
    _write_jsonl(tmp / "test" / "bn.jsonl", _pairs("bn", 80, 4, rule="topic"))
    config = tmp / "transfer.yaml"
    config.write_text(f"""
name: tiny-transfer
base_model: {tiny}
prompt_template: raw
sources:
  en: {{data: train/en.jsonl}}
{extra_sources}
targets: {{data_dir: test, languages: [en, vi, bn]}}
trainer:
  name: reward
  options: {{learning_rate: 5.0e-3, max_steps: 40, batch_size: 16, gradient_accumulation_steps: 1,
            max_length: 64, eval_fraction: 0.0, gradient_checkpointing: false, warmup_ratio: 0.0,
            logging_steps: 10, save_steps: 100, device: cpu}}
scoring: {{device: cpu, batch_size: 64}}
representation: {{limit: 8, device: cpu, languages: [en, vi]}}
""", encoding="utf-8")
    return config


@pytest.mark.slow
def test_rm_transfer_command_on_a_tiny_rm(tiny_lm, tmp_path):
    """An RM trained on an English rule that holds in every language scores Vietnamese well; on
    a Bengali rule it never saw it sits near chance. A rerun retrains nothing; a given copy of
    the RM gives the same row."""
    from okapi_kit.cli import main
    from okapi_kit.leaderboard import ResultsStore

    config = _transfer_config(tmp_path, tiny_lm)
    run, db = tmp_path / "run", tmp_path / "lb.sqlite"
    args = ["rm-transfer", str(config), "--run-dir", str(run), "--db", str(db), "--quiet"]
    assert main(args) == 0
    matrix = json.loads((run / "rm-transfer" / "matrix.json").read_text())
    cells = {(c["row"], c["target"]): c for c in matrix["cells"] if c["category"] == "all"}
    assert cells[("rm-en", "en")]["accuracy"] >= 0.9
    assert cells[("rm-en", "vi")]["accuracy"] >= 0.8 and cells[("rm-en", "vi")]["ci"][0] > 0.5
    bn = cells[("rm-en", "bn")]
    assert 0.3 <= bn["accuracy"] <= 0.7 and bn["ci"][0] < 0.5 < bn["ci"][1]
    assert (run / "rm-transfer" / "matrix.png").read_bytes()[:4] == b"\x89PNG"
    rep = json.loads((run / "rm-transfer" / "representation.json").read_text())
    assert [r["comparison"] for r in rep["rows"]] == ["en~vi", "en~vi mismatched", "rm~base en", "rm~base vi"]
    assert rep["layers"] == 3 and rep["items"] == 8
    units = json.loads((run / "manifest.json").read_text())["units"]
    assert [k for k in units if k.startswith("rm_transfer/states/")] == ["rm_transfer/states/base"]
    rows = ResultsStore(db, create=False).rows(run="tiny-transfer")
    acc = {(r.method, r.language): r for r in rows if r.task == "rm_accuracy"}
    assert acc[("rm-en", "vi")].value == pytest.approx(cells[("rm-en", "vi")]["accuracy"])
    assert len(acc[("rm-en", "bn")].items) == 80
    assert {r.task for r in rows} >= {"rm_accuracy", "rm_accuracy.mark", "rm_accuracy.topic"}

    weights = run / "models" / "rm-en" / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    copy = tmp_path / "copy-of-rm-en"
    shutil.copytree(run / "models" / "rm-en", copy)
    config = _transfer_config(tmp_path, tiny_lm, f"  en2: {{model: {copy}, language: en}}")
    assert main(args) == 0
    assert weights.stat().st_mtime_ns == stamp  # unchanged data and options: not retrained
    matrix = json.loads((run / "rm-transfer" / "matrix.json").read_text())
    by = {(c["row"], c["target"], c["category"]): c for c in matrix["cells"]}
    for (row, target, cat), c in by.items():
        if row == "rm-en2":  # the same weights: the same row, and no difference from the native RM
            assert c["accuracy"] == by[("rm-en", target, cat)]["accuracy"]
    assert by[("rm-en2", "en", "all")]["diff"] == 0.0 and by[("rm-en2", "en", "all")]["native"] == "rm-en"
    _write_jsonl(tmp_path / "train" / "en.jsonl", _pairs("en", 90, 5, rule="mark"))
    assert main(args) == 0
    assert weights.stat().st_mtime_ns != stamp  # new data: retrained


def test_rm_transfer_config_problems_are_reported_together(tmp_path, capsys):
    from okapi_kit.cli import main

    (tmp_path / "test").mkdir()
    _write_jsonl(tmp_path / "test" / "en.jsonl", _pairs("en", 4, 0, rule="mark"))
    config = tmp_path / "bad.yaml"
    config.write_text("""
name: bad
sources:
  english: {data: missing.jsonl}
  vi: {model: ./nowhere}
targets: {data_dir: test, languages: [en, xx]}
transfer: [direct, nope]
""")
    assert main(["rm-transfer", str(config), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "set base_model" in err
    config.write_text(config.read_text().replace("name: bad", "name: bad\nbase_model: tiny:llama:32x1"))
    assert main(["rm-transfer", str(config), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    for part in ("'english' is not a language code", "xx", "Traceback"):
        assert (part in err) == (part != "Traceback"), part
    config.write_text(config.read_text().replace("english:", "en:").replace(", xx", ""))
    assert main(["rm-transfer", str(config), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "missing.jsonl" in err and "nowhere" in err and "nope" in err
    assert not (tmp_path / "run").exists()  # nothing is written before the plan is sound


# ------------------------------------------------------------------ reward: {from: en} in alignment


def _align_config(tmp: Path, reward: dict | None, *, scope: str = "per_language") -> dict:
    prompts = [{"id": f"p{i}", "instruction": f"What is {i} plus 1?"} for i in range(4)]
    pairs = [{"instruction": f"What is {i} plus 1?", "chosen": str(i + 1), "rejected": str(i)} for i in range(4)]
    data = {}
    for lang in ("en", "bn"):
        data.setdefault("prompts", {})[lang] = str(_write_jsonl(tmp / f"prompts_{lang}.jsonl", prompts))
        data.setdefault("rankings", {})[lang] = str(tmp / f"pairs_{lang}.jsonl")
        if not (tmp / f"pairs_{lang}.jsonl").exists():
            _write_jsonl(tmp / f"pairs_{lang}.jsonl", pairs)
    (tmp / "sft").mkdir(exist_ok=True)
    (tmp / "sft" / "config.json").write_text("{}")
    align = [{"method": "rloo", "trainer": "rloo"}]
    if reward is not None:
        align.append({"method": "rloo-en-rm", "trainer": "rloo", "reward": reward})
    return {"name": "t", "languages": ["en", "bn"], "model_scope": scope, "data": data,
            "models": {"sft": str(tmp / "sft")}, "reward_model": {"trainer": "reward"}, "alignment": align,
            "evaluation": {"models": [], "evaluators": []}}


def _plan(tmp: Path, data: dict):
    from okapi_kit.config import validate_config
    from okapi_kit.graph.runner import fingerprints
    from okapi_kit.plugins import registry
    from okapi_kit.stages import build_plan

    plan = build_plan(validate_config(data, "t.yaml"), base_dir=tmp, run_dir=tmp / "run", registry=registry(),
                      source="t.yaml")
    return {u.key: u for u in plan.units}, fingerprints(plan)


def test_align_with_the_reward_model_of_another_language(tmp_path):
    from okapi_kit.graph import Model

    units, fps = _plan(tmp_path, _align_config(tmp_path, {"from": "en"}))
    assert Model("rm", "en") in units["align/rloo-en-rm/bn"].consumes
    assert Model("rm", "bn") not in units["align/rloo-en-rm/bn"].consumes
    assert Model("rm", "bn") in units["align/rloo/bn"].consumes
    # new English preference data: the English RM changes, and with it every alignment that uses it
    _write_jsonl(tmp_path / "pairs_en.jsonl", [{"instruction": "What is 7 plus 1?", "chosen": "8", "rejected": "1"}])
    _, after = _plan(tmp_path, _align_config(tmp_path, {"from": "en"}))
    assert after["reward_model/en"] != fps["reward_model/en"]
    assert after["align/rloo-en-rm/bn"] != fps["align/rloo-en-rm/bn"]
    assert after["align/rloo/bn"] == fps["align/rloo/bn"]  # the Bengali RM did not change
    # the transfer method is part of the fingerprint
    _write_jsonl(tmp_path / "tm_src.jsonl", [{"id": "1", "instruction": "x"}])
    _write_jsonl(tmp_path / "tm_en.jsonl", [{"id": "1", "instruction": "y"}])
    tts = {"name": "translate_then_score", "options": {"translator": {"name": "translation_memory", "options": {
        "source": "tm_src.jsonl", "targets": {"en": "tm_en.jsonl"}}}}}
    _, translated = _plan(tmp_path, _align_config(tmp_path, {"from": "en", "transfer": tts}))
    assert translated["align/rloo-en-rm/bn"] != after["align/rloo-en-rm/bn"]
    # one multilingual RM when models are not per language
    units, _ = _plan(tmp_path, _align_config(tmp_path, {"from": "en"}, scope="multilingual"))
    assert Model("rm") in units["align/rloo-en-rm"].consumes
    # a reward model by path is a supplied model
    rm = tmp_path / "my-rm"
    rm.mkdir()
    (rm / "config.json").write_text("{}")
    units, _ = _plan(tmp_path, _align_config(tmp_path, {"path": "my-rm", "language": "en"}))
    assert Model("reward", "rloo-en-rm") in units["align/rloo-en-rm/bn"].consumes


@pytest.mark.parametrize("reward, message", [
    ({"from": "vi"}, "without a reward model of its own"),
    ({"from": "en", "path": "x"}, "one of name"),
    ({"from": "en", "transfer": "nope"}, "no transfer named 'nope'"),
    ({"path": "./missing-rm"}, "model path does not exist"),
    ({"name": "callable", "transfer": "direct"}, "transfer applies to a reward model"),
    ({"from": "en", "options": {"a": 1}}, "options belong to a reward source"),
])
def test_bad_transferred_rewards_are_plan_problems(tmp_path, reward, message):
    with pytest.raises(OkapiError) as err:
        _plan(tmp_path, _align_config(tmp_path, reward))
    assert message in err.value.render()


def test_reward_source_by_name_still_works(tmp_path):
    from okapi_kit.graph import Model

    rm = tmp_path / "rm"
    rm.mkdir()
    (rm / "config.json").write_text("{}")
    units, _ = _plan(tmp_path, _align_config(tmp_path, {"name": "reward_model", "options": {"path": str(rm)}}))
    assert not any(isinstance(a, Model) and a.label in ("rm", "reward") for a in units["align/rloo-en-rm/bn"].consumes)


# ------------------------------------------------------------------ the toy reproduction's data


def test_the_demo_task_data_and_its_rule(tmp_path):
    from okapi_kit.demo.transfer.make_data import write
    from okapi_kit.demo.transfer.task import correct
    from okapi_kit.prompts import format_alpaca

    write(tmp_path)
    tests = {lang: [json.loads(x) for x in (tmp_path / "test" / f"{lang}.jsonl").read_text().splitlines()]
             for lang in ("en", "vi", "bn")}
    assert [r["id"] for r in tests["en"]] == [r["id"] for r in tests["bn"]]  # parallel by id
    assert [r["category"] for r in tests["vi"]] == [r["category"] for r in tests["bn"]]
    prompts = [r["prompt"] for r in tests["bn"]]
    assert correct(prompts=prompts, completions=[r["chosen"] for r in tests["bn"]]) == [1.0] * len(prompts)
    assert correct(prompts=prompts, completions=[r["rejected"] for r in tests["bn"]]) == [0.0] * len(prompts)
    assert correct(prompts=[format_alpaca("What is 2 plus 3?"), "Add 4 and 4.\n"],
                   completions=["It is 5.", "9"]) == [1.0, 0.0]
    before = (tmp_path / "train" / "en.jsonl").read_text()
    write(tmp_path)
    assert (tmp_path / "train" / "en.jsonl").read_text() == before  # deterministic


# ------------------------------------------------------------------ the rm_transfer pipeline stage


STAGE_UNITS = {*[f"rm_transfer/score/direct/{rm}/{t}" for rm in ("en", "bn") for t in ("en", "bn")],
               "rm_transfer/states/sft-en",  # one base model (both languages' SFT is one folder): one unit
               "rm_transfer/represent/en", "rm_transfer/represent/bn", "rm_transfer/matrix",
               "rm_transfer/representation"}


def _stage_project(tmp: Path, tiny: Path) -> Path:
    """A per-language run on a tiny SFT model: rankings in English and Bengali, an RM each
    (a few steps), and the rm_transfer stage on both RMs and two test sets."""
    import yaml

    for lang in ("en", "bn"):
        _write_jsonl(tmp / "pairs" / f"{lang}.jsonl", [
            {"instruction": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]}
            for r in _pairs(lang, 32, 1, rule="mark")])
        _write_jsonl(tmp / "test" / f"{lang}.jsonl", _pairs(lang, 16, 2, rule="mark"))
        _write_jsonl(tmp / "parallel" / f"{lang}.jsonl", _pairs(lang, 8, 3, rule="mark"))
    trainer = {"learning_rate": 5.0e-3, "max_steps": 6, "batch_size": 16, "gradient_accumulation_steps": 1,
               "max_length": 64, "eval_fraction": 0.0, "gradient_checkpointing": False, "warmup_ratio": 0.0,
               "logging_steps": 10, "save_steps": 100, "device": "cpu"}
    config = tmp / "run.yaml"
    config.write_text(yaml.safe_dump({
        "name": "tiny-stage", "languages": ["en", "bn"], "model_scope": "per_language",
        "data": {"rankings": {"en": "pairs/en.jsonl", "bn": "pairs/bn.jsonl"}},
        "models": {"sft": str(tiny)},
        "reward_model": {"trainer": {"name": "reward", "options": trainer}},
        "stages": [{"name": "rm_transfer", "options": {
            "targets": {"data_dir": "test", "languages": ["en", "bn"]},
            "scoring": {"device": "cpu", "batch_size": 64},
            "representation": {"data_dir": "parallel", "limit": 8, "device": "cpu"}}}],
    }), encoding="utf-8")
    return config


def _statuses(config: Path, run: Path, db: Path) -> dict[str, str]:
    """Run the pipeline; each unit's status (done or skipped)."""
    from okapi_kit.config import load_config
    from okapi_kit.pipeline import Pipeline
    from okapi_kit.ui import UI

    cfg, base_dir = load_config(config)
    pipeline = Pipeline(cfg, base_dir=base_dir, run_dir=run, db_path=db, ui=UI(quiet=True), source=str(config))
    return {s["stage"]: s["status"] for s in pipeline.run()}


@pytest.mark.slow
def test_rm_transfer_as_a_pipeline_stage(tiny_lm, tmp_path):
    """`stages: [rm_transfer]` plans the study on the run's per-language RMs, writes the reports
    into the run folder and the accuracies into the leaderboard; a rerun skips it all, and an
    edited test set re-runs only the units that read it."""
    from okapi_kit.cli import main
    from okapi_kit.leaderboard import ResultsStore

    config = _stage_project(tmp_path, tiny_lm)
    run, db = tmp_path / "run", tmp_path / "lb.sqlite"
    assert main(["run", str(config), "--run-dir", str(run), "--db", str(db), "--quiet"]) == 0
    units = json.loads((run / "manifest.json").read_text())["units"]
    assert {k for k in units if k.startswith("rm_transfer/")} == STAGE_UNITS
    assert all(units[k]["status"] == "done" for k in STAGE_UNITS)
    matrix = json.loads((run / "rm-transfer" / "matrix.json").read_text())
    cells = {(c["row"], c["target"]) for c in matrix["cells"] if c["category"] == "all"}
    assert cells == {(f"rm-{a}", b) for a in ("en", "bn") for b in ("en", "bn")}
    assert (run / "rm-transfer" / "matrix.png").read_bytes()[:4] == b"\x89PNG"
    rep = json.loads((run / "rm-transfer" / "representation.json").read_text())
    assert {(r["rm"], r["comparison"]) for r in rep["rows"]} >= {("rm-en", "rm~base en"), ("rm-bn", "en~bn")}
    rows = ResultsStore(db, create=False).rows(run="tiny-stage")
    assert {(r.method, r.language) for r in rows if r.task == "rm_accuracy"} == \
        {(f"rm-{a}", b) for a in ("en", "bn") for b in ("en", "bn")}

    assert set(_statuses(config, run, db).values()) == {"skipped"}
    test_bn = tmp_path / "test" / "bn.jsonl"
    test_bn.write_text(test_bn.read_text(encoding="utf-8").replace(" +", " ✓", 1), encoding="utf-8")
    ran = {k for k, v in _statuses(config, run, db).items() if v == "done"}
    assert ran == {"rm_transfer/score/direct/en/bn", "rm_transfer/score/direct/bn/bn", "rm_transfer/matrix"}


def _tm_files(tmp: Path) -> dict:
    """A translation memory between English and Bengali, as translate_then_score options."""
    _write_jsonl(tmp / "tm" / "source.jsonl", [{"id": "1", "instruction": "What is 1 plus 1?"}])
    _write_jsonl(tmp / "tm" / "en.jsonl", [{"id": "1", "instruction": "What is 1 plus 1?"}])
    _write_jsonl(tmp / "tm" / "bn.jsonl", [{"id": "1", "instruction": "১ যোগ ১ কত?"}])
    return {"name": "translate_then_score", "options": {"translator": {"name": "translation_memory", "options": {
        "source": "tm/source.jsonl", "targets": {"en": "tm/en.jsonl", "bn": "tm/bn.jsonl"}}}}}


def test_an_edited_translation_memory_reruns_what_reads_it(tmp_path):
    """A nested translator's files are inputs of every unit that uses the transfer method: the
    stage's translate_then_score scores and the alignment that reads the English RM through it."""
    tts = _tm_files(tmp_path)
    data = _align_config(tmp_path, {"from": "en", "transfer": tts})
    for lang in ("en", "bn"):
        _write_jsonl(tmp_path / "test" / f"{lang}.jsonl", _pairs(lang, 4, 2, rule="mark"))
    data["stages"] = [{"name": "rm_transfer", "options": {
        "targets": {"data_dir": "test", "languages": ["en", "bn"]}, "transfer": ["direct", tts]}}]
    units, before = _plan(tmp_path, data)
    assert {f"rm_transfer/score/{m}/{a}/{b}" for m in ("direct", "translate_then_score")
            for a in ("en", "bn") for b in ("en", "bn")} | {"rm_transfer/matrix"} <= set(units)
    _write_jsonl(tmp_path / "tm" / "en.jsonl", [{"id": "1", "instruction": "How much is 1 plus 1?"}])
    _, after = _plan(tmp_path, data)
    changed = {k for k in before if after[k] != before[k]}
    assert changed == {*[f"rm_transfer/score/translate_then_score/{a}/{b}" for a in ("en", "bn") for b in ("en", "bn")],
                       "rm_transfer/matrix", "align/rloo-en-rm/en", "align/rloo-en-rm/bn"}


def test_the_stage_reports_bad_options_before_any_work(tmp_path):
    data = _align_config(tmp_path, None)
    _write_jsonl(tmp_path / "test" / "en.jsonl", _pairs("en", 4, 2, rule="mark"))
    stage = {"name": "rm_transfer", "options": {"targets": {"data_dir": "test", "languages": ["en", "bn"]},
                                                 "sources": ["en"], "models": {"de": {"model": "./no-rm"}}}}
    with pytest.raises(OkapiError) as err:
        _plan(tmp_path, {**data, "stages": [stage]})
    text = err.value.render()
    assert "no test set for 'bn'" in text and "stages[0].options.targets" in text
    assert "model path does not exist: ./no-rm" in text and "stages[0].options.models.de.model" in text
    stage["options"]["sources"] = ["vi"]  # a language of no RM of this run
    with pytest.raises(OkapiError, match="'vi' has no reward model in this run"):
        _plan(tmp_path, {**data, "stages": [stage]})
    with pytest.raises(OkapiError, match="per language"):
        _plan(tmp_path, {**_align_config(tmp_path, None, scope="multilingual"), "stages": [stage]})


def _doc_config() -> dict:
    """The pipeline config of docs/rm-transfer.md's section on the stage."""
    import re

    import yaml

    text = (Path(__file__).resolve().parents[1] / "docs" / "rm-transfer.md").read_text(encoding="utf-8")
    section = text.split("## As pipeline stages", 1)[1]
    return yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))


def test_the_documented_stage_config_plans(tmp_path):
    data = _doc_config()
    langs = ["en", "vi", "bn", "de"]
    for lang in data["languages"]:
        _write_jsonl(tmp_path / data["data"]["translations"][lang],
                     [{"id": f"s{i}", "instruction": f"Say {i}.", "output": str(i)} for i in range(3)])
        _write_jsonl(tmp_path / data["data"]["rankings"][lang],
                     [{"instruction": f"Say {i}.", "chosen": str(i), "rejected": "no"} for i in range(3)])
    options = data["stages"][0]["options"]
    for lang in langs:
        _write_jsonl(tmp_path / options["targets"]["data_dir"] / f"{lang}.jsonl", _pairs("en", 4, 2, rule="mark"))
    (tmp_path / options["models"]["de"]["model"]).mkdir(parents=True)
    (tmp_path / options["models"]["de"]["model"] / "config.json").write_text("{}")
    units, _ = _plan(tmp_path, data)
    assert {f"rm_transfer/score/direct/{rm}/{t}" for rm in langs for t in langs} <= set(units)
    assert {"rm_transfer/states/sft-en", "rm_transfer/represent/de", "rm_transfer/matrix"} <= set(units)


def test_the_demo_configs_plan(tmp_path):
    """transfer.yaml (the command) and align.yaml (a run with the rm_transfer stage) of the toy."""
    import yaml
    from okapi_kit_transfer.config import load_transfer_config
    from okapi_kit_transfer.run import build_transfer_plan

    from okapi_kit.demo.transfer.make_data import HERE, write
    from okapi_kit.plugins import registry

    write(tmp_path / "data")
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "config.json").write_text("{}")
    transfer = yaml.safe_load((HERE / "transfer.yaml").read_text(encoding="utf-8"))
    tp = build_transfer_plan(load_transfer_config(transfer, "transfer.yaml"), base_dir=tmp_path,
                             run_dir=tmp_path / "run", registry=registry())
    assert {"rm_transfer/states/base", "rm_transfer/matrix", "rm_transfer/representation"} <= {u.key for u in tp.units}
    units, _ = _plan(tmp_path, yaml.safe_load((HERE / "align.yaml").read_text(encoding="utf-8")))
    assert {f"rm_transfer/score/direct/{a}/{b}" for a in ("en", "bn") for b in ("en", "vi", "bn")} | \
        {"rm_transfer/matrix", "align/rloo-en-rm/bn"} <= set(units)
