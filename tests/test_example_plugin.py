"""The example third-party plugin (docs/example_plugin), loaded through a real entry point.

The plugin is pip-installed (offline, no build isolation) into a temporary folder that
goes on PYTHONPATH of child processes, so `okapi-kit` finds it exactly as it would find a
plugin installed from PyPI. Two throwaway distributions next to it check that a broken
plugin is reported by name and version while the others still load.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "example_plugin"
BIN = Path(sys.executable).parent
OKAPI_KIT = shutil.which("okapi-kit", path=str(BIN)) or "okapi-kit"
EXAMPLE_COMPONENTS = {("translator", "reverse_words"), ("ranker", "length_ratio"), ("stage", "drop_empty_best")}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A folder holding the installed example plugin (a real .dist-info with entry points)."""
    tmp = tmp_path_factory.mktemp("example_plugin")
    src = tmp / "src"
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp / "site"
    if importlib.util.find_spec("setuptools") is None:  # a venv of Python >= 3.12 may lack it
        _install_by_hand(src, target)
        return target
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--quiet", "--target", str(target), str(src)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (target / "okapi_kit_example").is_dir()
    return target


def _install_by_hand(src: Path, target: Path) -> None:
    """What pip would install: the package plus a .dist-info with the pyproject's entry points."""
    import tomllib

    project = tomllib.loads((src / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    target.mkdir()
    shutil.copytree(src / "okapi_kit_example", target / "okapi_kit_example")
    eps = "".join(f"{k} = {v}\n" for k, v in project["entry-points"]["okapi_kit"].items())
    _write_dist_info(target, project["name"], project["version"], f"[okapi_kit]\n{eps}")


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory) -> Path:
    """Two hand-made distributions: one whose import fails, one with a misspelled hook."""
    root = tmp_path_factory.mktemp("broken_plugins")
    _fake_dist(root, "okapi-kit-broken", "0.3.0", "broken_import", "okapi_kit_broken",
               'raise ImportError("okapi_kit_broken needs a library that is not installed")\n')
    _fake_dist(root, "okapi-kit-typo", "1.2.0", "typo", "okapi_kit_typo", textwrap.dedent("""\
        from okapi_kit import hookimpl

        @hookimpl
        def okapi_register_translator(register):  # misspelled: the hook ends in "translators"
            pass
        """))
    return root


def _fake_dist(root: Path, dist: str, version: str, ep_name: str, module: str, code: str) -> None:
    (root / f"{module}.py").write_text(code, encoding="utf-8")
    _write_dist_info(root, dist, version, f"[okapi_kit]\n{ep_name} = {module}\n")


def _write_dist_info(root: Path, dist: str, version: str, entry_points: str) -> None:
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n",
                                   encoding="utf-8")
    (info / "entry_points.txt").write_text(entry_points, encoding="utf-8")


