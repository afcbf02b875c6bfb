"""Records, JSONL IO, the readers of user data, the language table and the prompt template."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from itertools import combinations
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import datasets  # noqa: E402  (a core dependency: missing is a failure, not a skip)

from okapi_kit import Instruction, OkapiError, PreferencePair, Ranking, SampleSet  # noqa: E402
from okapi_kit.languages import LANGUAGES, OKAPI_LANGUAGES, get_language  # noqa: E402
from okapi_kit.prompts import PromptFormatter, format_alpaca  # noqa: E402
from okapi_kit.readers import (  # noqa: E402
    data_files,
    detect_kind,
    language_from_filename,
    read_instructions,
    read_preferences,
    read_rankings,
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
    # no ids in the file: the position is the identity, as for instructions
    assert [(p.id, p.lang, p.chosen, p.rejected) for p in pairs] == [
        ("r_vi-000000", "vi", "Tốt", "Tệ"), ("r_vi-000001", "vi", "Ngắn", "Dài")]
    assert pairs[0].prompt == format_alpaca("Viết một câu.")
    # the raw instruction and input stay available, for another prompt template
    assert [(p.instruction, p.input) for p in pairs] == [("Viết một câu.", ""), ("Tóm tắt.", "Văn bản")]
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


def test_saved_hf_dataset_folder(tmp_path, hf_cache):
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
    # read from the folder as saved: nothing generated into the datasets cache
    assert not hf_cache.exists() or not any(hf_cache.iterdir())
    with pytest.raises(OkapiError) as info:
        read_instructions(tmp_path / "dd", split="validation")
    assert (info.value.message, info.value.where, info.value.hint) == (
        "dd has no split 'validation'", str(tmp_path / "dd"), "its splits are: train, test")
    assert data_files(tmp_path / "dd") == sorted(p for p in (tmp_path / "dd").rglob("*") if p.is_file())
    assert (tmp_path / "dd" / "dataset_dict.json") in data_files(tmp_path / "dd")


@pytest.mark.parametrize("content, where, message", [
    ('[{"instruction": "a"},\n {"instruction": 5}]', "record 1", "field 'instruction' must be a string, got int"),
    ('[{"instruction": "a"},\n {"input": "b"}]', "record 1", "missing field 'instruction'"),
    ('[{"instruction": "a"},\n {"instruction": "  "}]', "record 1", "field 'instruction' is empty"),
    ('[{"instruction": "a"},\n "just text"]', "record 1", "expected a JSON object, got str"),
    ('[{"instruction": "a"},\n {"instruction" "b"}]', ":2", "invalid JSON (Expecting ':' delimiter)"),
    ('{"instruction": "a", "output": ["x"]}', "record 0", "field 'output' must be a string, got list"),
    ('"text"', "", "expected a JSON array of records, got a string"),
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


# ---- Okapi's released formats (tests/data/okapi) ----------------------------------------------

OKAPI_DATA = Path(__file__).parent / "data" / "okapi"
ALPACA = OKAPI_DATA / "multilingual-alpaca-52k"
RANKING = OKAPI_DATA / "multilingual-ranking-data-42k"
RL = OKAPI_DATA / "multilingual-rl-tuning-64k"
FIRST = {  # the first record of each file, as written there
    "vi": ("Kể tên ba màu cơ bản.", "Ba màu cơ bản là đỏ, vàng và xanh lam.",
           "Nêu ba lợi ích của việc đọc sách.", "Đọc sách.",
           "Viết một đoạn văn ngắn giới thiệu về phở."),
    "bn": ("তিনটি প্রাথমিক রঙের নাম বলো।", "তিনটি প্রাথমিক রঙ হলো লাল, হলুদ এবং নীল।",
           "বই পড়ার তিনটি উপকারিতা লেখো।", "বই পড়া।",
           "ইলিশ মাছ নিয়ে একটি ছোট অনুচ্ছেদ লেখো।"),
}


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """The datasets cache pointed at an empty folder, to show that nothing is written there."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)  # read once, at import
    return cache


