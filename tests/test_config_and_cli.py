"""Config validation through the CLI: every bad input is one clear message and exit code 2."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import okapi_kit
from okapi_kit import OkapiError
from okapi_kit.cli import cli, main

CORE = Path(okapi_kit.__file__).resolve().parent
DEMO = CORE / "demo" / "demo.yaml"
STARTER = CORE / "templates" / "starter.yaml"
OKAPI_KIT = Path(sys.executable).parent / "okapi-kit"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_error(rc: int, err: str, *expected: str) -> None:
    assert rc == 2, err
    assert "Traceback" not in err
    assert err.startswith("error: "), err
    assert err.count("error:") == 1, err
    assert len(err.strip().splitlines()) <= 2, err  # the message and at most one hint
    for text in expected:
        assert text in err, f"{text!r} not in {err!r}"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the bundled demo (config + data) that tests may write configs into."""
    root = tmp_path_factory.mktemp("project")
    shutil.copy(DEMO, root / "demo.yaml")
    shutil.copytree(DEMO.parent / "data", root / "data")
    return root


@pytest.fixture
def in_project(project, monkeypatch) -> Path:
    monkeypatch.chdir(project)
    return project


def demo_data() -> dict:
    return yaml.safe_load(DEMO.read_text(encoding="utf-8"))


def write_config(root: Path, name: str, mutate) -> Path:
    data = demo_data()
    mutate(data)
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# ---- good configs -----------------------------------------------------------------------------

