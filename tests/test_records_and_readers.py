"""Records, JSONL IO, the readers of user data, the language table and the prompt template."""

from __future__ import annotations

import json
import os
from itertools import combinations
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from okapi_kit import Instruction, OkapiError, PreferencePair, Ranking, SampleSet  # noqa: E402
from okapi_kit.languages import LANGUAGES, OKAPI_LANGUAGES, get_language  # noqa: E402
from okapi_kit.prompts import PromptFormatter, format_alpaca  # noqa: E402
from okapi_kit.readers import (  # noqa: E402
    language_from_filename,
    read_instructions,
    read_preferences,
    read_rows,
)
from okapi_kit.records import (  # noqa: E402
    JsonlAppender,
    atomic_write_text,
    iter_jsonl,
    read_jsonl,
    write_jsonl,
)


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


# ---- records and JSONL ---------------------------------------------------------------------------

def test_jsonl_round_trip_of_every_record_type(tmp_path):
    rows = {
        Instruction: [Instruction(id="a", instruction="Dịch câu này", input="x", output="y", lang="vi",
                                  source_id="en-1"),
                      Instruction(id="b", instruction="Name three colors.")],
        SampleSet: [SampleSet(id="a", lang="hi", prompt="p", responses=["१", "२"], reference="r", model="m")],
        Ranking: [Ranking(id="a", lang="bn", prompt="p", responses=["x", "y", "z"], order=[2, 0, 1],
                          ranker="reference_chrf", scores=[0.5, 0.1, 0.9])],
        PreferencePair: [PreferencePair(id="a:0>1", lang="vi", prompt="p", chosen="c", rejected="r")],
    }
    for cls, records in rows.items():
        path = tmp_path / f"{cls.__name__}.jsonl"
        assert write_jsonl(path, records) == len(records)
        assert read_jsonl(path, cls) == records
        # non-ASCII text is stored as is, one object per line
        lines = path.read_text(encoding="utf-8").splitlines()
        assert [json.loads(line) for line in lines] == [r.to_dict() for r in records]
    assert "Dịch câu này" in (tmp_path / "Instruction.jsonl").read_text(encoding="utf-8")
    assert Instruction.from_dict({"id": "b", "instruction": "Name three colors."}).lang == "en"


def test_record_field_errors_name_file_line_and_field(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"id": "1", "lang": "vi", "prompt": "p", "responses": []}\n'
                    '{"id": "2", "lang": "vi", "prompt": "p", "responses": [], "colour": 1}\n', encoding="utf-8")
    with pytest.raises(OkapiError) as info:
        read_jsonl(path, SampleSet)
    assert info.value.where == f"{path}:2"
    assert info.value.message == "unknown field 'colour' in a SampleSet record"
    path.write_text('{"id": "1", "lang": "vi", "responses": []}\n', encoding="utf-8")
    with pytest.raises(OkapiError) as info:
        read_jsonl(path, SampleSet)
    assert (info.value.where, info.value.message) == (f"{path}:1", "missing field 'prompt' in a SampleSet record")
    path.write_text('\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(OkapiError) as info:
        read_jsonl(path, SampleSet)
    assert (info.value.where, info.value.message) == (f"{path}:2", "expected a JSON object, got list")
    path.write_text('{"id": "1"}\n{"id": \n', encoding="utf-8")
    with pytest.raises(OkapiError) as info:
        list(iter_jsonl(path))
    assert info.value.where == f"{path}:2"
    assert info.value.message.startswith("invalid JSON (")


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "deep" / "out.jsonl"
    write_jsonl(target, [{"id": str(i)} for i in range(3)])
    atomic_write_text(target, "replaced\n")
    assert target.read_text(encoding="utf-8") == "replaced\n"
    assert [p.name for p in (tmp_path / "deep").iterdir()] == ["out.jsonl"]
    # a row that cannot be serialised fails before anything is written: the old file stays
    with pytest.raises(TypeError):
        write_jsonl(target, [{"id": "x", "bad": object()}])
    assert target.read_text(encoding="utf-8") == "replaced\n"
    assert [p.name for p in (tmp_path / "deep").iterdir()] == ["out.jsonl"]
    # a write that fails half-way (here: text UTF-8 cannot encode) removes its temp file
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(target, "ok\n" * 1000 + "\ud800")
    assert target.read_text(encoding="utf-8") == "replaced\n"
    assert [p.name for p in (tmp_path / "deep").iterdir()] == ["out.jsonl"]


def test_jsonl_appender_drops_a_torn_last_line_and_resumes(tmp_path):
    path = tmp_path / "samples.jsonl"
    with JsonlAppender(path) as app:
        assert app.done == {}
        app.append({"id": "1", "v": 1})
        app.append(SampleSet(id="2", lang="vi", prompt="p", responses=["a"]))
    # the process died in the middle of the third line
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"id": "3", "v": ')
    with JsonlAppender(path) as app:
        assert sorted(app.done) == ["1", "2"]
        assert app.done["1"] == {"id": "1", "v": 1}
        app.append({"id": "3", "v": 3})
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["1", "2", "3"]
    # a complete object without its newline is also a torn write: dropped
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"id": "4"}')
    with JsonlAppender(path) as app:
        assert sorted(app.done) == ["1", "2", "3"]
    assert path.read_text(encoding="utf-8").count("\n") == 3
    assert [p.name for p in tmp_path.iterdir()] == ["samples.jsonl"]


