"""The ``tasks`` option resolved: what each entry names, in which language, with how many shots.

An entry is an Okapi short name (``arc``, ``hellaswag``, ``mmlu``: run in every language of
the evaluation), an lm-eval okapi task (``arc_vi``), or any other lm-eval task, group or
tag by name (``global_mmlu_full_vi``, ``xcopa_vi``, ``belebele_vie_Latn``). A tag stands
for its tasks, one spec each. A task or group outside the okapi family runs in one
language: the one its name spells (``task_language.py``) or the one ``task_languages``
gives it.
"""

from __future__ import annotations

from dataclasses import dataclass

from okapi_kit import OkapiError
from okapi_kit.languages import get_language

from .catalog import close_matches, closure, lookup, surely_unknown
from .task_language import find_languages
from .tasks import FAMILIES, TASKS, family_languages, split_okapi_name

PROTOCOLS = ("okapi", "lm-eval")


@dataclass(frozen=True)
class TaskSpec:
    """One thing to score: an okapi family task (in the unit's language) or a named lm-eval task/group."""

    entry: str  # as written in `tasks`
    label: str  # Score.task: arc, mmlu, global_mmlu_full, xcopa ...
    okapi: str | None = None  # arc / hellaswag / mmlu for the okapi family
    name: str | None = None  # lm-eval's name; None for a short name (depends on the language)
    language: str | None = None  # None: every language
    kind: str = "task"  # task or group
    stock_shots: int = 0  # what the stock YAML sets (0 when it sets nothing)

    def lm_name(self, lang: str) -> str:
        if self.name is not None:
            return self.name
        return FAMILIES[self.okapi].lm_name.format(lang=lang)

    def runs_in(self, lang: str) -> bool:
        return self.language is None or self.language == lang


def check_name(name: str) -> str:
    """``name`` if lm-eval (or okapi-kit's short names) know it; else a ValueError with close names."""
    name = name.strip()
    if not name:
        raise ValueError("a task name is empty")
    if name in TASKS or split_okapi_name(name):
        return name
    if surely_unknown(name) or lookup(name) is None:
        close = close_matches(name, TASKS)
        hint = ("; did you mean " + " or ".join(repr(c) for c in close) + "?") if close else \
            "; see `lm_eval ls tasks` for every name"
        raise ValueError(f"lm-eval has no task, group or tag named {name!r}{hint}")
    return name


def _stock_shots(cfg: dict) -> int:
    shots = cfg.get("num_fewshot")
    return shots if isinstance(shots, int) else 0


def resolve(tasks: list[str], task_languages: dict[str, str]) -> list[TaskSpec]:
    """Every entry as specs; one ValueError listing every entry whose language is unknown."""
    specs: list[TaskSpec] = []
    problems: list[str] = []
    for entry in tasks:
        if entry in TASKS:
            specs.append(TaskSpec(entry, label=entry, okapi=entry))
            continue
        if okapi := split_okapi_name(entry):
            task, lang = okapi
            specs.append(TaskSpec(entry, label=task, okapi=task, name=entry,
                                  language=task_languages.get(entry, lang)))
            continue
        known = lookup(entry)
        members = [lookup(m) for m in known.tags] if known.kind == "tag" else [known]
        for member in members:
            if member is None:
                continue
            if okapi := split_okapi_name(member.name):  # a tag of the okapi family (arc_multilingual)
                specs.append(TaskSpec(entry, label=okapi[0], okapi=okapi[0], name=member.name,
                                      language=task_languages.get(member.name, okapi[1])))
                continue
            found = find_languages(member.name)
            lang = task_languages.get(entry) or task_languages.get(member.name) or found.language
            if lang is None:
                spelled = (f"its name spells {', '.join(found.languages)}" if found.languages
                           else "its name spells none of okapi-kit's languages")
                problems.append(f"cannot tell which language lm-eval's {member.kind} {member.name!r} is in "
                                f"({spelled}): give it in task_languages, e.g. task_languages: "
                                f"{{{member.name}: en}}, or name a one-language task instead")
                continue
            leaves, _ = closure(member.name)
            stock = _stock_shots(leaves[0].cfg) if leaves else 0
            label = found.stem if found.language == lang else member.name
            specs.append(TaskSpec(entry, label=label, name=member.name, language=lang,
                                  kind="group" if member.kind == "group" else "task", stock_shots=stock))
    if problems:
        raise ValueError("; ".join(problems))
    return specs


def check_task_languages(mapping: dict[str, str], tasks: list[str]) -> dict[str, str]:
    """Keys must be entries of ``tasks``; values okapi-kit language codes."""
    problems = []
    for name, code in mapping.items():
        if name not in tasks:
            problems.append(f"task_languages names {name!r}, which is not in tasks")
        try:
            get_language(code)
        except OkapiError as exc:
            problems.append(f"task_languages.{name}: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
    if problems:
        raise ValueError("; ".join(problems))
    return mapping


def shots_for(spec: TaskSpec, protocol: str, num_fewshot: dict[str, int] | None) -> tuple[int | None, str]:
    """(few-shot count to set, or None for the stock one; the protocol name to record).

    ``okapi``: ARC 25, HellaSwag 0, MMLU 25 (Okapi's evaluation), other tasks as stock.
    ``lm-eval``: every task as its stock YAML says (the okapi family: 0). A ``num_fewshot``
    that departs from the protocol makes it ``custom``.
    """
    expected = FAMILIES[spec.okapi].okapi_shots if (protocol == "okapi" and spec.okapi) else None
    default = expected if expected is not None else spec.stock_shots
    chosen = None
    if num_fewshot:
        chosen = num_fewshot.get(spec.entry, num_fewshot.get("*"))
    if chosen is None:
        return expected, protocol
    return chosen, protocol if chosen == default else "custom"


def okapi_languages_hint(task: str) -> str:
    return f"lm-eval's okapi {task} covers {', '.join(family_languages(task))}"
