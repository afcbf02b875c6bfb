"""The lm_eval evaluator's task handling, checked without running a model.

Task names, their languages, protocols and the task YAMLs written for one language:
the okapi family is read from the installed lm-eval's folder; other names from lm-eval's
TaskManager index. Building the whole index takes 20-60 s here, so most tests index only a
few of lm-eval's own folders (with TaskManager itself); one slow test uses the whole index.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from okapi_kit import OkapiError  # noqa: E402

HUB = Path(__file__).parent / "fixtures" / "hub"
FLAT = Path(__file__).parent / "fixtures" / "eval"
OKAPI_LANGS_WITHOUT_EN = ["ar", "bn", "ca", "da", "de", "es", "eu", "fr", "gu", "hi", "hr", "hu", "hy", "id", "it",
                          "kn", "ml", "mr", "ne", "nl", "pt", "ro", "ru", "sk", "sr", "sv", "ta", "te", "uk", "vi"]


def lm_eval_tasks() -> Path:
    import importlib.util

    return Path(list(importlib.util.find_spec("lm_eval").submodule_search_locations)[0]) / "tasks"


@pytest.fixture(scope="module")
def few_folders_index():
    """lm-eval's index of a few of its own folders (TaskManager, as the evaluator uses it)."""
    from lm_eval.tasks import TaskManager

    root = lm_eval_tasks()
    folders = [root / "xcopa", root / "belebele", root / "include" / "default" / "Vietnamese",
               root / "okapi" / "arc_multilingual", root / "translation"]
    return TaskManager(include_path=[str(f) for f in folders], include_defaults=False).task_index


@pytest.fixture
def small_index(few_folders_index, monkeypatch):
    from okapi_kit_lm_eval import catalog

    monkeypatch.setattr(catalog, "task_index", lambda: few_folders_index)
    return few_folders_index


def make(**options):
    from okapi_kit_lm_eval import LmEvalEvaluator

    return LmEvalEvaluator(LmEvalEvaluator.Config(**options))


def plan(evaluator, lang: str, tmp_path: Path):
    return evaluator.plan(lang, tmp_path / "cache")


# ---- languages from task names ------------------------------------------------------------

@pytest.mark.parametrize("name, languages, stem", [
    ("xcopa_vi", ("vi",), "xcopa"),
    ("global_mmlu_full_vi", ("vi",), "global_mmlu_full"),
    ("global_mmlu_full_vi_abstract_algebra", ("vi",), "global_mmlu_full_abstract_algebra"),
    ("belebele_vie_Latn", ("vi",), "belebele"),
    ("belebele_zho_Hans", ("zh",), "belebele"),
    ("belebele_npi_Deva", ("ne",), "belebele"),
    ("include_base_44_vietnamese", ("vi",), "include_base_44"),
    ("mgsm_direct_bn", ("bn",), "mgsm_direct"),
    ("m_mmlu_vi", ("vi",), "m_mmlu"),
    ("truthfulqa_vi_mc1", ("vi",), "truthfulqa_mc1"),
    ("hellaswag", (), "hellaswag"),
    ("xcopa_sw", (), "xcopa_sw"),  # Swahili is not one of okapi-kit's languages
    ("wmt16-de-en", ("de", "en"), "wmt16"),
    ("include_base_44_vietnamese_few_shot_en", ("vi", "en"), "include_base_44_few_shot"),
])
def test_languages_are_read_from_task_names(name, languages, stem):
    from okapi_kit_lm_eval.task_language import derive_language, find_languages

    found = find_languages(name)
    assert (found.languages, found.stem) == (languages, stem)
    assert derive_language(name) == (languages[0] if len(languages) == 1 else None)


def test_okapi_family_languages_come_from_the_installed_lm_eval():
    from okapi_kit_lm_eval.tasks import all_languages, family_languages, split_okapi_name

    assert list(family_languages("arc")) == sorted([*OKAPI_LANGS_WITHOUT_EN, "zh"])
    assert list(family_languages("hellaswag")) == OKAPI_LANGS_WITHOUT_EN  # no zh, no en
    assert set(family_languages("mmlu")) == {*OKAPI_LANGS_WITHOUT_EN, "zh", "en", "is", "nb"}
    assert len(all_languages()) == 34
    assert split_okapi_name("m_mmlu_en") == ("mmlu", "en")
    assert split_okapi_name("arc_en") is None and split_okapi_name("hellaswag_zh") is None


