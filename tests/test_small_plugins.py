"""The small first-party plugins: translation memory, reference chrF ranker, language fidelity."""

from __future__ import annotations

import json
import math

import pytest
from okapi_kit_fidelity.evaluator import LanguageFidelity
from okapi_kit_sacrebleu.ranker import ReferenceChrF
from okapi_kit_translation_memory.translator import TranslationMemory

from okapi_kit import EvalTarget, OkapiError, SampleSet
from okapi_kit.records import write_jsonl
from okapi_kit.registry import Registry, create_component

# ---- translation memory ------------------------------------------------------------------------


@pytest.fixture
def memory_files(tmp_path):
    write_jsonl(tmp_path / "en.jsonl", [
        {"id": "e1", "instruction": "Say hello.", "input": "", "output": "Hello!"},
        {"id": "e2", "instruction": "Translate the word.", "input": "cat", "output": "mèo"},
        {"id": "e3", "instruction": "Name a fruit.", "input": "", "output": "An apple."},
    ])
    write_jsonl(tmp_path / "vi.jsonl", [
        # out of order on purpose: alignment is by id, not by line
        {"id": "e2", "instruction": "Dịch từ này.", "input": "con mèo", "output": "mèo"},
        {"id": "e1", "instruction": "Hãy chào.", "input": "", "output": "Xin chào!"},
        {"id": "x9", "instruction": "Không có bản gốc.", "input": "", "output": ""},  # no source: ignored
    ])
    (tmp_path / "hi.json").write_text(json.dumps(
        [{"id": "e3", "instruction": "एक फल का नाम बताइए।", "input": "", "output": "एक सेब।"}],
        ensure_ascii=False), encoding="utf-8")
    return tmp_path


def make_memory(base, **options) -> TranslationMemory:
    reg = Registry()
    reg.add("translator", TranslationMemory, plugin="translation_memory")
    options = {"source": "en.jsonl", "targets": {"vi": "vi.jsonl", "hi": "hi.json"}, **options}
    return create_component(reg, "translator", "translation_memory", options,
                            where="translation.translator", base_dir=base)


def test_translation_memory_aligns_by_id(memory_files):
    tm = make_memory(memory_files)
    texts = ["Say hello.", "Translate the word.", "cat", "Hello!", "Name a fruit.", "Unknown text", ""]
    assert tm.translate(texts, "en", "vi") == [
        "Hãy chào.", "Dịch từ này.", "con mèo", "Xin chào!", None, None, None]
    assert tm.translate(["Name a fruit.", "An apple.", "Say hello."], "en", "hi") == [
        "एक फल का नाम बताइए।", "एक सेब।", None]


def test_translation_memory_fields_option(memory_files):
    tm = make_memory(memory_files, fields=["instruction"])
    assert tm.translate(["Say hello.", "Hello!"], "en", "vi") == ["Hãy chào.", None]


def test_translation_memory_errors(memory_files):
    tm = make_memory(memory_files)
    with pytest.raises(OkapiError) as info:
        tm.translate(["Say hello."], "en", "bn")
    assert info.value.message == "the translation memory has no 'bn' file"
    assert info.value.hint == "add translation.translator.options.targets.bn"
    with pytest.raises(OkapiError) as info:
        make_memory(memory_files, targets={"vi": "missing.jsonl"})
    assert info.value.message.startswith("translation.translator.options.targets.vi: file or folder does not exist")
    write_jsonl(memory_files / "noid.jsonl", [{"instruction": "x"}])
    tm = make_memory(memory_files, targets={"vi": "noid.jsonl"})
    with pytest.raises(OkapiError) as info:
        tm.translate(["x"], "en", "vi")
    assert info.value.message == "every translation-memory record needs an 'id'"
    assert info.value.where == f"{memory_files / 'noid.jsonl'}:1"


# ---- reference chrF ranker ----------------------------------------------------------------------

def sample_set(responses, reference="The cat sat on the mat.", id="s1"):
    return SampleSet(id=id, lang="en", prompt="p", responses=responses, reference=reference)


def test_reference_chrf_orders_by_chrf():
    ranker = ReferenceChrF()
    item = sample_set(["A dog ran.", "The cat sat on a hat.", "The cat sat on the mat.", "xyz"])
    scores = ranker.scores(item)
    assert scores[2] == pytest.approx(100.0)
    assert scores[1] > scores[0] >= scores[3]
    order = ranker.rank([item])[0]
    assert order[0] == 2  # equal to the reference: ranked first
    assert order == sorted(range(4), key=lambda i: (-scores[i], i))
    assert order[:2] == [2, 1]


