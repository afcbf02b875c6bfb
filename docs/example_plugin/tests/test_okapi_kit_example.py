"""Tests of the example plugin: the components, their options, and their registration."""

from __future__ import annotations

import json

import okapi_kit_example
import pytest

from okapi_kit import OkapiError, Ranking, SampleSet
from okapi_kit.plugins import OkapiPluginManager
from okapi_kit.registry import Registry, create_component


def test_hooks_register_every_component():
    pm = OkapiPluginManager()
    assert pm.add_plugin(okapi_kit_example, "example"), pm.failures  # also checks hook names
    reg = Registry.from_plugins(pm)
    assert reg.get("translator", "reverse_words").plugin == "example"
    assert reg.get("ranker", "length_ratio").plugin == "example"
    assert reg.get("stage", "drop_empty_best").plugin == "example"


def test_reverse_words_with_glossary(tmp_path):
    (tmp_path / "glossary.json").write_text(json.dumps({"world": "thế-giới"}), encoding="utf-8")
    reg = Registry.from_plugins(_pm())
    tr = create_component(reg, "translator", "reverse_words", {"glossary": "glossary.json"},
                          where="test", base_dir=tmp_path)
    assert tr.translate(["hello world", " "], "en", "vi") == ["[vi] thế-giới hello", " "]


def test_bad_options_are_user_errors(tmp_path):
    reg = Registry.from_plugins(_pm())
    with pytest.raises(OkapiError, match="unknown key"):
        create_component(reg, "translator", "reverse_words", {"tags": False}, where="test")
    with pytest.raises(OkapiError, match="does not exist"):
        create_component(reg, "translator", "reverse_words", {"glossary": "nope.json"},
                         where="test", base_dir=tmp_path)


def test_length_ratio_prefers_reference_length():
    ranker = okapi_kit_example.LengthRatio()
    item = SampleSet(id="1", lang="vi", prompt="p", responses=["a" * 50, "a" * 9, "a" * 200],
                     reference="b" * 10)
    assert ranker.rank([item]) == [[1, 0, 2]]
    with pytest.raises(OkapiError, match="no reference"):
        ranker.rank([SampleSet(id="2", lang="vi", prompt="p", responses=["x", "y"])])


def test_drop_empty_best_looks_at_the_best_response_only():
    def ranking(responses, order):
        return Ranking(id="r", lang="vi", prompt="p", responses=responses, order=order)

    stage = okapi_kit_example.DropEmptyBest()
    assert stage.keep(ranking(["", "yes"], [1, 0]))  # the empty one is ranked last
    assert not stage.keep(ranking(["yes", "  "], [1, 0]))
    strict = create_component(Registry.from_plugins(_pm()), "stage", "drop_empty_best",
                              {"min_chars": 3}, where="test")
    assert not strict.keep(ranking(["ok", "fine"], [0, 1]))
    assert strict.keep(ranking(["ok", "fine"], [1, 0]))


def _pm() -> OkapiPluginManager:
    pm = OkapiPluginManager()
    pm.add_plugin(okapi_kit_example, "example")
    return pm
