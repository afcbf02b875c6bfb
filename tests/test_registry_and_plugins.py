"""The registry, the plugin manager, the entry-point switches and the light-core promise."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import okapi_kit
import okapi_kit.plugins as plugins_mod
from okapi_kit import OkapiError, Ranker, Translator, hookimpl
from okapi_kit.plugins import build_plugin_manager
from okapi_kit.registry import Registry, create_component

ROOT = Path(__file__).resolve().parents[1]
CORE = Path(okapi_kit.__file__).resolve().parent
DEMO = CORE / "demo" / "demo.yaml"
OKAPI_KIT = Path(sys.executable).parent / "okapi-kit"  # the console script of this environment
HEAVY = ("torch", "transformers", "trl", "lm_eval")

FIRST_PARTY_COMPONENTS = {
    ("translator", "translation_memory", "translation_memory"),
    ("translator", "transformers_mt", "transformers"),
    ("translator", "transformers", "transformers"),
    ("translator", "openai", "openai"),
    ("translator", "anthropic", "anthropic"),
    ("generator", "transformers", "transformers"),
    ("generator", "openai", "openai"),
    ("generator", "anthropic", "anthropic"),
    ("sampler", "transformers", "transformers"),
    ("ranker", "reference_chrf", "sacrebleu"),
    ("ranker", "reward_model", "transformers"),
    ("ranker", "transformers", "transformers"),
    ("ranker", "openai", "openai"),
    ("ranker", "anthropic", "anthropic"),
    ("reward_source", "reward_model", "transformers"),
    ("reward_source", "callable", "rl"),
    ("trainer", "sft", "trl"),
    ("trainer", "reward", "trl"),
    ("trainer", "dpo", "trl"),
    ("trainer", "ipo", "trl"),
    ("trainer", "grpo", "trl"),
    ("trainer", "ppo", "rl"),
    ("trainer", "reinforce", "rl"),
    ("trainer", "rloo", "rl"),
    ("trainer", "copg", "rl"),
    ("trainer", "copg_offline", "rl"),
    ("evaluator", "lm_eval", "lm_eval"),
    ("evaluator", "language_fidelity", "language_fidelity"),
    ("evaluator", "rm_accuracy", "transformers"),
    ("evaluator", "rm_reward", "transformers"),
    ("evaluator", "mean_reward", "transfer"),
    ("transfer", "direct", "transfer"),
    ("transfer", "translate_then_score", "transfer"),
    ("evaluator", "win_rate", "judges"),
    ("evaluator", "safety", "judges"),
    ("chat", "openai", "openai"),
    ("chat", "anthropic", "anthropic"),
    ("chat", "transformers", "transformers"),
    ("stage", "rm_transfer", "transfer"),
}
FIRST_PARTY_PLUGINS = {"translation_memory", "sacrebleu", "transformers", "trl", "lm_eval",
                       "language_fidelity", "rl", "openai", "anthropic", "transfer", "judges"}


@pytest.fixture
def fresh_plugins(monkeypatch):
    """Forget the cached plugin manager before and after a test that changes the switches."""
    monkeypatch.delenv(plugins_mod.ENV_ALLOW, raising=False)
    monkeypatch.delenv(plugins_mod.ENV_BLOCK, raising=False)
    plugins_mod.reset()
    yield monkeypatch
    plugins_mod.reset()


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (plugins_mod.ENV_ALLOW, plugins_mod.ENV_BLOCK)}
    env["COLUMNS"] = "200"
    return env


# ---- in-memory components and plugins -------------------------------------------------------

class MTOne(Translator):
    """First machine translator."""
    name = "mt"


class MTTwo(Translator):
    """Second machine translator, same name."""
    name = "mt"


class Echo(Translator):
    """Returns its input."""
    name = "echo"

    def translate(self, texts, source, target):
        return list(texts)


class Judge(Ranker):
    """A ranker."""
    name = "judge"


class Nameless(Translator):
    """No name."""


class AlphaPlugin:
    @hookimpl
    def okapi_register_translators(self, register):
        register(MTOne)


class BetaPlugin:
    @hookimpl
    def okapi_register_translators(self, register):
        register(MTTwo)


class GoodPlugin:
    @hookimpl
    def okapi_register_translators(self, register):
        register(Echo)

    @hookimpl
    def okapi_register_rankers(self, register):
        register(Judge)


class MisspelledPlugin:
    @hookimpl
    def okapi_register_translator(self, register):  # missing "s": no such hook
        register(MTOne)


class WrongArgumentPlugin:
    @hookimpl
    def okapi_register_rankers(self, reg):  # the hook's argument is `register`
        reg(Judge)


def in_memory(*plugins: tuple[object, str]):
    pm = build_plugin_manager(load_entry_points=False)
    results = [pm.add_plugin(obj, name) for obj, name in plugins]
    return pm, results


# ---- registry ------------------------------------------------------------------------------

def test_duplicate_component_name_names_both_plugins():
    pm, ok = in_memory((AlphaPlugin(), "alpha"), (BetaPlugin(), "beta"))
    assert ok == [True, True]
    with pytest.raises(OkapiError) as info:
        Registry.from_plugins(pm)
    msg = str(info.value)
    assert "two plugins register a translator named 'mt'" in msg
    assert "'alpha'" in msg and "'beta'" in msg
    assert f"{__name__}.MTOne" in msg and f"{__name__}.MTTwo" in msg
    assert "OKAPI_KIT_BLOCK_PLUGINS" in msg


def test_registry_collects_each_kind_with_its_plugin():
    pm, ok = in_memory((GoodPlugin(), "good"))
    assert ok == [True]
    reg = Registry.from_plugins(pm)
    assert [(e.kind, e.name, e.plugin, e.cls) for e in reg.entries()] == [
        ("translator", "echo", "good", Echo), ("ranker", "judge", "good", Judge)]
    assert reg.get("ranker", "judge").cls is Judge
    assert reg.entries("evaluator") == []


def test_unknown_name_suggests_close_matches():
    reg = Registry()
    reg.add("translator", Echo, plugin="p")
    reg.add("ranker", Judge, plugin="p")
    with pytest.raises(OkapiError) as info:
        reg.get("translator", "ecko", where="translation.translator")
    err = info.value
    assert err.message == "no translator named 'ecko' is installed"
    assert err.where == "translation.translator"
    assert err.hint == "did you mean 'echo'?"
    # nothing close: every choice is listed
    with pytest.raises(OkapiError) as info:
        reg.get("ranker", "zzzzzz")
    assert info.value.hint == "choose one of: judge"
    with pytest.raises(OkapiError) as info:
        reg.get("rankr", "judge")
    assert info.value.message == "unknown component kind 'rankr'"
    assert info.value.hint.startswith("did you mean 'ranker'")


def test_wrong_base_class_or_no_name_rejected():
    reg = Registry()
    with pytest.raises(OkapiError) as info:
        reg.add("translator", Judge, plugin="oops")
    assert "plugin 'oops' registered" in str(info.value)
    assert "is not a subclass of okapi_kit.Translator" in str(info.value)
    with pytest.raises(OkapiError, match="not a subclass of okapi_kit.Ranker"):
        reg.add("ranker", lambda: None, plugin="oops")  # not a class at all
    with pytest.raises(OkapiError) as info:
        reg.add("translator", Nameless, plugin="oops")
    assert "registered Nameless without a name" in str(info.value)
    assert reg.entries() == []


def test_create_component_checks_options_by_path():
    from okapi_kit_sacrebleu.ranker import ReferenceChrF

    reg = Registry()
    reg.add("ranker", ReferenceChrF, plugin="sacrebleu")
    comp = create_component(reg, "ranker", "reference_chrf", {"word_order": 2}, where="ranking.ranker")
    assert comp.config.word_order == 2 and comp.config.char_order == 6
    with pytest.raises(OkapiError) as info:
        create_component(reg, "ranker", "reference_chrf", {"char_ordr": 3}, where="ranking.ranker")
    assert info.value.message == "unknown key 'ranking.ranker.options.char_ordr'"
    with pytest.raises(OkapiError) as info:
        create_component(reg, "ranker", "reference_chrf", {"beta": 0}, where="ranking.ranker")
    assert info.value.message.startswith("ranking.ranker.options.beta: Input should be greater than 0")


# ---- plugin manager ------------------------------------------------------------------------

def test_misspelled_hookimpl_is_a_failure_and_good_plugins_stay():
    pm, ok = in_memory((MisspelledPlugin(), "typo"), (GoodPlugin(), "good"), (WrongArgumentPlugin(), "args"))
    assert ok == [False, True, False]
    assert [f.name for f in pm.failures] == ["typo", "args"]
    assert "okapi_register_translator" in pm.failures[0].error
    assert pm.failures[0].error.startswith("PluginValidationError")
    assert "reg" in pm.failures[1].error
    assert pm.get_plugin("typo") is None and pm.get_plugin("args") is None
    assert list(pm.infos) == ["good"]
    pm.check_pending()  # nothing pending is left behind
    reg = Registry.from_plugins(pm)
    assert {(e.kind, e.name) for e in reg.entries()} == {("translator", "echo"), ("ranker", "judge")}


def test_allow_switch_loads_only_named_plugins(fresh_plugins):
    fresh_plugins.setenv("OKAPI_KIT_PLUGINS", "sacrebleu, language_fidelity")
    pm = build_plugin_manager()
    assert set(pm.infos) == {"sacrebleu", "language_fidelity"}
    assert pm.failures == []
    reg = plugins_mod.registry()
    assert {(e.kind, e.name) for e in reg.entries()} == {("ranker", "reference_chrf"),
                                                         ("evaluator", "language_fidelity")}


def test_empty_allow_switch_loads_nothing(fresh_plugins):
    fresh_plugins.setenv("OKAPI_KIT_PLUGINS", "")
    assert plugins_mod.plugin_manager().infos == {}
    assert plugins_mod.registry().entries() == []


def test_block_switch(fresh_plugins):
    fresh_plugins.setenv("OKAPI_KIT_BLOCK_PLUGINS", "trl,lm_eval")
    pm = plugins_mod.plugin_manager()
    assert set(pm.infos) == FIRST_PARTY_PLUGINS - {"trl", "lm_eval"}
    info = pm.infos["sacrebleu"]
    assert (info.dist, info.version, info.module) == ("okapi-kit", okapi_kit.__version__, "okapi_kit_sacrebleu")
    names = {e.name for e in plugins_mod.registry().entries()}
    assert "sft" not in names and "lm_eval" not in names and "reference_chrf" in names


def test_broken_entry_point_is_reported_and_others_load(fresh_plugins):
    eps = [EntryPoint(name="broken", value="okapi_kit_no_such_module_xyz", group="okapi_kit"),
           EntryPoint(name="sacrebleu", value="okapi_kit_sacrebleu", group="okapi_kit")]
    fresh_plugins.setattr(plugins_mod, "entry_points", lambda group: eps)
    pm = build_plugin_manager()
    assert list(pm.infos) == ["sacrebleu"]
    assert len(pm.failures) == 1
    assert pm.failures[0].name == "broken"
    assert pm.failures[0].error.startswith("ModuleNotFoundError")
    assert "okapi_kit_no_such_module_xyz" in pm.failures[0].error


# ---- the installed first-party plugins, through the CLI ----------------------------------------

def test_plugins_json_lists_every_first_party_component(tmp_path):
    proc = subprocess.run([str(OKAPI_KIT), "plugins", "--json"], cwd=tmp_path,
                          env=clean_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    got = {(c["kind"], c["name"], c["plugin"]) for c in data["components"]}
    assert got == FIRST_PARTY_COMPONENTS
    assert all(c["summary"] for c in data["components"])
    assert {p["name"] for p in data["plugins"]} == FIRST_PARTY_PLUGINS
    assert data["failures"] == []


LIGHT_CHECK = """
import sys
from okapi_kit.cli import main
rc = main(sys.argv[1:])
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print("RESULT", rc, ",".join(heavy) or "-", file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["--help"], ["plugins"], ["validate", str(DEMO)]],
                         ids=["help", "plugins", "validate"])