def test_every_okapi_task_language_is_an_okapi_kit_language():
    """Swedish among them: lm-eval has arc_sv, hellaswag_sv and m_mmlu_sv."""
    from okapi_kit_lm_eval.task_language import derive_language
    from okapi_kit_lm_eval.tasks import all_languages, split_okapi_name

    from okapi_kit.languages import LANGUAGES

    assert set(all_languages()) <= set(LANGUAGES)
    assert [split_okapi_name(f"{p}_sv") for p in ("arc", "hellaswag", "m_mmlu")] == [
        ("arc", "sv"), ("hellaswag", "sv"), ("mmlu", "sv")]
    assert derive_language("belebele_swe_Latn") == derive_language("include_base_44_swedish") == "sv"
    make(tasks=["arc", "hellaswag", "mmlu"], protocol="okapi").check("sv")


# ---- names in the config ---------------------------------------------------------------------

def test_unknown_names_fail_with_close_matches_without_the_index():
    from okapi_kit_lm_eval import catalog

    with pytest.raises(ValueError) as err:
        make(tasks=["arc", "global_mmlu_ful_vi"])
    text = str(err.value)
    assert "tasks.1" in text and "no task, group or tag named 'global_mmlu_ful_vi'" in text
    assert "did you mean 'global_mmlu_full_vi'" in text
    assert catalog.task_index.cache_info().currsize == 0  # a typo needs no 20-60 s index build


