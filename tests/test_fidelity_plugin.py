"""The language_fidelity evaluator on responses the pipeline sampled (EvalTarget.responses)."""

from __future__ import annotations

import json
import math

import pytest
from okapi_kit_fidelity.evaluator import LanguageFidelity
from pydantic import ValidationError

from okapi_kit import EvalTarget, OkapiError
from okapi_kit.registry import Registry, create_component

VI = ["Nước sôi ở 100 độ C ở mực nước biển.", "Hôm nay trời đẹp và tôi muốn đi dạo trong công viên."]
HI = "पानी समुद्र तल पर 100 डिग्री सेल्सियस पर उबलता है।"
EN = "Water boils at one hundred degrees at sea level."
NB = "Jeg liker å gå tur i skogen om høsten, når bladene skifter farge og luften er frisk."


def target(tmp_path, language, responses, prompts=("p1", "p2")):
    return EvalTarget(model="m", label="sft", language=language, work_dir=tmp_path / "w",
                      prompts=list(prompts), responses=responses)


def test_uses_the_shared_generations():
    assert LanguageFidelity.uses_generations is True
    assert "samples_per_prompt" not in LanguageFidelity.Config.model_fields
    with pytest.raises(ValidationError, match="samples_per_prompt"):
        LanguageFidelity.Config(samples_per_prompt=4)  # now a pipeline setting


def test_share_per_prompt_and_a_stderr_over_prompts(tmp_path):
    # 3 of 4 and 2 of 4 Vietnamese (the empty response is a miss); the prompt is the unit
    responses = [[VI[0], VI[1], HI, VI[0]], [EN, VI[1], "", VI[0]]]
    [score] = LanguageFidelity().evaluate(target(tmp_path, "vi", responses))
    assert (score.task, score.metric, score.n) == ("language_fidelity", "fidelity", 2)
    assert score.value == 5 / 8
    assert score.items == {"prompt-00000": 0.75, "prompt-00001": 0.5}
    # sample variance of (0.75, 0.5) is 0.03125; over 2 prompts: sqrt(0.03125 / 2)
    assert score.stderr == pytest.approx(math.sqrt(0.03125 / 2))
    assert score.protocol == "py3langid; 4 sample(s) x 2 held-out prompts"
    log = [json.loads(line) for line in
           (tmp_path / "w" / "language_fidelity.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["identified"] for r in log] == ["vi", "vi", "hi", "vi", "en", "vi", None, "vi"]
    assert [r["prompt"] for r in log] == ["p1"] * 4 + ["p2"] * 4
    assert [r["response"] for r in log] == responses[0] + responses[1]


def test_other_language_extremes_and_uneven_counts(tmp_path):
    ev = LanguageFidelity()
    [score] = ev.evaluate(target(tmp_path, "hi", [[HI, VI[0]], [EN, HI]]))
    assert (score.value, score.n, score.stderr) == (0.5, 2, 0.0)
    [score] = ev.evaluate(target(tmp_path, "en", [[VI[0]], [VI[1]]]))
    assert (score.value, score.stderr) == (0.0, 0.0)
    [score] = ev.evaluate(target(tmp_path, "hi", [[HI], [HI, HI]]))
    assert (score.value, score.n, score.protocol) == (1.0, 2, "py3langid; 3 responses to 2 held-out prompts")
    [score] = ev.evaluate(target(tmp_path, "hi", [[HI], [EN, EN, EN]]))
    assert score.value == 0.5  # each prompt weighs the same, not each sample (pooled: 1/4)


def test_norwegian_bokmal_is_identifiable(tmp_path):
    # py3langid calls it "no"; without the mapping every nb response would be a miss.
    [score] = LanguageFidelity().evaluate(target(tmp_path, "nb", [[NB], [EN]]))
    assert score.value == 0.5
    log = (tmp_path / "w" / "language_fidelity.jsonl").read_text(encoding="utf-8")
    assert '"identified": "nb"' in log


def test_min_chars(tmp_path):
    ev = LanguageFidelity(LanguageFidelity.Config(min_chars=20))
    [score] = ev.evaluate(target(tmp_path, "vi", [[VI[0]], ["Chào"]]))
    assert score.value == 0.5


def test_candidate_languages_restrict_the_answers(tmp_path):
    # Restricted to vi and en, the Hindi sentence has to be called one of them.
    ev = LanguageFidelity(LanguageFidelity.Config(candidate_languages=["en"]))
    [score] = ev.evaluate(target(tmp_path, "vi", [[VI[0], HI]], prompts=["p"]))
    log = [json.loads(line) for line in
           (tmp_path / "w" / "language_fidelity.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {r["identified"] for r in log} <= {"vi", "en"}
    assert ev.candidates("vi") == ("en", "vi")  # the evaluated language is always a candidate
    # Codes outside okapi-kit's table but known to py3langid are accepted.
    assert LanguageFidelity.Config(candidate_languages=["ja", "vi", "ja"]).candidate_languages == ["ja", "vi"]


@pytest.mark.parametrize(("codes", "named"), [(["vi", "xx"], "'xx'"), (["Vietnamese"], "'Vietnamese'"),
                                              ([], "empty")])
def test_unknown_candidate_language_is_a_config_error(codes, named):
    with pytest.raises(ValidationError, match=named):
        LanguageFidelity.Config(candidate_languages=codes)


def test_unknown_candidate_language_through_the_registry():
    reg = Registry()
    reg.add("evaluator", LanguageFidelity, plugin="okapi_kit_fidelity")
    with pytest.raises(OkapiError) as info:
        create_component(reg, "evaluator", "language_fidelity", {"candidate_languages": ["vi", "vn"]},
                         where="config: evaluation.evaluators[0]")
    assert "'vn'" in info.value.render() and "candidate_languages" in info.value.render()


@pytest.mark.parametrize("responses", [None, [], [[], []]])
def test_missing_generations_are_an_error(tmp_path, responses):
    with pytest.raises(OkapiError) as info:
        LanguageFidelity().evaluate(target(tmp_path, "vi", responses))
    if responses is None or responses == []:
        assert info.value.message == "no held-out prompts in 'vi' to measure language fidelity on"
        assert "instructions.holdout" in info.value.hint and "eval prompts" in info.value.hint
    else:
        assert "at least one sampled response" in info.value.hint
    with pytest.raises(OkapiError, match="no held-out prompts"):
        LanguageFidelity().evaluate(target(tmp_path, "vi", [[VI[0]]], prompts=()))
    with pytest.raises(OkapiError, match="responses for 1 of 2"):
        LanguageFidelity().evaluate(target(tmp_path, "vi", [[VI[0]]]))


def test_check_before_any_work():
    from okapi_kit_fidelity.evaluator import identifiable

    from okapi_kit.languages import LANGUAGES

    ev = LanguageFidelity()
    for code in LANGUAGES:  # what `check` takes for granted without loading the model
        ev.check(code)
        assert set(ev.candidates(code)) <= identifiable()
    ev.check("ja")  # outside okapi-kit's table, known to py3langid
    with pytest.raises(OkapiError, match="cannot identify 'tlh'"):
        ev.check("tlh")