@pytest.mark.parametrize("lang", ["vi", "bn"])
def test_okapi_alpaca_files(lang):
    raw = json.loads((ALPACA / f"{lang}.json").read_text(encoding="utf-8"))
    records = read_instructions(ALPACA / f"{lang}.json")
    assert len(records) == len(raw) == 24
    assert records[0].instruction == FIRST[lang][0] and records[0].output == FIRST[lang][1]
    assert [r.id for r in records] == [f"{lang}-{i:06d}" for i in range(24)]
    assert {r.lang for r in records} == {lang}
    assert [(r.instruction, r.input, r.output) for r in records] == [
        (o["instruction"], o["input"], o["output"]) for o in raw]
    assert any(r.input for r in records) and all(r.output for r in records)
    assert detect_kind(raw[0]) == "instructions"


@pytest.mark.parametrize("lang", ["vi", "bn"])
def test_okapi_rl_tuning_files_are_prompts(lang):
    raw = json.loads((RL / f"{lang}.json").read_text(encoding="utf-8"))
    records = read_instructions(RL / f"{lang}.json")
    assert len(records) == 24 and records[0].instruction == FIRST[lang][4]
    assert [(r.instruction, r.input, r.output) for r in records] == [
        (o["instruction"], o["input"], "") for o in raw]
    assert {r.lang for r in records} == {lang}
    assert detect_kind(raw[0]) == "prompts"


@pytest.mark.parametrize("lang", ["vi", "bn"])
def test_okapi_ranking_files(lang):
    raw = json.loads((RANKING / f"{lang}.json").read_text(encoding="utf-8"))
    rankings = read_rankings(RANKING / f"{lang}.json")
    assert len(rankings) == 24
    first = rankings[0]
    assert (first.instruction, first.responses[1]) == (FIRST[lang][2], FIRST[lang][3])
    assert first.prompt == format_alpaca(FIRST[lang][2])
    for r, o in zip(rankings, raw):
        assert (r.lang, r.order, r.responses) == (lang, [0, 1], [o["prefered_output"], o["rejected_output"]])
        assert (r.instruction, r.input) == (o["instruction"], o["input"])
        assert r.prompt == format_alpaca(o["instruction"], o["input"])
    assert any(r.input for r in rankings)
    pairs = read_preferences(RANKING / f"{lang}.json")
    assert [(p.id, p.prompt, p.chosen, p.rejected, p.instruction) for p in pairs] == [
        (r.id, r.prompt, r.responses[0], r.responses[1], r.instruction) for r in rankings]
    assert pairs[0].id == f"{lang}-000000"
    assert detect_kind(raw[0]) == "preferences"


def test_several_files_are_concatenated_with_unambiguous_ids():
    # two languages: the stems differ, so the ids are those of each file read alone
    both = read_instructions([ALPACA / "vi.json", ALPACA / "bn.json"])
    assert len(both) == 48
    assert [(r.id, r.lang) for r in both[23:25]] == [("vi-000023", "vi"), ("bn-000000", "bn")]
    assert read_instructions([ALPACA / "vi.json"]) == read_instructions(ALPACA / "vi.json")
    # one language from two folders: the same stem, told apart by the folder
    vi = read_instructions([ALPACA / "vi.json", RL / "vi.json"])
    assert len(vi) == len({r.id for r in vi}) == 48
    assert (vi[0].id, vi[24].id) == ("multilingual-alpaca-52k.vi-000000",
                                     "multilingual-rl-tuning-64k.vi-000000")
    assert (vi[0].output != "", vi[24].output) == (True, "")
    # the same file twice, however it is written, is an error rather than duplicate records
    with pytest.raises(OkapiError) as info:
        read_instructions([ALPACA / "vi.json", ALPACA / ".." / ALPACA.name / "vi.json"])
    assert info.value.message.startswith("data source listed twice: ")
    with pytest.raises(OkapiError, match="no data source given"):
        read_instructions([])