def test_bundled_demo_validates(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, out, err = run_cli(capsys, "validate", DEMO)
    assert (rc, err) == (0, "")
    assert out.startswith(f"{DEMO}: OK (79 units in 10 stages: align, base_model, evaluate, generate, ")
    assert out.endswith("languages: vi, hi, bn)\n")
    assert list(tmp_path.iterdir()) == []  # validating writes nothing


def test_init_writes_a_project_that_validates_as_written(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, out, err = run_cli(capsys, "init", "proj")
    assert rc == 0, err
    assert "proj/okapi.yaml" in out and "okapi-kit run proj/okapi.yaml" in out
    assert (tmp_path / "proj/okapi.yaml").read_text(encoding="utf-8") == STARTER.read_text(encoding="utf-8")
    assert (tmp_path / "proj/data/instructions.en.jsonl").is_file()
    monkeypatch.chdir(tmp_path / "proj" / "data")  # paths are the config's, not the working directory's
    rc, out, err = run_cli(capsys, "validate", "../okapi.yaml")
    assert rc == 0 and out.startswith("../okapi.yaml: OK"), err
    # a .yaml path puts the data beside it
    monkeypatch.chdir(tmp_path)
    rc, out, err = run_cli(capsys, "init", "other/my.yaml")
    assert rc == 0, err
    assert run_cli(capsys, "validate", "other/my.yaml")[0] == 0


def test_init_refuses_to_overwrite_without_force(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "okapi-project").mkdir()
    (tmp_path / "okapi-project/okapi.yaml").write_text("name: mine\n", encoding="utf-8")
    rc, out, err = run_cli(capsys, "init")
    assert_one_error(rc, err, "okapi.yaml exists", "--force")
    assert (tmp_path / "okapi-project/okapi.yaml").read_text(encoding="utf-8") == "name: mine\n"
    rc, out, err = run_cli(capsys, "init", "--force")
    assert rc == 0
    assert (tmp_path / "okapi-project/okapi.yaml").read_text(encoding="utf-8") == STARTER.read_text(encoding="utf-8")


@pytest.mark.parametrize("overrides, summary", [
    (["languages=[vi]"], "31 units"),
    (["languages=[hi, bn]", "sampling.k=2"], "55 units"),
    (["model_scope=per_language"], "89 units"),
    (["evaluation.models=[sft]", "alignment=[]"], "28 units"),
    (["alignment.0.trainer.options.beta=0.5"], "79 units"),
])
def test_valid_set_overrides(capsys, in_project, overrides, summary):
    args = [a for o in overrides for a in ("--set", o)]
    rc, out, err = run_cli(capsys, "validate", "demo.yaml", *args)
    assert (rc, err) == (0, "")
    assert out.startswith(f"demo.yaml: OK ({summary} in ")


# ---- bad configs: exit code 2, one message naming the problem ------------------------------------

def _del(key):
    return lambda d: d.pop(key)


def _set(path: str, value):
    def mutate(d):
        *parents, last = path.split(".")
        node = d
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return mutate


BAD_CONFIGS = {
    "unknown-top-key": (_set("sedd", 1), ["unknown key 'sedd'", "hint: did you mean 'seed'?"]),
    "unknown-nested-key": (_set("sampling.kk", 3), ["unknown key 'sampling.kk'"]),
    "unknown-key-in-list": (_set("alignment.0.betta", 0.1), ["unknown key 'alignment[0].betta'"]),
    "missing-section": (lambda d: (d.pop("ranking"), d.update(languages=["vi"])),
                        ["reward_model, align/dpo need rankings[vi], which no stage produces",
                         "give your own file under data.rankings.vi"]),
    "wrong-type-int": (_set("seed", "abc"), ["seed: Input should be a valid integer", "(got 'abc')"]),
    "wrong-type-list": (_set("languages", "vi"), ["languages: Input should be a valid list", "(got 'vi')"]),
    "wrong-literal": (_set("model_scope", "global"),
                      ["model_scope: Input should be 'multilingual' or 'per_language'", "(got 'global')"]),
    "out-of-range": (_set("sampling.k", 1), ["sampling.k: Input should be greater than or equal to 2 (got 1)"]),
    "duplicate-language": (_set("languages", ["vi", "vi"]), ["languages: a language is listed twice"]),
    "unknown-language": (_set("languages", ["vi", "vn"]),
                         ["languages[1]: unknown language code 'vn'", "did you mean 'vi'"]),
    "language-by-name": (_set("languages", ["Hindi"]),
                         ["languages[0]: unknown language code 'Hindi'", "use the code 'hi' for Hindi"]),
    "unknown-source-language": (_set("source_language", "eng"),
                                ["source_language: unknown language code 'eng'", "did you mean 'en'"]),
    "unknown-ranker": (_set("ranking.ranker", "reference_chr"),
                       ["ranking.ranker: no ranker named 'reference_chr' is installed",
                        "did you mean 'reference_chrf'?"]),
    "unknown-trainer": (_set("alignment.0.trainer.name", "dpoo"),
                        ["alignment[0].trainer: no trainer named 'dpoo' is installed", "did you mean 'dpo'"]),
    "unknown-evaluator": (_set("evaluation.evaluators.1", "language_fidelty"),
                          ["no evaluator named 'language_fidelty'", "did you mean 'language_fidelity'?"]),
    "unknown-trainer-option": (_set("sft.trainer.options.lerning_rate", 0.1),
                               ["unknown key 'sft.trainer.options.lerning_rate'"]),
    "unknown-evaluator-option": (_set("evaluation.evaluators.0.options.limt", 2),
                                 ["unknown key 'evaluation.evaluators[0].options.limt'", "did you mean 'limit'"]),
    "option-wrong-type": (_set("sampling.sampler.options.max_new_tokens", "many"),
                          ["sampling.sampler.options.max_new_tokens: Input should be a valid integer",
                           "(got 'many')"]),
    "missing-instructions": (_set("instructions.path", "data/missing.jsonl"),
                             ["instructions.path: instructions file not found: data/missing.jsonl"]),
    "missing-option-file": (_set("translation.translator.options.targets.vi", "data/none/vi.jsonl"),
                            ["translation.translator.options.targets.vi: file or folder does not exist",
                             "data/none/vi.jsonl"]),
    "missing-model-path": (_set("base_model", "./models/none"),
                           ["base_model: model path does not exist: ./models/none"]),
    "unknown-eval-model": (_set("evaluation.models", ["base", "grpo"]),
                           ["evaluation.models names 'grpo'; known models: ['base', 'dpo', 'ppo', 'rloo', 'sft']"]),
    "wrong-trainer-for-stage": (_set("sft.trainer", "dpo"), ["sft.trainer: trainer 'dpo' does not train on SFT data"]),
    "not-a-reward-trainer": (_set("reward_model.trainer", "sft"),
                             ["reward_model.trainer: trainer 'sft' does not train a reward model"]),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_is_one_clear_error(capsys, in_project, case):
    mutate, expected = BAD_CONFIGS[case]
    path = write_config(in_project, case, mutate)
    rc, out, err = run_cli(capsys, "validate", path.name)
    assert out == ""
    assert_one_error(rc, err, *expected)
    if case == "unknown-eval-model":  # a model-level check must not dump the whole config
        assert "(got" not in err and "translation_memory" not in err


@pytest.mark.parametrize("text, expected", [
    ("name: x\nlanguages: [vi, hi\nseed: 1\n", ["bad.yaml:3: malformed YAML"]),
    ("name: x\n  seed: 1\n", ["bad.yaml:2: malformed YAML", "mapping values are not allowed here"]),
    ("- a\n- b\n", ["bad.yaml: a config must be a YAML mapping of keys to values"]),
    ("", ["bad.yaml: a config must be a YAML mapping of keys to values"]),
], ids=["unclosed-list", "bad-indent", "a-list", "empty"])
def test_malformed_yaml_names_the_line(capsys, tmp_path, monkeypatch, text, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text(text, encoding="utf-8")
    rc, out, err = run_cli(capsys, "validate", "bad.yaml")
    assert_one_error(rc, err, *expected)


def test_missing_config_file(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, out, err = run_cli(capsys, "validate", "nope.yaml")
    assert_one_error(rc, err, "config file not found: nope.yaml", "okapi-kit init")


@pytest.mark.parametrize("override, expected", [
    ("noequals", ["--set 'noequals' has no '='", "write --set key.path=value"]),
    ("alignment.3.method=x", ["--set alignment.3.method: '3' is not an index of that list"]),
    ("seed=abc", ["seed: Input should be a valid integer", "(got 'abc')"]),
    ("sampling.k=1", ["sampling.k: Input should be greater than or equal to 2 (got 1)"]),
    ("languages=[vi,xx]", ["languages[1]: unknown language code 'xx'"]),
    ("sampling.topk=5", ["unknown key 'sampling.topk'"]),
    ("sft.trainer.options.num_epoch=1", ["unknown key 'sft.trainer.options.num_epoch'"]),
    ("seed.x=1", ["--set seed.x: "]),  # seed is a number, not a section
    ("ranking.ranker.options.foo=1", ["unknown key 'ranking.ranker.options.foo'"]),  # `ranker: name` shorthand
])
def test_invalid_set_overrides(capsys, in_project, override, expected):
    rc, out, err = run_cli(capsys, "validate", "demo.yaml", "--set", override)
    assert_one_error(rc, err, *expected)


def test_run_refuses_a_bad_config_before_any_work(capsys, in_project):
    path = write_config(in_project, "run-bad", _set("ranking.ranker", "judge"))
    rc, out, err = run_cli(capsys, "run", path.name, "--run-dir", "runs/bad", "--quiet")
    assert_one_error(rc, err, "no ranker named 'judge'")
    assert not (in_project / "runs").exists()


# ---- --debug, --version, --help ----------------------------------------------------------------

def test_debug_raises_with_a_traceback(capsys, in_project):
    with pytest.raises(OkapiError, match="unknown language code 'xx'"):
        main(["--debug", "validate", "demo.yaml", "--set", "languages=[xx]"])


def test_exit_codes_and_traceback_in_a_real_process(project):
    args = [str(OKAPI_KIT), "validate", "demo.yaml", "--set", "languages=[xx]"]
    plain = subprocess.run(args, cwd=project, capture_output=True, text=True, timeout=60)
    assert plain.returncode == 2
    assert plain.stdout == ""
    assert plain.stderr.startswith("error: demo.yaml: languages[0]: unknown language code 'xx'\n")
    assert "Traceback" not in plain.stderr
    debug = subprocess.run([args[0], "--debug", *args[1:]], cwd=project, capture_output=True, text=True,
                           timeout=60)
    assert debug.returncode != 0
    assert "Traceback (most recent call last)" in debug.stderr
    assert "okapi_kit.errors.OkapiError: demo.yaml: languages[0]: unknown language code 'xx'" in debug.stderr


def test_version(capsys):
    rc, out, err = run_cli(capsys, "--version")
    assert (rc, out) == (0, f"okapi-kit, version {okapi_kit.__version__}\n")


def test_unknown_command_is_exit_2(capsys):
    rc, out, err = run_cli(capsys, "valdate")
    assert rc == 2
    assert "No such command 'valdate'" in err and "Traceback" not in err


def test_top_level_help_has_examples(capsys):
    rc, out, err = run_cli(capsys, "--help")
    assert rc == 0
    assert "Examples:" in out and "okapi-kit run" in out
    for name in ("run", "init", "validate", "plugins", "leaderboard"):
        assert f"  {name} " in out


def _command_names() -> list[str]:
    import click

    return cli.list_commands(click.Context(cli))


def test_every_command_is_listed():
    names = _command_names()
    assert {"run", "init", "validate", "plugins", "leaderboard", "tiny-model"} <= set(names)


@pytest.mark.parametrize("name", ["run", "init", "validate", "plugins", "leaderboard", "tiny-model"])
def test_every_command_help_has_an_example(capsys, name):
    rc, out, err = run_cli(capsys, name, "--help")
    assert rc == 0, err
    assert out.startswith(f"Usage: okapi-kit {name} ")
    assert "Example" in out
    assert f"okapi-kit {name}" in out.split("Example", 1)[1]