def test_ranking_pairs_are_all_pairs_best_first():
    r = Ranking(id="q", lang="vi", prompt="P", responses=["B", "C", "A"], order=[2, 0, 1])
    assert r.ranked() == ["A", "B", "C"]
    assert [(p.chosen, p.rejected) for p in r.pairs()] == [("A", "B"), ("A", "C"), ("B", "C")]
    assert [p.id for p in r.pairs()] == ["q:0>1", "q:0>2", "q:1>2"]
    assert all(p.prompt == "P" and p.lang == "vi" for p in r.pairs())

    k4 = Ranking(id="k", lang="hi", prompt="P", responses=["r0", "r1", "r2", "r3"], order=[3, 1, 0, 2])
    best_first = ["r3", "r1", "r0", "r2"]
    assert [(p.chosen, p.rejected) for p in k4.pairs()] == [
        (best_first[i], best_first[j]) for i, j in combinations(range(4), 2)]
    assert len(k4.pairs()) == 6


# ---- readers -----------------------------------------------------------------------------------

def test_okapi_alpaca_json_array(tmp_path):
    path = write_json(tmp_path / "vi.json", [
        {"instruction": "Kể tên ba màu.", "input": "", "output": "Đỏ, vàng, xanh."},
        {"instruction": "Dịch sang tiếng Anh.", "input": "Xin chào", "output": "Hello"},
    ])
    assert read_instructions(path) == [
        Instruction(id="vi-000000", instruction="Kể tên ba màu.", input="", output="Đỏ, vàng, xanh.", lang="vi"),
        Instruction(id="vi-000001", instruction="Dịch sang tiếng Anh.", input="Xin chào", output="Hello",
                    lang="vi"),
    ]
    # an explicit language wins over the file name
    assert {r.lang for r in read_instructions(path, lang="en")} == {"en"}


def test_okapi_ranking_file_with_their_spelling(tmp_path):
    path = write_json(tmp_path / "r_vi.json", [
        {"instruction": "Viết một câu.", "input": "", "prefered_output": "Tốt", "rejected_output": "Tệ"},
        {"instruction": "Tóm tắt.", "input": "Văn bản", "prefered_output": "Ngắn", "rejected_output": "Dài"},
    ])
    pairs = read_preferences(path)
    assert [(p.id, p.lang, p.chosen, p.rejected) for p in pairs] == [
        ("0", "vi", "Tốt", "Tệ"), ("1", "vi", "Ngắn", "Dài")]
    assert pairs[0].prompt == format_alpaca("Viết một câu.")
    assert pairs[1].prompt == format_alpaca("Tóm tắt.", "Văn bản")
    assert "### Input:\nVăn bản\n\n### Response:\n" in pairs[1].prompt


def test_trl_style_preferences_in_jsonl(tmp_path):
    path = tmp_path / "prefs.jsonl"
    write_jsonl(path, [{"id": "x", "prompt": "P", "chosen": "good", "rejected": "bad"}])
    assert read_preferences(path, lang="hi") == [
        PreferencePair(id="x", lang="hi", prompt="P", chosen="good", rejected="bad")]