def test_explicit_ids_must_be_unique_across_files(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"id": "x", "instruction": "one"}, {"id": "y", "instruction": "two"}])
    write_jsonl(tmp_path / "b.jsonl", [{"id": "z", "instruction": "three"}, {"id": "x", "instruction": "four"}])
    with pytest.raises(OkapiError) as info:
        read_instructions([tmp_path / "a.jsonl", tmp_path / "b.jsonl"])
    assert (info.value.message, info.value.where, info.value.hint) == (
        "duplicate record id 'x'", f"{tmp_path / 'b.jsonl'}:2", f"first at {tmp_path / 'a.jsonl'}:1")


# ---- kinds --------------------------------------------------------------------------------------

@pytest.mark.parametrize("obj, kind", [
    ({"instruction": "i", "input": "", "output": "o"}, "instructions"),
    ({"id": "1", "instruction": "i", "input": "", "output": "", "lang": "vi", "source_id": None}, "instructions"),
    ({"prompt": "p", "completion": "c"}, "instructions"),
    ({"instruction": "i", "input": ""}, "prompts"),
    ({"prompt": [{"role": "user", "content": "hi"}]}, "prompts"),
    ({"instruction": "i", "input": "", "prefered_output": "a", "rejected_output": "b"}, "preferences"),
    ({"prompt": "p", "chosen": "a", "rejected": "b"}, "preferences"),
    ({"chosen": "a", "rejected": "b"}, "preferences"),
    ({"prompt": "p", "responses": ["a", "b"]}, "rankings"),
    ({"prompt": "p", "responses": ["a", "b"], "scores": [1, 2], "model": "m"}, "rankings"),
    (Ranking(id="1", lang="vi", prompt="p", responses=["a", "b"], order=[1, 0]).to_dict(), "rankings"),
    (SampleSet(id="1", lang="vi", prompt="p", responses=["a", "b"]).to_dict(), "samples"),
    ({"prompt": "p", "completion": "c", "label": True}, "unknown"),
    ({"text": "a document"}, "unknown"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "unknown"),
])
def test_detect_kind(obj, kind):
    assert detect_kind(obj) == kind


def test_reading_a_file_of_the_wrong_kind_says_what_it_looks_like(tmp_path):
    with pytest.raises(OkapiError) as info:
        read_instructions(RANKING / "vi.json")
    assert info.value.message == "vi.json looks like preference pairs (prefered_output/rejected_output), not instructions"
    assert info.value.where == f"{RANKING / 'vi.json'}: record 0"
    with pytest.raises(OkapiError) as info:
        read_preferences(ALPACA / "bn.json")
    assert info.value.message == ("bn.json looks like instructions with reference outputs "
                                  "(instruction/input/output), not preference pairs or rankings")
    with pytest.raises(OkapiError) as info:
        read_rankings(RL / "vi.json")
    assert info.value.message == ("vi.json looks like prompts without outputs (instruction/input), "
                                  "not preference pairs or rankings")
    cases = [
        (read_instructions, {"prompt": "p", "chosen": "a", "rejected": "b"},
         "looks like preference pairs (chosen/rejected), not instructions"),
        (read_instructions, {"prompt": "p", "responses": ["a", "b"], "order": [1, 0]},
         "looks like K-wise rankings (responses/order), not instructions"),
        (read_rankings, SampleSet(id="1", lang="vi", prompt="p", responses=["a", "b"]).to_dict(),
         "looks like sampled responses without a ranking (responses/model/reference), "
         "not preference pairs or rankings"),
        (read_instructions, {"prompt": "p", "completion": "c", "label": False},
         "looks like unpaired preference data (prompt/completion/label), not instructions"),
    ]
    for reader, obj, message in cases:
        write_jsonl(tmp_path / "d.jsonl", [obj])
        with pytest.raises(OkapiError) as info:
            reader(tmp_path / "d.jsonl")
        assert (info.value.message, info.value.where) == (f"d.jsonl {message}", f"{tmp_path / 'd.jsonl'}:1")
    write_jsonl(tmp_path / "d.jsonl", [{"text": "a document"}])
    with pytest.raises(OkapiError) as info:
        read_preferences(tmp_path / "d.jsonl")
    assert info.value.message == "not a preference pair or a ranking"
    assert info.value.hint.endswith("record keys are: text")


