"""lm-eval's own index of its tasks, groups and tags: which names exist and where their YAMLs are.

Building the index parses every task YAML shipped with lm-eval (about 14,000; 20 to 60 s
on a small machine), so it is built at most once per process, and only when a config
names a task outside the okapi family (those are found in ``tasks.py`` without lm-eval).
Nothing is run: ``TaskManager`` only reads the YAMLs.

A name that appears in no file of lm-eval's task folders cannot be in the index (lm-eval
names every task, group and tag in a YAML or a template it includes), so a typo is
reported after a plain text scan (about 3 s)
instead of the full index build; its close matches then come from the names the YAMLs
declare (``task:``, ``group:``, ``tag:``).
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from okapi_kit import OkapiError


@functools.cache
def task_index() -> dict[str, Any]:
    """lm-eval's index: name -> ``Entry`` (``kind``, ``yaml_path``, ``cfg``, ``tags``)."""
    try:
        from lm_eval.tasks import TaskManager
    except ImportError as exc:
        raise OkapiError(f"lm-eval cannot be imported: {exc}", where="lm_eval",
                         hint="pip install 'lm_eval[hf]>=0.4.9'") from None
    return TaskManager().task_index


_WORD = re.compile(r"[A-Za-z0-9_.\-]+")
_DECLARED = re.compile(r"^\s*(?:-\s*)?(?:task|group|tag):\s*[\"']?([A-Za-z0-9_.\-]+)", re.M)


@functools.cache
def _yaml_words() -> tuple[frozenset[str], tuple[str, ...]]:
    """(every word in lm-eval's task YAMLs, the names they declare), from a text scan."""
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        return frozenset(), ()
    words: set[str] = set()
    declared: set[str] = set()
    for path in (Path(list(spec.submodule_search_locations)[0]) / "tasks").rglob("*"):
        # every file a YAML may include (templates such as `_arc_yaml` have no .yaml suffix)
        if path.suffix in (".py", ".pyc") or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        words.update(_WORD.findall(text))
        declared.update(_DECLARED.findall(text))
    return frozenset(words), tuple(sorted(declared))


def surely_unknown(name: str) -> bool:
    """True when ``name`` is written in no lm-eval task YAML, so lm-eval cannot know it."""
    words, _ = _yaml_words()
    return bool(words) and name not in words


def close_matches(name: str, extra: tuple[str, ...] = (), n: int = 3) -> list[str]:
    """The declared names closest to ``name`` (plus ``extra``)."""
    return difflib.get_close_matches(name, list(dict.fromkeys([*extra, *_yaml_words()[1]])), n=n, cutoff=0.6)


@dataclass(frozen=True)
class Known:
    """A name lm-eval knows: a task, a group (scored as one, with its own aggregate) or a tag."""

    name: str
    kind: str  # task, group, tag
    yaml_path: Path | None
    cfg: dict[str, Any]
    tags: tuple[str, ...]  # for a tag: the tasks it names


def lookup(name: str) -> Known | None:
    entry = task_index().get(name)
    if entry is None:
        return None
    kind = entry.kind.name.lower().removeprefix("py_")
    return Known(name, kind, Path(entry.yaml_path) if entry.yaml_path else None, dict(entry.cfg or {}),
                 tuple(sorted(entry.tags)) if kind == "tag" else ())


def _member_names(known: Known) -> list[str]:
    """The names a group lists or a tag stands for (inline definitions are walked through)."""
    if known.kind == "tag":
        return list(known.tags)
    out: list[str] = []

    def walk(items: Any) -> None:
        for item in items if isinstance(items, list) else [items]:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict) and "task" in item and not isinstance(item["task"], list):
                out.append(item["task"])
            elif isinstance(item, dict) and "group" in item:
                if item["group"] in task_index():
                    out.append(item["group"])
                else:  # an inline subgroup: its members are what counts
                    walk(item.get("task", []))

    walk(known.cfg.get("task", []) if known.kind == "group" else [])
    return out


def closure(name: str) -> tuple[list[Known], set[Path]]:
    """The leaf tasks under ``name`` and every folder holding a YAML it needs."""
    leaves: dict[str, Known] = {}
    folders: set[Path] = set()
    seen: set[str] = set()

    def visit(n: str) -> None:
        if n in seen:
            return
        seen.add(n)
        known = lookup(n)
        if known is None:  # an inline task of a group: defined in the group's YAML
            return
        if known.yaml_path is not None:
            folders.add(known.yaml_path.parent)
        if known.kind == "task":
            leaves[n] = known
        else:
            for member in _member_names(known):
                visit(member)

    visit(name)
    return list(leaves.values()), folders
