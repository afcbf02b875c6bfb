"""The small first-party plugins: translation memory and the reference chrF ranker.

(The language_fidelity evaluator has its own file, test_fidelity_plugin.py.)
"""

from __future__ import annotations

import json

import pytest
from okapi_kit_sacrebleu.ranker import ReferenceChrF
from okapi_kit_translation_memory.translator import TranslationMemory

from okapi_kit import OkapiError, SampleSet
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
    write_jsonl(memory_files / "dup.jsonl", [{"id": "e1", "instruction": "a"}, {"id": "e1", "instruction": "b"}])
    tm = make_memory(memory_files, targets={"vi": "dup.jsonl"})
    with pytest.raises(OkapiError) as info:
        tm.translate(["Say hello."], "en", "vi")
    assert info.value.message == "duplicate id 'e1' in a translation memory"
    assert info.value.where == f"{memory_files / 'dup.jsonl'}:2"


def test_translation_memory_without_ids_aligns_by_position(tmp_path):
    """Okapi's released files have no ids: the n-th record translates the n-th."""
    write_jsonl(tmp_path / "en.jsonl", [{"instruction": "One.", "output": "1"}, {"instruction": "Two.", "output": "2"}])
    write_jsonl(tmp_path / "vi.jsonl", [{"instruction": "Một.", "output": "1"}, {"instruction": "Hai.", "output": "2"}])
    tm = make_memory(tmp_path, source="en.jsonl", targets={"vi": "vi.jsonl"})
    assert tm.translate(["Two.", "One.", "Three."], "en", "vi") == ["Hai.", "Một.", None]


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