def _env(*paths: Path, **switches: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OKAPI_KIT_PLUGINS", "OKAPI_KIT_BLOCK_PLUGINS", "PYTHONPATH")}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths)
    env.update(switches)
    return env


def _plugins_json(env: dict[str, str]) -> dict:
    proc = subprocess.run([OKAPI_KIT, "plugins", "--json"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def _components(data: dict) -> dict[tuple[str, str], str]:
    return {(c["kind"], c["name"]): c["plugin"] for c in data["components"]}


def test_listed_with_the_entry_point_name(site):
    data = _plugins_json(_env(site))
    comps = _components(data)
    for key in EXAMPLE_COMPONENTS:
        assert comps.get(key) == "example", (key, comps)
    info = {p["name"]: p for p in data["plugins"]}["example"]
    assert info == {"name": "example", "dist": "okapi-kit-example", "version": "0.1.0",
                    "module": "okapi_kit_example"}
    assert ("ranker", "reference_chrf") in comps  # first-party plugins load beside it
    assert data["failures"] == []
    summary = {c["name"]: c["summary"] for c in data["components"]}["reverse_words"]
    assert summary.startswith("Toy translator")


def test_block_and_allow_switches(site):
    blocked = _components(_plugins_json(_env(site, OKAPI_KIT_BLOCK_PLUGINS="example")))
    assert not EXAMPLE_COMPONENTS & blocked.keys()
    assert ("ranker", "reference_chrf") in blocked

    only = _plugins_json(_env(site, OKAPI_KIT_PLUGINS="example"))
    assert set(_components(only)) == EXAMPLE_COMPONENTS
    assert [p["name"] for p in only["plugins"]] == ["example"]

    both = _components(_plugins_json(_env(site, OKAPI_KIT_PLUGINS="example, sacrebleu")))
    assert set(both) == EXAMPLE_COMPONENTS | {("ranker", "reference_chrf")}

    none = _plugins_json(_env(site, OKAPI_KIT_PLUGINS=""))
    assert none["components"] == [] and none["plugins"] == []


CALL_COMPONENTS = """
import json, sys
from pathlib import Path
from okapi_kit import SampleSet
from okapi_kit.plugins import registry
from okapi_kit.registry import create_component

base = Path(sys.argv[1])
(base / "glossary.json").write_text(json.dumps({"cat": "mèo"}), encoding="utf-8")
reg = registry()
tr = create_component(reg, "translator", "reverse_words", {"glossary": "glossary.json"},
                      where="test: translation.translator", base_dir=base)
plain = create_component(reg, "translator", "reverse_words", {"tag": False, "skip_empty": True},
                         where="test: translation.translator")
rk = create_component(reg, "ranker", "length_ratio", {"unit": "words"}, where="test: ranking.ranker")
item = SampleSet(id="a", lang="vi", prompt="p", reference="one two three four",
                 responses=["one", "one two three", "w " * 12, "1 2 3 4"])
print(json.dumps({
    "translated": tr.translate(["the cat sat", "hello"], "en", "vi"),
    "plain": plain.translate(["a b c", "   "], "en", "hi"),
    "ranked": rk.rank([item]),
    "plugin": reg.get("ranker", "length_ratio").plugin,
}, ensure_ascii=False))
"""


def test_components_work_when_loaded_from_the_entry_point(site, tmp_path):
    proc = subprocess.run([sys.executable, "-c", CALL_COMPONENTS, str(tmp_path)], capture_output=True,
                          text=True, env=_env(site, OKAPI_KIT_PLUGINS="example"), timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert out["translated"] == ["[vi] sat mèo the", "[vi] hello"]
    assert out["plain"] == ["c b a", None]
    assert out["ranked"] == [[3, 1, 0, 2]]
    assert out["plugin"] == "example"


def test_a_bad_option_is_a_user_error_from_the_cli(site, tmp_path):
    """`okapi-kit validate` reaches the plugin's Config: an unknown option exits 2, no traceback."""
    cfg = (ROOT / "okapi_kit" / "demo" / "demo.yaml").read_text(encoding="utf-8")
    demo = tmp_path / "demo"
    shutil.copytree(ROOT / "okapi_kit" / "demo", demo)
    cfg = cfg.replace("  ranker: reference_chrf", "  ranker: {name: length_ratio, options: {units: words}}")
    (demo / "demo.yaml").write_text(cfg, encoding="utf-8")
    proc = subprocess.run([OKAPI_KIT, "validate", str(demo / "demo.yaml")], capture_output=True,
                          text=True, env=_env(site), timeout=60, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "ranking.ranker.options.units" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_broken_plugins_are_reported_and_the_rest_load(site, broken_site):
    data = _plugins_json(_env(site, broken_site))
    failures = {f["name"]: f for f in data["failures"]}
    assert set(failures) == {"broken_import", "typo"}
    assert failures["broken_import"]["dist"] == "okapi-kit-broken"
    assert failures["broken_import"]["version"] == "0.3.0"
    assert "ImportError" in failures["broken_import"]["error"]
    assert "not installed" in failures["broken_import"]["error"]
    assert failures["typo"]["dist"] == "okapi-kit-typo"
    assert failures["typo"]["version"] == "1.2.0"
    assert "okapi_register_translator" in failures["typo"]["error"]
    assert "typo" not in {p["name"] for p in data["plugins"]}
    comps = _components(data)
    assert EXAMPLE_COMPONENTS <= comps.keys()
    assert ("trainer", "sft") in comps

    # the human-readable listing names the broken plugin and its version too
    proc = subprocess.run([OKAPI_KIT, "plugins"], capture_output=True, text=True,
                          env=_env(site, broken_site), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "broken_import" in proc.stdout and "0.3.0" in proc.stdout


def test_the_example_plugins_own_tests_pass(site, tmp_path):
    """The test file shown in docs/writing-a-plugin.md runs green against the installed plugin."""
    tests = tmp_path / "tests"
    shutil.copytree(EXAMPLE / "tests", tests, ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), str(tests)],
                          capture_output=True, text=True, env=_env(site), timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 passed" in proc.stdout


def test_a_name_clash_names_both_plugins(site, tmp_path):
    _fake_dist(tmp_path, "okapi-kit-clash", "0.0.1", "clash", "okapi_kit_clash", textwrap.dedent('''\
        from okapi_kit import Translator, hookimpl

        class AlsoReverse(Translator):
            """Another translator that wants the name reverse_words."""
            name = "reverse_words"

        @hookimpl
        def okapi_register_translators(register):
            register(AlsoReverse)
        '''))
    env = _env(site, tmp_path)
    proc = subprocess.run([OKAPI_KIT, "plugins", "--json"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = " ".join(proc.stderr.split())
    assert "two plugins register a translator named 'reverse_words'" in err
    assert "'example'" in err and "'clash'" in err and "OKAPI_KIT_BLOCK_PLUGINS" in err
    assert "Traceback" not in proc.stderr
    # blocking either side resolves it
    fixed = _components(_plugins_json(_env(site, tmp_path, OKAPI_KIT_BLOCK_PLUGINS="clash")))
    assert fixed[("translator", "reverse_words")] == "example"


STAGE_RUN = """
import json, sys
from pathlib import Path
from okapi_kit.cli import main
from okapi_kit.config import load_config
from okapi_kit.graph import Records, UnitRun
from okapi_kit.plugins import registry
from okapi_kit.records import Ranking, read_jsonl
from okapi_kit.stages import build_plan
from okapi_kit.stages.reward_model import rankings_of

base = Path(sys.argv[1])
config, run_dir = base / "filter.yaml", base / "run"
rc = main(["run", str(config), "--run-dir", str(run_dir), "--quiet"])
# The same config with a reward model and DPO after the filter: planned, not run.
cfg, base_dir = load_config(config, ["models.sft=sft-model", "reward_model.trainer=reward",
                                     "alignment=[{method: dpo, trainer: dpo}]"])
plan = build_plan(cfg, base_dir=base_dir, run_dir=run_dir, registry=registry())
rankings = Records("rankings", "vi")
read = {u.key: [r.id for r in rankings_of(UnitRun(u, "0" * 64, plan), ["vi"])]
        for u in plan.units if u.stage in ("reward_model", "align")}
print(json.dumps({
    "rc": rc,
    "units": [u.key for u in plan.units],
    "ranked": [r.id for r in read_jsonl(plan.layout.records(rankings), Ranking)],  # rank's own file
    "filtered_path": str(plan.path(rankings)),
    "filtered": [r.id for r in read_jsonl(plan.path(rankings), Ranking)],
    "read": read,
}))
"""


def test_the_example_stage_runs_between_rank_and_reward_model(site, tmp_path):
    """`stages: [{name: drop_empty_best}]` filters the rankings that reward_model and align read."""
    samples = [  # reference_chrf ranks by chrF against the reference; ties keep the given order
        {"id": "a", "instruction": "Kể tên ba màu cơ bản.", "reference": "zzz",
         "responses": ["", "đỏ, vàng, xanh", "xanh"]},
        {"id": "b", "instruction": "Dịch sang tiếng Anh: Tôi thích cà phê.", "reference": "I like coffee.",
         "responses": ["", "I like coffee.", "I like"]},
        {"id": "c", "instruction": "Viết một câu.", "reference": "qqq", "responses": ["   ", "abc", "def"]},
    ]
    (tmp_path / "samples_vi.jsonl").write_text(
        "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples), encoding="utf-8")
    (tmp_path / "sft-model").mkdir()  # stands in for a trained SFT model: only planned against
    (tmp_path / "filter.yaml").write_text(textwrap.dedent("""\
        name: filter-demo
        languages: [vi]
        data: {samples: {vi: samples_vi.jsonl}}
        ranking: {ranker: reference_chrf}
        stages: [{name: drop_empty_best}]
        evaluation: {models: [], evaluators: []}
        """), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", STAGE_RUN, str(tmp_path)], capture_output=True,
                          text=True, env=_env(site), timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["rc"] == 0
    keys = out["units"]
    assert keys.index("rank/vi") < keys.index("drop_empty_best/vi") < keys.index("reward_model")
    assert out["ranked"] == ["a", "b", "c"]
    # only "b" has a non-empty best response ("I like coffee." matches its reference)
    assert out["filtered"] == ["b"]
    assert Path(out["filtered_path"]).is_relative_to(tmp_path / "run")  # the stage's own file
    assert out["read"] == {"reward_model": ["b"], "align/dpo": ["b"]}