# ---- TRL preference data and K-wise rankings ----------------------------------------------------

def _user(text):
    return {"role": "user", "content": text}


def _assistant(text):
    return {"role": "assistant", "content": text}


def test_trl_standard_and_conversational_preferences(tmp_path):
    rows = [
        {"prompt": "Trời màu gì?", "chosen": "Xanh.", "rejected": "Đỏ."},  # explicit prompt
        {"chosen": "Trời màu gì? Xanh.", "rejected": "Trời màu gì? Đỏ."},  # implicit prompt
        {"prompt": [{"role": "system", "content": "Trả lời ngắn."}, _user("Trời màu gì?")],
         "chosen": [_assistant("Xanh.")], "rejected": [_assistant("Đỏ.")]},
        {"chosen": [_user("Trời màu gì?"), _assistant("Xanh.")],
         "rejected": [_user("Trời màu gì?"), _assistant("Đỏ.")]},
        {"id": "multi", "chosen": [_user("Chào!"), _assistant("Chào bạn."), _user("Trời màu gì?"), _assistant("Xanh.")],
         "rejected": [_user("Chào!"), _assistant("Chào bạn."), _user("Trời màu gì?"), _assistant("Đỏ.")]},
    ]
    write_jsonl(tmp_path / "trl.jsonl", rows)
    rankings = read_rankings(tmp_path / "trl.jsonl", lang="vi")
    assert [(r.id, r.prompt, r.responses, r.order, r.instruction, r.input) for r in rankings] == [
        ("trl-000000", "Trời màu gì?", ["Xanh.", "Đỏ."], [0, 1], None, None),
        ("trl-000001", "", ["Trời màu gì? Xanh.", "Trời màu gì? Đỏ."], [0, 1], None, None),
        ("trl-000002", "Trời màu gì?", ["Xanh.", "Đỏ."], [0, 1], "Trời màu gì?", ""),
        ("trl-000003", "Trời màu gì?", ["Xanh.", "Đỏ."], [0, 1], "Trời màu gì?", ""),
        ("multi", "Chào!\n\nTrời màu gì?", ["Xanh.", "Đỏ."], [0, 1], "Chào!\n\nTrời màu gì?", ""),
    ]
    assert {r.lang for r in rankings} == {"vi"}
    assert read_preferences(tmp_path / "trl.jsonl", lang="vi")[4] == PreferencePair(
        id="multi", lang="vi", prompt="Chào!\n\nTrời màu gì?", chosen="Xanh.", rejected="Đỏ.",
        instruction="Chào!\n\nTrời màu gì?", input="")
    # the same conversational rows as a saved `datasets` folder (TRL's usual container)
    datasets.Dataset.from_list(rows[2:4]).save_to_disk(str(tmp_path / "trl_ds"))
    from_disk = read_preferences(tmp_path / "trl_ds", lang="vi")
    assert [(p.prompt, p.chosen, p.rejected) for p in from_disk] == [("Trời màu gì?", "Xanh.", "Đỏ.")] * 2