def test_reference_chrf_ties_keep_sample_order_and_batches():
    ranker = ReferenceChrF()
    a = sample_set(["same answer", "The cat sat on the mat.", "same answer"], id="a")
    b = sample_set(["Tôi không biết.", "Tôi biết rồi."], reference="Tôi biết rồi.", id="b")
    assert ranker.rank([a, b]) == [[1, 0, 2], [1, 0]]


def test_reference_chrf_needs_a_reference():
    with pytest.raises(OkapiError) as info:
        ReferenceChrF().rank([sample_set(["x", "y"]), sample_set(["x", "y"], reference=None, id="no-ref")])
    assert info.value.message == "sample set 'no-ref' has no reference answer to rank against"
    with pytest.raises(OkapiError):
        ReferenceChrF().rank([sample_set(["x", "y"], reference="")])


# ---- language fidelity ----------------------------------------------------------------------------

VI = ["Nước sôi ở 100 độ C ở mực nước biển.", "Hôm nay trời đẹp và tôi muốn đi dạo trong công viên."]
HI = "पानी समुद्र तल पर 100 डिग्री सेल्सियस पर उबलता है।"
EN = "Water boils at one hundred degrees at sea level."


class FakeModel:
    def __init__(self, responses):
        self.responses = responses
        self.calls = []

    def __call__(self, prompts):
        self.calls.append(list(prompts))
        assert len(prompts) == len(self.responses)
        return list(self.responses)


def target(tmp_path, language, generate, prompts=("p1", "p2")):
    return EvalTarget(model="m", label="sft", language=language, work_dir=tmp_path, prompts=list(prompts),
                      generate=generate)


def test_language_fidelity_share_and_binomial_stderr(tmp_path):
    responses = [VI[0], VI[1], HI, VI[0], EN, VI[1], "", VI[0]]  # 5 of 8 Vietnamese; empty is a miss
    model = FakeModel(responses)
    ev = LanguageFidelity(LanguageFidelity.Config(samples_per_prompt=4))
    [score] = ev.evaluate(target(tmp_path, "vi", model))
    assert model.calls == [["p1"] * 4 + ["p2"] * 4]
    assert (score.task, score.metric, score.n) == ("language_fidelity", "fidelity", 8)
    assert score.value == 5 / 8
    assert score.stderr == pytest.approx(math.sqrt((5 / 8) * (3 / 8) / 8))
    assert score.protocol == "py3langid; 4 sample(s) x 2 held-out prompts"
    log = [json.loads(line) for line in (tmp_path / "language_fidelity.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["identified"] for r in log] == ["vi", "vi", "hi", "vi", "en", "vi", None, "vi"]
    assert [r["prompt"] for r in log] == ["p1"] * 4 + ["p2"] * 4


def test_language_fidelity_other_language_and_extremes(tmp_path):
    ev = LanguageFidelity(LanguageFidelity.Config(samples_per_prompt=2))
    [score] = ev.evaluate(target(tmp_path, "hi", FakeModel([HI, VI[0], EN, HI])))
    assert (score.value, score.n) == (0.5, 4)
    assert score.stderr == pytest.approx(0.25)
    [score] = ev.evaluate(target(tmp_path, "hi", FakeModel([HI] * 4)))
    assert (score.value, score.stderr) == (1.0, 0.0)
    [score] = ev.evaluate(target(tmp_path, "en", FakeModel([VI[0]] * 4)))
    assert (score.value, score.stderr) == (0.0, 0.0)


def test_language_fidelity_min_chars(tmp_path):
    ev = LanguageFidelity(LanguageFidelity.Config(samples_per_prompt=1, min_chars=20))
    [score] = ev.evaluate(target(tmp_path, "vi", FakeModel([VI[0], "Chào"])))
    assert score.value == 0.5


def test_language_fidelity_errors(tmp_path):
    ev = LanguageFidelity()
    with pytest.raises(OkapiError) as info:
        ev.evaluate(target(tmp_path, "vi", None))
    assert info.value.message == "language_fidelity needs a generator for the model"
    with pytest.raises(OkapiError) as info:
        ev.evaluate(target(tmp_path, "vi", FakeModel([]), prompts=()))
    assert info.value.message == "no held-out prompts in 'vi' to measure language fidelity on"
    assert "instructions.holdout" in info.value.hint