@pytest.mark.parametrize("name, lang", [("r_vi.json", "vi"), ("vi.json", "vi"), ("hi.json", "hi"),
                                        ("train.json", None), ("r_vi.jsonl", None), ("data_vi.json", None)])
def test_language_from_filename(name, lang):
    assert language_from_filename(Path("/data") / name) == lang


def test_rl_tuning_file_without_output(tmp_path):
    path = write_json(tmp_path / "r_hi.json", [{"instruction": "एक कविता लिखें।", "input": ""},
                                               {"instruction": "सारांश दें।", "input": "पाठ"}])
    assert read_instructions(path) == [
        Instruction(id="r_hi-000000", instruction="एक कविता लिखें।", lang="hi"),
        Instruction(id="r_hi-000001", instruction="सारांश दें।", input="पाठ", lang="hi"),
    ]


def test_jsonl_instructions_keep_ids_and_languages(tmp_path):
    path = tmp_path / "instructions.jsonl"
    path.write_text('{"id": "e1", "instruction": "Say hi.", "output": "Hi!"}\n\n'
                    '{"id": 7, "instruction": "Count.", "input": "1 2", "lang": "de"}\n', encoding="utf-8")
    assert read_instructions(path) == [
        Instruction(id="e1", instruction="Say hi.", output="Hi!", lang="en"),
        Instruction(id="7", instruction="Count.", input="1 2", lang="de"),
    ]


def test_saved_hf_dataset_folder(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = [{"instruction": "i1", "input": "", "output": "o1"}, {"instruction": "i2", "input": "in", "output": "o2"}]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    assert read_instructions(tmp_path / "ds", lang="bn") == [
        Instruction(id="ds-000000", instruction="i1", output="o1", lang="bn"),
        Instruction(id="ds-000001", instruction="i2", input="in", output="o2", lang="bn"),
    ]
    # a DatasetDict folder: the split is chosen by name
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:1]),
                          "test": datasets.Dataset.from_list(rows[1:])}).save_to_disk(str(tmp_path / "dd"))
    assert [r.instruction for r in read_instructions(tmp_path / "dd", split="test")] == ["i2"]
    assert read_rows(tmp_path / "dd", split="train") == [
        (f"{tmp_path / 'dd'}[train] row 0", rows[0])]


@pytest.mark.parametrize("content, where, message", [
    ('[{"instruction": "a"},\n {"instruction": 5}]', "record 1", "field 'instruction' must be a string, got int"),
    ('[{"instruction": "a"},\n {"input": "b"}]', "record 1", "missing field 'instruction'"),
    ('[{"instruction": "a"},\n {"instruction": "  "}]', "record 1", "field 'instruction' is empty"),
    ('[{"instruction": "a"},\n "just text"]', "record 1", "expected a JSON object, got str"),
    ('[{"instruction": "a"},\n {"instruction" "b"}]', ":2", "invalid JSON (Expecting ':' delimiter)"),
    ('{"instruction": "a", "output": ["x"]}', "record 0", "field 'output' must be a string, got list"),
    ('"text"', "", "expected a JSON array of records"),
], ids=["int", "missing", "empty", "not-object", "bad-json", "list-output", "not-array"])
def test_malformed_okapi_json_names_record_and_field(tmp_path, content, where, message):
    path = tmp_path / "vi.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(OkapiError) as info:
        read_instructions(path)
    assert info.value.message == message
    assert info.value.where == (f"{path}: {where}" if where.startswith("record") else f"{path}{where}")


def test_malformed_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"instruction": "a"}\n{"instructio": "b"}\n', encoding="utf-8")
    with pytest.raises(OkapiError) as info:
        read_instructions(path)
    assert (info.value.where, info.value.message) == (f"{path}:2", "missing field 'instruction'")
    assert info.value.hint == "record keys are: instructio"
    path.write_text('{"instruction": "a"}\n{"instruction": "b"}\n{bad\n', encoding="utf-8")
    with pytest.raises(OkapiError) as info:
        read_instructions(path)
    assert info.value.where == f"{path}:3"
    path.write_text('{"id": "1", "instruction": "a"}\n{"id": "1", "instruction": "b"}\n', encoding="utf-8")
    with pytest.raises(OkapiError, match="duplicate record id '1'"):
        read_instructions(path)