@pytest.mark.parametrize("obj, message", [
    ({"chosen": [_user("a"), _assistant("x")], "rejected": [_user("b"), _assistant("y")]},
     "'chosen' and 'rejected' start from different user messages"),
    ({"prompt": "p", "chosen": [_user("a")], "rejected": [_assistant("y")]}, "field 'chosen' has no assistant message"),
    ({"prompt": "p", "chosen": [{"role": "assistant"}], "rejected": "y"},
     "field 'chosen' must be a string or a list of {role, content} messages with string content"),
    ({"prompt": "p", "chosen": "x"}, "missing field 'rejected'"),
    ({"prompt": [{"role": "system", "content": "s"}], "chosen": "x", "rejected": "y"},
     "field 'prompt' has no user message"),
], ids=["different-prompts", "no-assistant", "bad-message", "no-rejected", "no-user"])
def test_bad_trl_preference_records(tmp_path, obj, message):
    write_jsonl(tmp_path / "p.jsonl", [obj])
    with pytest.raises(OkapiError) as info:
        read_rankings(tmp_path / "p.jsonl")
    assert (info.value.message, info.value.where) == (message, f"{tmp_path / 'p.jsonl'}:1")


def test_kwise_rankings(tmp_path):
    rows = [
        {"id": "best-first", "prompt": "P", "responses": ["a", "b", "c"]},
        {"id": "order", "instruction": "Dịch.", "input": "Xin chào", "responses": ["b", "a", "c"],
         "order": [1, 0, 2], "ranker": "chatgpt"},
        {"id": "ranks", "prompt": "P", "responses": ["b", "c", "a"], "ranks": [2, 3, 1]},
        {"id": "scores", "prompt": "P", "responses": ["c", "a", "b"], "scores": [0.1, 0.9, 0.5]},
        {"id": "tie", "prompt": "P", "responses": ["a", "b", "c"], "scores": [0.5, 0.5, 0.1]},
        {"id": "pair", "prompt": "P", "responses": ["b", "a"], "order": [1, 0]},
    ]
    write_jsonl(tmp_path / "k.jsonl", rows)
    rankings = {r.id: r for r in read_rankings(tmp_path / "k.jsonl", lang="bn")}
    assert {k: r.order for k, r in rankings.items()} == {
        "best-first": [0, 1, 2], "order": [1, 0, 2], "ranks": [2, 0, 1], "scores": [1, 2, 0],
        "tie": [0, 1, 2], "pair": [1, 0]}
    assert all(r.ranked() == (["a", "b"] if k == "pair" else ["a", "b", "c"]) for k, r in rankings.items())
    assert rankings["scores"].scores == [0.1, 0.9, 0.5] and rankings["order"].scores is None
    assert rankings["order"].prompt == format_alpaca("Dịch.", "Xin chào")
    assert (rankings["order"].instruction, rankings["order"].input, rankings["order"].ranker) == (
        "Dịch.", "Xin chào", "chatgpt")
    # pairs: a K-wise ranking gives all its pairs, a K=2 ranking one pair under its own id
    pairs = read_preferences(tmp_path / "k.jsonl", lang="bn")
    assert [(p.id, p.chosen, p.rejected) for p in pairs if p.id.startswith(("order", "pair"))] == [
        ("order:0>1", "a", "b"), ("order:0>2", "a", "c"), ("order:1>2", "b", "c"), ("pair", "a", "b")]
    assert len(pairs) == 5 * 3 + 1
    assert {p.instruction for p in pairs if p.id.startswith("order")} == {"Dịch."}


def test_ranking_records_as_written_by_the_rank_stage_read_back(tmp_path):
    written = [Ranking(id="q1", lang="vi", prompt="P", responses=["x", "y", "z"], order=[2, 0, 1],
                       ranker="reference_chrf", scores=[0.2, 0.1, 0.9]),
               Ranking(id="q2", lang="vi", prompt="Q", responses=["u", "v"], order=[0, 1],
                       instruction="Q raw", input="")]
    write_jsonl(tmp_path / "vi.jsonl", written)
    assert read_rankings(tmp_path / "vi.jsonl") == written
    # records written before instruction/input existed still load
    old = {"id": "q", "lang": "vi", "prompt": "P", "responses": ["a", "b"], "order": [1, 0], "ranker": "",
           "scores": None}
    assert Ranking.from_dict(old).instruction is None
    assert PreferencePair.from_dict({"id": "p", "lang": "vi", "prompt": "P", "chosen": "a",
                                     "rejected": "b"}).input is None