def test_short_names_and_okapi_tasks_need_no_lm_eval_import(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from okapi_kit_lm_eval import LmEvalEvaluator as E; "
            "e = E(E.Config(tasks=['arc', 'm_mmlu_vi'], protocol='okapi')); e.check('vi'); "
            "print(sorted(m for m in ('torch', 'transformers', 'lm_eval', 'datasets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.strip() == "[]"
    assert list(tmp_path.iterdir()) == []  # check() writes nothing


def test_named_tasks_get_their_language_and_a_cross_language_label(small_index):
    specs = make(tasks=["arc", "xcopa_vi", "belebele_vie_Latn", "include_base_44_vietnamese", "arc_de"]).specs
    got = [(s.entry, s.label, s.language, s.kind, s.okapi) for s in specs]
    assert got == [("arc", "arc", None, "task", "arc"), ("xcopa_vi", "xcopa", "vi", "task", None),
                   ("belebele_vie_Latn", "belebele", "vi", "task", None),
                   ("include_base_44_vietnamese", "include_base_44", "vi", "group", None),
                   ("arc_de", "arc", "de", "task", "arc")]


def test_a_tag_stands_for_its_tasks_each_in_its_language(small_index):
    specs = make(tasks=["arc_multilingual"]).specs
    assert sorted(s.language for s in specs) == sorted([*OKAPI_LANGS_WITHOUT_EN, "zh"])
    assert {(s.okapi, s.label) for s in specs} == {("arc", "arc")}


def test_a_task_without_a_language_needs_task_languages(small_index):
    with pytest.raises(ValueError) as err:
        make(tasks=["xcopa", "wmt16-de-en"])
    text = str(err.value)
    assert "cannot tell which language lm-eval's group 'xcopa' is in" in text
    assert "'wmt16-de-en' is in (its name spells de, en)" in text and "task_languages" in text
    specs = make(tasks=["wmt16-de-en"], task_languages={"wmt16-de-en": "de"}).specs
    assert [(s.language, s.label) for s in specs] == [("de", "wmt16-de-en")]
    with pytest.raises(ValueError, match="task_languages names 'xcopa_vi', which is not in tasks"):
        make(tasks=["arc"], task_languages={"xcopa_vi": "vi"})
    with pytest.raises(ValueError, match="unknown language code 'vie'"):
        make(tasks=["wmt16-de-en"], task_languages={"wmt16-de-en": "vie"})


def test_num_fewshot_names_only_listed_tasks():
    with pytest.raises(ValueError, match="num_fewshot names 'gsm8k'"):
        make(tasks=["arc"], num_fewshot={"gsm8k": 5})
    with pytest.raises(ValueError, match=r"num_fewshot must be 0 or more \(got -1\)"):
        make(num_fewshot=-1)


# ---- protocols ---------------------------------------------------------------------------------

def test_okapi_protocol_sets_25_0_25_shots_and_lm_eval_keeps_the_stock_ones(tmp_path):
    from okapi_kit_lm_eval.tasks import okapi_tasks_dir

    okapi = plan(make(protocol="okapi"), "vi", tmp_path)
    assert okapi.names == ["arc_vi", "hellaswag_vi", "m_mmlu_vi"]
    assert {n: y.get("num_fewshot") for n, y in okapi.yamls.items()} == {
        "arc_vi": 25, "hellaswag_vi": 0, "m_mmlu_vi": 25}
    assert okapi.yamls["arc_vi"]["include"] == str(okapi_tasks_dir() / "arc_multilingual" / "arc_vi.yaml")
    assert set(okapi.protocols.values()) == {"okapi"}
    assert okapi.sources["arc_vi"] == "hub alexandrainst/m_arc"
    stock = plan(make(protocol="lm-eval"), "vi", tmp_path)
    assert all("num_fewshot" not in y for y in stock.yamls.values())
    assert set(stock.protocols.values()) == {"lm-eval"}
    # Okapi's counts given by hand under the stock protocol are not the stock protocol.
    mixed = plan(make(num_fewshot={"arc": 25, "hellaswag": 0, "mmlu": 0}), "vi", tmp_path)
    assert mixed.protocols == {"arc_vi": "custom", "hellaswag_vi": "lm-eval", "m_mmlu_vi": "lm-eval"}
    assert plan(make(protocol="okapi", num_fewshot={"arc": 25}), "vi", tmp_path).protocols["arc_vi"] == "okapi"


def test_hub_tasks_exist_only_in_the_languages_lm_eval_covers(tmp_path):
    with pytest.raises(OkapiError) as err:
        make(tasks=["hellaswag"]).check("zh")
    assert "lm-eval has no okapi hellaswag task in 'zh'" in str(err.value)
    assert "covers ar, bn" in str(err.value.hint) and "hellaswag_zh.jsonl" in str(err.value.hint)
    make(tasks=["hellaswag"], data_dir=FLAT).check("vi")  # local files: any language with a file


# ---- local data ----------------------------------------------------------------------------------

def test_flat_files_come_before_a_local_copy_and_missing_data_names_both(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(HUB, data)
    shutil.copy(FLAT / "arc_vi.jsonl", data / "arc_vi.jsonl")
    p = plan(make(tasks=["arc", "mmlu"], data_dir=data), "vi", tmp_path)
    assert p.sources["arc_vi"] == f"file {(data / 'arc_vi.jsonl').resolve()}"
    assert p.sources["m_mmlu_vi"] == f"local copy {data / 'alexandrainst' / 'm_mmlu'}"
    with pytest.raises(OkapiError) as err:
        make(tasks=["hellaswag"], data_dir=FLAT).check("bn")
    assert "hellaswag_bn.jsonl" in str(err.value) and "alexandrainst/m_hellaswag/data/bn" in str(err.value)


def test_a_hub_layout_copy_is_read_under_the_yamls_split_names(tmp_path):
    p = plan(make(data_dir=HUB), "vi", tmp_path)
    arc = p.yamls["arc_vi"]
    folder = (HUB / "alexandrainst" / "m_arc" / "data" / "vi").resolve()
    assert arc["dataset_path"] == "json" and arc["dataset_name"] is None
    assert arc["dataset_kwargs"]["data_files"] == {  # the hub's `val` is the YAML's `validation`
        "train": [str(folder / "train.jsonl")], "validation": [str(folder / "val.jsonl")],
        "test": [str(folder / "test.jsonl")]}
    assert arc["dataset_kwargs"]["cache_dir"] == str(tmp_path / "cache")
    hellaswag = p.yamls["hellaswag_vi"]["dataset_kwargs"]["data_files"]
    assert list(hellaswag) == ["val"]  # the stock YAML scores `val`, the hub's name
    mmlu = p.yamls["m_mmlu_vi"]
    assert sorted(mmlu["dataset_kwargs"]["data_files"]) == ["test", "train"] and "fewshot_split" not in mmlu


def test_a_copy_without_the_few_shot_split_draws_from_the_scored_one(tmp_path):
    data = tmp_path / "data" / "alexandrainst" / "m_mmlu" / "data" / "vi"
    data.mkdir(parents=True)
    shutil.copy(HUB / "alexandrainst" / "m_mmlu" / "data" / "vi" / "test.jsonl", data / "test.jsonl")
    mmlu = plan(make(tasks=["mmlu"], data_dir=tmp_path / "data"), "vi", tmp_path).yamls["m_mmlu_vi"]
    assert mmlu["fewshot_split"] == "test" and list(mmlu["dataset_kwargs"]["data_files"]) == ["test"]
    (data / "test.jsonl").rename(data / "train.jsonl")
    with pytest.raises(OkapiError, match="has no 'test' split, which lm-eval's m_mmlu_vi scores"):
        make(tasks=["mmlu"], data_dir=tmp_path / "data").check("vi")


def test_a_save_to_disk_copy_is_read_with_the_arrow_builder(tmp_path):
    import datasets

    rows = [json.loads(line) for line in (FLAT / "mmlu_vi.jsonl").read_text(encoding="utf-8").splitlines()]
    target = tmp_path / "data" / "m_mmlu" / "vi"
    datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)}).save_to_disk(str(target))
    mmlu = plan(make(tasks=["mmlu"], data_dir=tmp_path / "data"), "vi", tmp_path).yamls["m_mmlu_vi"]
    assert mmlu["dataset_path"] == "arrow"
    files = mmlu["dataset_kwargs"]["data_files"]["test"]
    assert files and all(Path(f).parent == (target / "test").resolve() and f.endswith(".arrow") for f in files)