def test_ranking_file_missing_rejected_output(tmp_path):
    path = write_json(tmp_path / "r_vi.json", [{"instruction": "a", "input": "", "prefered_output": "x"}])
    with pytest.raises(OkapiError) as info:
        read_preferences(path)
    assert (info.value.where, info.value.message) == (f"{path}: record 0", "missing field 'rejected_output'")


@pytest.mark.parametrize("source", ["missing.json", "./data/missing", "data/missing.jsonl"])
def test_missing_file_is_named(tmp_path, monkeypatch, source):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OkapiError) as info:
        read_instructions(source)
    assert info.value.message == f"data file not found: {source}"


# ---- languages ---------------------------------------------------------------------------------

OKAPI_TABLE = {  # FORMATS.md: code -> (name, script, group)
    "en": ("English", "Latin", "H"), "ru": ("Russian", "Cyrillic", "H"), "de": ("German", "Latin", "H"),
    "zh": ("Chinese", "Han", "H"), "fr": ("French", "Latin", "H"), "es": ("Spanish", "Latin", "H"),
    "it": ("Italian", "Latin", "H"), "nl": ("Dutch", "Latin", "H"), "vi": ("Vietnamese", "Latin", "H"),
    "id": ("Indonesian", "Latin", "M"), "ar": ("Arabic", "Arabic", "M"), "hu": ("Hungarian", "Latin", "M"),
    "ro": ("Romanian", "Latin", "M"), "da": ("Danish", "Latin", "M"), "sk": ("Slovak", "Latin", "M"),
    "uk": ("Ukrainian", "Cyrillic", "M"), "ca": ("Catalan", "Latin", "M"), "sr": ("Serbian", "Cyrillic", "M"),
    "hr": ("Croatian", "Latin", "M"), "hi": ("Hindi", "Devanagari", "M"), "bn": ("Bengali", "Bengali", "L"),
    "ta": ("Tamil", "Tamil", "L"), "ne": ("Nepali", "Devanagari", "L"), "ml": ("Malayalam", "Malayalam", "L"),
    "mr": ("Marathi", "Devanagari", "L"), "te": ("Telugu", "Telugu", "L"), "kn": ("Kannada", "Kannada", "L"),
}


def test_okapi_languages_and_groups():
    assert len(OKAPI_LANGUAGES) == 26
    assert set(OKAPI_LANGUAGES) == set(OKAPI_TABLE) - {"en"}
    for code, (name, script, group) in OKAPI_TABLE.items():
        lang = get_language(code)
        assert (lang.code, lang.name, lang.script, lang.group, lang.in_okapi) == (code, name, script, group, True)
    groups = {g: sorted(c for c in OKAPI_LANGUAGES if LANGUAGES[c].group == g) for g in "HML"}
    assert [len(groups[g]) for g in "HML"] == [8, 11, 7]
    assert LANGUAGES["en"].cc_share == 45.88 and LANGUAGES["kn"].cc_share == 0.012
    # lm-eval's extra languages are known but outside Okapi's groups
    for code in ("eu", "gu", "hy", "pt", "is", "nb"):
        assert get_language(code).group == "-" and not get_language(code).in_okapi


def test_unknown_language_code_suggests():
    with pytest.raises(OkapiError) as info:
        get_language("vn", where="config: languages[0]")
    assert info.value.message == "unknown language code 'vn'"
    assert info.value.where == "config: languages[0]"
    assert info.value.hint.startswith("did you mean 'vi'")
    with pytest.raises(OkapiError) as info:
        get_language("bengali")
    assert info.value.hint == "use the code 'bn' for bengali"


# ---- prompts -----------------------------------------------------------------------------------

WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n"
    "\n"
    "### Instruction:\n"
    "Translate into French.\n"
    "\n"
    "### Input:\n"
    "Good morning\n"
    "\n"
    "### Response:\n"
)
NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n"
    "\n"
    "### Instruction:\n"
    "Name three colors.\n"
    "\n"
    "### Response:\n"
)


def test_alpaca_template_exactly_as_okapi():
    assert format_alpaca("Translate into French.", "Good morning") == WITH_INPUT
    assert format_alpaca("Name three colors.") == NO_INPUT
    assert format_alpaca("Name three colors.", "   ") == NO_INPUT  # blank input: the no-input template
    fmt = PromptFormatter("alpaca", "tiny:llama")
    assert fmt("Translate into French.", "Good morning") == WITH_INPUT
    assert fmt("Name three colors.") == NO_INPUT