@pytest.mark.parametrize("obj, message", [
    ({"prompt": "P", "responses": ["a"]}, "field 'responses' must be a list of at least 2 responses"),
    ({"prompt": "P", "responses": ["a", 3]},
     "field 'responses' must hold strings or lists of {role, content} messages"),
    ({"prompt": "P", "responses": ["a", "b"], "order": [0, 0]},
     "field 'order' must list each response index 0..1 once, best first"),
    ({"prompt": "P", "responses": ["a", "b"], "order": [1, 0], "ranks": [1, 2]}, "give 'order' or 'ranks', not both"),
    ({"prompt": "P", "responses": ["a", "b"], "ranks": [1, 1]}, "field 'ranks' has a tie"),
    ({"prompt": "P", "responses": ["a", "b"], "scores": [1.0]},
     "field 'scores' must be a list of 2 finite numbers, one per response"),
    ({"prompt": "P", "responses": ["a", "b"], "scores": [1.0, float("nan")]},
     "field 'scores' must be a list of 2 finite numbers, one per response"),
    ({"responses": ["a", "b"]}, "missing field 'prompt'"),
], ids=["one-response", "not-text", "not-permutation", "order-and-ranks", "tie", "short-scores", "nan",
        "no-prompt"])
def test_bad_kwise_rankings(tmp_path, obj, message):
    write_jsonl(tmp_path / "k.jsonl", [{"prompt": "ok", "responses": ["a", "b"]}, obj])
    with pytest.raises(OkapiError) as info:
        read_rankings(tmp_path / "k.jsonl")
    assert (info.value.message, info.value.where) == (message, f"{tmp_path / 'k.jsonl'}:2")


# ---- IO errors ----------------------------------------------------------------------------------

def test_non_utf8_data_files_name_file_and_line(tmp_path):
    path = tmp_path / "vi.json"
    path.write_bytes(b'[\n {"instruction": "a"},\n {"instruction": "caf\xe9"}\n]')
    with pytest.raises(OkapiError) as info:
        read_instructions(path)
    assert (info.value.message, info.value.where) == ("vi.json is not UTF-8 text (byte 0xe9)", f"{path}:3")
    assert info.value.hint == "save the file as UTF-8"
    jsonl = tmp_path / "vi.jsonl"
    jsonl.write_bytes(b'{"instruction": "a"}\n{"instruction": "\xff"}\n')
    for read in (read_instructions, lambda p: list(iter_jsonl(p))):
        with pytest.raises(OkapiError) as info:
            read(jsonl)
        assert (info.value.message, info.value.where) == (
            "vi.jsonl is not UTF-8 text (byte 0xff at byte 18 of the line)", f"{jsonl}:2")
    # a UTF-8 byte-order mark is not an error
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps([{"instruction": "Chào"}]).encode())
    jsonl.write_bytes(b"\xef\xbb\xbf" + json.dumps({"instruction": "Chào"}).encode() + b"\n")
    assert read_instructions(path)[0].instruction == read_instructions(jsonl)[0].instruction == "Chào"


@pytest.mark.parametrize("name, content", [
    ("vi.json", b""), ("vi.json", b"  \n"), ("vi.json", b"[]"), ("vi.jsonl", b""), ("vi.jsonl", b"\n\n")])
