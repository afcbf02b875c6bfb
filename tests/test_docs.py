"""The documentation keeps up with the code.

- every hook in okapi_kit.hookspecs has a section in docs/hooks.md;
- every component base class, its method and the env switches are described there;
- every first-party component is mentioned in docs/plugins/*.md or docs/user-guide.md;
- every key of the pipeline config is in the user guide's config reference;
- the files shown in docs/writing-a-plugin.md are the files of docs/example_plugin;
- README.md gives the test command that .ci/run runs.
"""

from __future__ import annotations

import inspect
import re
import shlex
import typing
from pathlib import Path

import pytest

from okapi_kit import hookspecs
from okapi_kit.components import KINDS
from okapi_kit.config import ComponentChoice, PipelineConfig, Strict
from okapi_kit.plugins import ENV_ALLOW, ENV_BLOCK, build_plugin_manager
from okapi_kit.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HOOKS_MD = DOCS / "hooks.md"
USER_GUIDE = DOCS / "user-guide.md"
GUIDE = DOCS / "writing-a-plugin.md"
EXAMPLE = DOCS / "example_plugin"


def _read(path: Path) -> str:
    assert path.exists(), f"{path.relative_to(ROOT)} is missing"
    return path.read_text(encoding="utf-8")


def _hook_names() -> list[str]:
    marker = f"{hookspecs.PROJECT}_spec"  # the attribute pluggy's HookspecMarker sets
    return sorted(name for name, obj in vars(hookspecs).items()
                  if name.startswith("okapi_") and inspect.isfunction(obj) and hasattr(obj, marker))


def _sections(text: str) -> set[str]:
    return set(re.findall(r"^#{2,4} `([A-Za-z_][A-Za-z0-9_]*)`\s*$", text, flags=re.M))


def test_hookspecs_are_found():
    names = _hook_names()
    assert "okapi_register_translators" in names and "okapi_stage_finished" in names


@pytest.mark.parametrize("hook", _hook_names())
def test_every_hook_has_a_section(hook):
    assert hook in _sections(_read(HOOKS_MD)), (
        f"docs/hooks.md has no section for the hook {hook!r}; add a heading '## `{hook}`' "
        "saying what it is for, its arguments, when it is called, with an example")


def test_no_section_for_a_hook_that_does_not_exist():
    stale = {s for s in _sections(_read(HOOKS_MD)) if s.startswith("okapi_")} - set(_hook_names())
    assert not stale, f"docs/hooks.md documents hooks that hookspecs.py lacks: {sorted(stale)}"


def test_base_classes_and_env_switches_are_documented():
    text = _read(HOOKS_MD)
    for cls in KINDS.values():
        assert f"`{cls.__name__}`" in text, f"docs/hooks.md does not describe okapi_kit.{cls.__name__}"
        own = [n for n, v in vars(cls).items() if inspect.isfunction(v) and not n.startswith("_")]
        for method in own:
            assert f"`{method}(" in text, f"docs/hooks.md does not describe {cls.__name__}.{method}()"
    for var in (ENV_ALLOW, ENV_BLOCK):
        assert var in text, f"docs/hooks.md does not mention {var}"


def _first_party_components(monkeypatch) -> list[tuple[str, str, str]]:
    monkeypatch.delenv(ENV_ALLOW, raising=False)
    monkeypatch.delenv(ENV_BLOCK, raising=False)
    pm = build_plugin_manager()
    ours = {name for name, info in pm.infos.items() if info.dist == "okapi-kit"}
    broken = [f for f in pm.failures if f.dist == "okapi-kit"]
    assert not broken, f"first-party plugins failed to load: {broken}"
    assert ours, "no first-party plugin is installed (is okapi-kit installed?)"
    reg = Registry.from_plugins(pm)
    return [(e.kind, e.name, e.plugin) for e in reg.entries() if e.plugin in ours]


def test_every_first_party_component_is_documented(monkeypatch):
    texts = [p.read_text(encoding="utf-8") for p in sorted((DOCS / "plugins").glob("*.md"))]
    if USER_GUIDE.exists():
        texts.append(USER_GUIDE.read_text(encoding="utf-8"))
    docs = "\n".join(texts)
    missing = [f"{kind} {name!r} (plugin {plugin!r})"
               for kind, name, plugin in _first_party_components(monkeypatch)
               if f"`{name}`" not in docs]
    assert not missing, ("first-party components with no mention (as `name`) in docs/plugins/*.md "
                         f"or docs/user-guide.md: {', '.join(missing)}")