def test_cli_does_not_import_heavy_libraries(argv, tmp_path):
    proc = subprocess.run([sys.executable, "-c", LIGHT_CHECK.format(heavy=HEAVY), *argv], cwd=tmp_path,
                          env=clean_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = [line for line in proc.stderr.splitlines() if line.startswith("RESULT")]
    assert result == ["RESULT 0 -"], proc.stderr
    assert not any(tmp_path.iterdir()), "validate/plugins/help must not write files"


# ---- the core never imports a plugin ---------------------------------------------------------

def test_core_never_imports_a_plugin_module():
    offenders = []
    files = sorted(CORE.rglob("*.py"))
    assert len(files) >= 10
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                func = node.func
                fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if fname in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                    names = [node.args[0].value]
            offenders += [f"{path.relative_to(CORE)}:{node.lineno}: {n}" for n in names
                          if n.split(".")[0].startswith("okapi_kit_")]
    assert offenders == []


def test_first_party_plugins_are_entry_points_not_core_code():
    from importlib.metadata import entry_points

    eps = {ep.name: ep.value for ep in entry_points(group="okapi_kit")}
    assert {n: v for n, v in eps.items() if n in FIRST_PARTY_PLUGINS} == {
        "translation_memory": "okapi_kit_translation_memory", "sacrebleu": "okapi_kit_sacrebleu",
        "transformers": "okapi_kit_transformers", "trl": "okapi_kit_trl", "lm_eval": "okapi_kit_lm_eval",
        "language_fidelity": "okapi_kit_fidelity", "rl": "okapi_kit_rl", "openai": "okapi_kit_openai",
        "anthropic": "okapi_kit_anthropic", "transfer": "okapi_kit_transfer", "judges": "okapi_kit_judges"}
    for value in eps.values():
        assert not value.startswith("okapi_kit.")


def test_a_component_of_a_plugin_that_failed_to_load_says_so(fresh_plugins):
    from okapi_kit.registry import create_component

    eps = [EntryPoint(name="judges", value="okapi_kit_no_such_judges_xyz", group="okapi_kit"),
           EntryPoint(name="sacrebleu", value="okapi_kit_sacrebleu", group="okapi_kit")]
    fresh_plugins.setattr(plugins_mod, "entry_points", lambda group: eps)
    with pytest.raises(OkapiError) as info:
        create_component(plugins_mod.registry(), "ranker", "gpt_judge", {}, where="x.yaml: ranking.ranker")
    text = info.value.render()
    assert "no ranker named 'gpt_judge' is installed" in text
    assert "1 plugin(s) failed to load" in text and "judges" in text and "ModuleNotFoundError" in text


def test_allow_list_entry_matching_no_plugin_is_a_warning(fresh_plugins):
    fresh_plugins.setenv("OKAPI_KIT_PLUGINS", "sacrebleu,sacrebleuu")
    with pytest.warns(UserWarning, match="'sacrebleuu', which no installed plugin is called"):
        pm = build_plugin_manager()
    assert set(pm.infos) == {"sacrebleu"}