def test_empty_data_file_is_an_error(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(OkapiError) as info:
        read_instructions(tmp_path / name)
    assert (info.value.message, info.value.where) == (f"{name} is empty: no records", str(tmp_path / name))


@pytest.mark.parametrize("content, got", [("42", "a number"), ("null", "null"), ("true", "true or false")])
def test_json_scalar_is_an_error(tmp_path, content, got):
    (tmp_path / "bn.json").write_text(content, encoding="utf-8")
    with pytest.raises(OkapiError) as info:
        read_rankings(tmp_path / "bn.json")
    assert (info.value.message, info.value.where) == (
        f"expected a JSON array of records, got {got}", str(tmp_path / "bn.json"))


def test_a_folder_where_a_file_is_expected(tmp_path):
    (tmp_path / "vi.json").mkdir()
    with pytest.raises(OkapiError) as info:
        read_instructions(tmp_path / "vi.json")
    assert (info.value.message, info.value.where) == (
        "cannot open vi.json: it is a folder, not a data file", str(tmp_path / "vi.json"))
    (tmp_path / "plain").mkdir()
    with pytest.raises(OkapiError, match="cannot open plain: it is a folder"):
        read_instructions(tmp_path / "plain", fmt="jsonl")
    with pytest.raises(OkapiError) as info:
        list(iter_jsonl(tmp_path / "vi.json"))
    assert (info.value.message, info.value.where) == ("cannot open vi.json: it is a folder", str(tmp_path / "vi.json"))
    with pytest.raises(OkapiError, match="cannot open vi.json: it is a folder"):
        JsonlAppender(tmp_path / "vi.json")


def _as_another_user(fn):
    """fn() with its OkapiError as (message, where); as root, run in a child without root's rights."""
    if os.geteuid() != 0:
        try:
            fn()
        except OkapiError as exc:
            return exc.message, exc.where
        return None
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child process
        result: object = None
        try:
            try:
                os.setgid(65534)
                os.setuid(65534)
            except OSError as exc:  # a container whose root may not change user
                result = ["cannot-drop-rights", repr(exc)]
                raise SystemExit from None
            fn()
        except OkapiError as exc:
            result = [exc.message, exc.where]
        except BaseException as exc:  # report anything else to the parent
            result = result or ["unexpected", repr(exc)]
        finally:
            os.write(write_end, json.dumps(result).encode())
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    result = json.loads(data)
    if result and result[0] == "cannot-drop-rights":
        pytest.skip(f"root cannot give up its rights here: {result[1]}")
    return tuple(result) if result else None


def test_unreadable_file_is_named():
    folder = Path(tempfile.mkdtemp(prefix="okapi-perm-"))  # outside pytest's 0700 tmp folders
    try:
        folder.chmod(0o755)
        path = folder / "vi.json"
        path.write_text('[{"instruction": "a"}]', encoding="utf-8")
        path.chmod(0o000)
        assert _as_another_user(lambda: read_instructions(path)) == (
            "cannot open vi.json: Permission denied", str(path))
        jsonl = folder / "vi.jsonl"
        jsonl.write_text('{"instruction": "a"}\n', encoding="utf-8")
        jsonl.chmod(0o000)
        assert _as_another_user(lambda: read_instructions(jsonl)) == (
            "cannot open vi.jsonl: Permission denied", str(jsonl))
        assert _as_another_user(lambda: JsonlAppender(jsonl)) == (
            "cannot open vi.jsonl: Permission denied", str(jsonl))
    finally:
        shutil.rmtree(folder)


def test_json_lines_in_a_json_file(tmp_path):
    path = tmp_path / "vi.json"
    path.write_text('{"instruction": "a", "output": "b"}\n\n{"instruction": "c"}\n', encoding="utf-8")
    records = read_instructions(path)
    assert [(r.id, r.instruction, r.output) for r in records] == [("vi-000000", "a", "b"), ("vi-000001", "c", "")]
    path.write_text('{"instruction": "a"}\n{"instruction": \n', encoding="utf-8")
    with pytest.raises(OkapiError) as info:
        read_instructions(path)
    assert (info.value.message, info.value.where) == ("invalid JSON (Extra data)", f"{path}:2")


def test_unknown_format_and_unreachable_hub_id(tmp_path, monkeypatch, hf_cache):
    with pytest.raises(OkapiError) as info:
        read_instructions(ALPACA / "vi.json", fmt="jsnl")
    assert (info.value.message, info.value.hint) == ("unknown data format 'jsnl'", "did you mean 'jsonl' or 'json'?")
    assert len(read_instructions(ALPACA / "vi.json", fmt="okapi")) == 24
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    with pytest.raises(OkapiError) as info:
        read_instructions("okapi-kit-tests/no-such-dataset")
    assert info.value.message.startswith(
        "could not load dataset 'okapi-kit-tests/no-such-dataset' (split 'train'): ")
    assert "\n" not in info.value.message
    assert info.value.hint == "give a local JSON/JSONL file or a saved dataset folder when offline"
    assert list(work.iterdir()) == []
    assert not hf_cache.exists() or not any(hf_cache.rglob("*.arrow"))
    assert data_files("okapi-kit-tests/no-such-dataset") == []
    assert data_files([ALPACA / "vi.json", RL / "bn.json"]) == [ALPACA / "vi.json", RL / "bn.json"]


# ---- resumable partial files --------------------------------------------------------------------

def test_jsonl_appender_drops_a_line_torn_inside_a_multibyte_character(tmp_path):
    path = tmp_path / "partial.jsonl"
    with JsonlAppender(path) as app:
        app.append({"id": "1", "text": "Xin chào"})
        app.append({"id": "2", "text": "বাংলা"})
    finished = path.read_bytes()
    torn = json.dumps({"id": "3", "text": "Tiếng Việt"}, ensure_ascii=False).encode("utf-8")
    cut = torn.index("ế".encode()) + 1  # inside the three bytes of "ế"
    path.write_bytes(finished + torn[:cut])
    with pytest.raises(OkapiError):  # not a valid JSONL file as it is
        list(iter_jsonl(path))
    with JsonlAppender(path) as app:
        assert sorted(app.done) == ["1", "2"] and app.done["2"]["text"] == "বাংলা"
        assert path.read_bytes() == finished  # the torn line is gone, the rest untouched
        app.append({"id": "3", "text": "Tiếng Việt"})  # the work is redone
    assert [obj["text"] for _, obj in iter_jsonl(path)] == ["Xin chào", "বাংলা", "Tiếng Việt"]
    assert [p.name for p in tmp_path.iterdir()] == ["partial.jsonl"]


@pytest.mark.parametrize("bad, message", [
    (b'{"id": "2", "v": ', "corrupt line in a partial file (invalid JSON: Expecting value)"),
    (b'["2"]', "corrupt line in a partial file (a JSON list, not an object)"),
    (b'{"id": "2", "v": "\xe1\xba"}', "partial.jsonl is not UTF-8 text (byte 0xe1 at byte 19 of the line)"),
], ids=["bad-json", "not-object", "not-utf8"])
def test_jsonl_appender_refuses_a_corrupt_middle_line(tmp_path, bad, message):
    path = tmp_path / "partial.jsonl"
    content = b'{"id": "1"}\n' + bad + b'\n{"id": "3"}\n\n{"id": "4"}\n{"id": "5", "v'
    path.write_bytes(content)
    with pytest.raises(OkapiError) as info:
        JsonlAppender(path)
    assert (info.value.message, info.value.where) == (message, f"{path}:2")
    assert path.read_bytes() == content  # nothing after the bad line is lost
    # once the line is fixed, the finished lines after it count as done
    path.write_bytes(content.replace(bad, b'{"id": "2"}'))
    with JsonlAppender(path) as app:
        assert sorted(app.done) == ["1", "2", "3", "4"]


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
    for code in ("eu", "gu", "hy", "pt", "is", "nb", "sv"):
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