def _strict_model(annotation) -> tuple[type[Strict] | None, bool]:
    """The config model inside an annotation (through Optional / list), and whether it is a list."""
    if isinstance(annotation, type) and issubclass(annotation, Strict):
        return annotation, False
    origin = typing.get_origin(annotation)
    for arg in typing.get_args(annotation):
        model, is_list = _strict_model(arg)
        if model is not None:
            return model, is_list or origin is list
    return None, False


def _config_keys(model: type[Strict], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        key = prefix + name
        keys.append(key)
        sub, is_list = _strict_model(field.annotation)
        if sub is not None and sub is not ComponentChoice:
            keys += _config_keys(sub, key + ("[]." if is_list else "."))
    return keys


def test_every_config_key_is_in_the_user_guide():
    text = _read(USER_GUIDE)
    keys = _config_keys(PipelineConfig)
    assert "instructions.holdout" in keys and "alignment[].method" in keys
    missing = [k for k in keys if f"`{k}`" not in text]
    assert not missing, f"docs/user-guide.md's config reference lacks: {missing}"


FILE_BLOCK = re.compile(
    r"^File: `?(?P<path>docs/example_plugin/[^`\s]+)`?\s*\n\s*\n?```[^\n]*\n(?P<body>.*?)^```\s*$",
    flags=re.M | re.S)


def _example_files() -> set[str]:
    skip = {"__pycache__", "build"}
    return {p.relative_to(ROOT).as_posix() for p in EXAMPLE.rglob("*")
            if p.is_file() and not skip & set(p.parts) and ".egg-info" not in p.as_posix()
            and p.suffix not in (".pyc",)}


def test_guide_code_blocks_match_the_example_plugin():
    text = _read(GUIDE)
    shown = {}
    for m in FILE_BLOCK.finditer(text):
        shown[m["path"]] = m["body"]
    declared = re.findall(r"^File: `?(docs/example_plugin/[^`\s]+)", text, flags=re.M)
    assert len(declared) == len(shown), "a 'File:' line is not followed by a fenced code block"
    for path, body in shown.items():
        real = ROOT / path
        assert real.exists(), f"docs/writing-a-plugin.md shows {path}, which does not exist"
        assert body == real.read_text(encoding="utf-8"), (
            f"the code of {path} in docs/writing-a-plugin.md differs from the file; keep them in sync")
    unshown = _example_files() - set(shown)
    assert not unshown, f"docs/writing-a-plugin.md does not show these example files: {sorted(unshown)}"


def _pytest_commands(lines: list[str]) -> list[str]:
    """The pytest invocations in shell lines, normalised (chains split, "$@" and prompts dropped)."""
    out = []
    for line in lines:
        line = line.strip().rstrip("\\").strip()
        if not line or line.startswith("#"):
            continue
        for part in re.split(r"&&|\|\||;", line):
            part = re.sub(r"^(\$ |exec )", "", part.strip())
            if not re.search(r"\bpytest\b", part):
                continue
            try:
                words = shlex.split(part, comments=True)
            except ValueError:
                words = part.split()
            out.append(" ".join(w for w in words if w not in ("$@", "${@}")))
    return out


def test_readme_test_command_is_the_ci_one():
    readme, ci = ROOT / "README.md", ROOT / ".ci" / "run"
    if not readme.exists() or not ci.exists():
        pytest.skip("README.md or .ci/run does not exist yet")
    ci_cmds = _pytest_commands(ci.read_text(encoding="utf-8").splitlines())
    if not ci_cmds:
        pytest.skip(".ci/run runs no pytest command")
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", readme.read_text(encoding="utf-8"), flags=re.M | re.S)
    readme_cmds = _pytest_commands("\n".join(blocks).splitlines())
    assert set(ci_cmds) & set(readme_cmds), (
        f".ci/run runs {ci_cmds}, but README.md's code blocks give {readme_cmds or 'no pytest command'}")