def test_a_hub_repository_clone_is_handed_to_datasets(tmp_path):
    clone = tmp_path / "data" / "alexandrainst" / "m_hellaswag"
    (clone / "files").mkdir(parents=True)
    (clone / "README.md").write_text("---\nconfigs:\n- config_name: vi\n  data_files:\n  - split: val\n"
                                     "    path: files/vi-val.jsonl\n---\n", encoding="utf-8")
    shutil.copy(FLAT / "hellaswag_vi.jsonl", clone / "files" / "vi-val.jsonl")
    yaml = plan(make(tasks=["hellaswag"], data_dir=tmp_path / "data"), "vi", tmp_path).yamls["hellaswag_vi"]
    assert yaml["dataset_path"] == str(clone) and "dataset_name" not in yaml  # the stock config name, vi


def test_named_tasks_read_a_local_copy_and_groups_index_their_folders(small_index, tmp_path):
    p = plan(make(tasks=["xcopa_vi", "include_base_44_vietnamese"], data_dir=HUB), "vi", tmp_path)
    assert p.names == ["xcopa_vi", "include_base_44_vietnamese"]
    assert sorted(p.yamls) == ["include_base_44_vietnamese_arts_humanities", "include_base_44_vietnamese_social_science",
                               "include_base_44_vietnamese_stem", "xcopa_vi"]
    assert p.yamls["xcopa_vi"]["dataset_kwargs"]["data_files"]["test"] == [
        str((HUB / "cambridgeltl" / "xcopa" / "vi" / "test.jsonl").resolve())]
    assert lm_eval_tasks() / "include" / "default" / "Vietnamese" in p.folders
    # Without a local copy a named task is read from the hub as it stands: no YAML written.
    hub = plan(make(tasks=["xcopa_vi"], data_dir=FLAT), "vi", tmp_path)
    assert hub.yamls == {} and hub.sources == {"xcopa_vi": "hub (stock task)"}
    assert plan(make(tasks=["xcopa_vi"]), "bn", tmp_path).names == []  # bound to vi


def test_a_task_reached_twice_is_an_error(small_index, tmp_path):
    with pytest.raises(OkapiError, match="'include_base_44_vietnamese_stem' is in both"):
        make(tasks=["include_base_44_vietnamese", "include_base_44_vietnamese_stem"]).check("vi")


@pytest.mark.slow
def test_lm_eval_s_whole_index_resolves_a_group():
    """The production path: lm-eval's full TaskManager index, built once for the process."""
    from okapi_kit_lm_eval import catalog

    specs = make(tasks=["global_mmlu_full_vi", "mgsm_direct_bn"]).specs
    assert [(s.label, s.language, s.kind) for s in specs] == [
        ("global_mmlu_full", "vi", "group"), ("mgsm_direct", "bn", "task")]
    leaves, folders = catalog.closure("global_mmlu_full_vi")
    assert len(leaves) == 57 and folders == {lm_eval_tasks() / "global_mmlu" / "full" / "vi"}
    make(tasks=["xcopa_vi"])
    assert catalog.task_index.cache_info().hits >= 1  # built once per process
