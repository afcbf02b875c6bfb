"""The planner: from a config to a graph of units, by matching what stages consume with
what earlier stages produce or what the config supplies. Nothing is run or written here,
so every problem it finds is reported before a run touches its folder."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..components import Component
from ..config import ComponentChoice, PipelineConfig
from ..errors import OkapiError, raise_all
from ..registry import Registry, create_component
from .artifacts import Artifact, Model, RunLayout
from .fingerprint import ContentHasher, hub_identity
from .unit import Unit

# The producer of an artifact whose stage could not be planned (a problem was reported).
NOT_PLANNED = "<not planned>"


@dataclass
class Source:
    """Where an artifact comes from: a unit of this plan, or something the user supplied."""

    path: Path | None  # None for a hub model
    producer: str | None = None  # the unit key; None when supplied
    ref: str = ""  # for models: what from_pretrained takes
    identity: str = ""  # for supplied things: a hub identity; files are hashed when fingerprinting
    where: str = ""  # the config key that supplied it


def is_built_spec(spec: str) -> bool:
    """``scheme:...`` model names (``tiny:llama``) are built by an ``okapi_build_model`` plugin."""
    return bool(re.match(r"^[a-z][a-z0-9_+-]*:", spec)) and not Path(spec).exists()


def looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or name.endswith((".json", ".jsonl", ".parquet")) \
        or name.count("/") > 1


class Plan:
    """The units of a run in order, with every artifact's source and every component."""

    def __init__(self, cfg: PipelineConfig, *, base_dir: Path, run_dir: Path, registry: Registry,
                 source: str = "config"):
        self.cfg = cfg
        self.base_dir = Path(base_dir)
        self.layout = RunLayout(run_dir)
        self.registry = registry
        self.source_name = source
        self.units: list[Unit] = []
        self.sources: dict[Artifact, Source] = {}
        # per unit: the sources of what it consumes and produces, fixed when the unit is added
        # (a plugin stage planned later may replace an artifact for the units after it)
        self.inputs: dict[str, dict[Artifact, Source]] = {}
        self.outputs: dict[str, dict[Artifact, Source]] = {}
        self.problems: list[OkapiError] = []
        self._components: dict[str, Component] = {}
        self._failed: set[str] = set()
        self._needed: dict[Artifact, list[str]] = {}  # missing artifact -> the units that need it
        self.hasher = ContentHasher()

    # ------------------------------------------------------------ building

    def problem(self, message: str, *, where: str | None = None, hint: str | None = None) -> None:
        self.problems.append(OkapiError(message, where=f"{self.source_name}: {where}" if where else
                                        self.source_name, hint=hint))

    def component(self, kind: str, choice: ComponentChoice, where: str) -> Component | None:
        """The component a config key names, with its options validated (None if they are bad)."""
        if where in self._failed:
            return None
        if where not in self._components:
            try:
                self._components[where] = create_component(
                    self.registry, kind, choice.name, choice.options,
                    where=f"{self.source_name}: {where}", base_dir=self.base_dir)
            except OkapiError as exc:
                self._failed.add(where)
                problems = getattr(exc, "problems", [exc])
                self.problems.extend(problems)
                return None
        return self._components[where]

    def resolve_path(self, value: str) -> Path:
        """A path from the config: ``~`` expanded, relative to the config's folder."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def not_planned(self, *arts: Artifact) -> None:
        """What a stage would have produced had its part of the config no problem: later
        stages plan on as if it existed, so that one mistake is reported once, not once more
        by every stage after it. A plan with such artifacts always has problems: it never runs."""
        for art in arts:
            self.sources.setdefault(art, Source(None, producer=NOT_PLANNED))

    def supply_model(self, art: Model, spec: str, where: str) -> None:
        """A model the user has: a local folder (relative to the config) or a hub id."""
        local = self.resolve_path(spec)
        if local.exists():
            if not local.is_dir():
                self.problem(f"model path {spec!r} is a file, not a model folder", where=where)
                self.not_planned(art)
                return
            self.sources[art] = Source(local, ref=str(local), where=where)
        elif looks_like_path(spec) or is_built_spec(spec) or _in_local_folder(spec, local, self.base_dir):
            self.problem(f"model path does not exist: {spec}", where=where,
                         hint=f"relative paths are taken from {self.base_dir}; give a local folder or a hub id")
            self.not_planned(art)
        else:
            self.sources[art] = Source(None, ref=spec, identity=hub_identity(spec), where=where)

    def supply_file(self, art: Artifact, path: Path, where: str) -> None:
        self.sources[art] = Source(path, where=where)

    def add(self, unit: Unit) -> Unit | None:
        """Add a unit whose consumed artifacts are all available; a missing one is reported
        by :meth:`check`, once for all the units that need it."""
        missing = [art for art in unit.consumes if art not in self.sources]
        if missing:
            for art in missing:
                self._needed.setdefault(art, []).append(unit.key)
            self.not_planned(*unit.produces)
            return None
        self.inputs[unit.key] = {art: self.sources[art] for art in unit.consumes}
        self.outputs[unit.key] = {}
        for art in unit.produces:
            path = self.layout.path(art, _producer_prefix(unit))
            self.sources[art] = self.outputs[unit.key][art] = Source(path, producer=unit.key, ref=str(path))
        self.units.append(unit)
        return unit

    def has(self, art: Artifact) -> bool:
        return art in self.sources

    def check(self) -> Plan:
        problems = list(self.problems)
        # one problem per missing family (the translations in every language, model sft in
        # every scope), naming the units that need it
        families: dict[tuple[Any, ...], tuple[list[Artifact], list[str]]] = {}
        for art, users in self._needed.items():
            arts, needers = families.setdefault(_family(art), ([], []))
            arts.append(art)
            needers += [u for u in users if u not in needers]
        for arts, users in families.values():
            shown = ", ".join(users[:3]) + (f" and {len(users) - 3} more" if len(users) > 3 else "")
            problems.append(OkapiError(
                f"{shown} need{'s' if len(users) == 1 else ''} {', '.join(map(str, arts))}, which no stage "
                "produces and the config does not supply", where=self.source_name, hint=_supply_hint(arts)))
        raise_all(problems)
        if any(s.producer == NOT_PLANNED for s in self.sources.values()):  # pragma: no cover - a bug
            raise AssertionError("a stage left an artifact unplanned without reporting a problem")
        return self

    # ------------------------------------------------------------ resolving at run time

    def path(self, art: Artifact) -> Path:
        src = self.sources[art]
        if src.path is None:
            raise OkapiError(f"{art} is a hub model, not a local path")
        return src.path

    def model_ref(self, art: Artifact) -> str:
        return self.sources[art].ref

    def produced_by(self, art: Artifact) -> str | None:
        src = self.sources.get(art)
        return src.producer if src else None

    def get_component(self, where: str) -> Any:
        return self._components[where]

    def scope(self, lang: str) -> str | None:
        return lang if self.cfg.model_scope == "per_language" else None

    def scopes(self) -> list[str | None]:
        return list(self.cfg.languages) if self.cfg.model_scope == "per_language" else [None]

    def langs_of(self, scope: str | None) -> list[str]:
        return [scope] if scope else list(self.cfg.languages)


def _in_local_folder(spec: str, local: Path, base_dir: Path) -> bool:
    """``models/sft`` names a folder inside ``models/`` when that folder exists: a path, not a hub id."""
    return not Path(spec).expanduser().is_absolute() and local.parent != base_dir and local.parent.is_dir()


def _producer_prefix(unit: Unit) -> str:
    """Core stages write to the standard places; a plugin stage's outputs go under its name."""
    from ..stages import CORE_STAGES

    return "" if unit.stage in CORE_STAGES else unit.stage


def _family(art: Artifact) -> tuple[Any, ...]:
    from .artifacts import Records

    if isinstance(art, Records):
        return ("records", art.kind, art.variant)
    if isinstance(art, Model):
        return ("model", art.label)
    return ("scores", str(art))


def _supply_hint(arts: list[Artifact]) -> str:
    from .artifacts import Records, Scores

    art = arts[0]
    if isinstance(art, Records):
        key = {"translations": "data.translations", "eval_prompts": "data.eval_prompts",
               "samples": "data.samples", "rankings": "data.rankings", "prompts": "data.prompts"}.get(art.kind)
        if key and len(arts) > 1:
            langs = ", ".join(a.lang for a in arts if isinstance(a, Records))
            return f"add the stage that makes them, or give your own files under {key}.<lang> ({langs})"
        if key:
            return f"add the stage that makes it, or give your own file under {key}.{art.lang}"
        return "add the stage that makes it"
    if isinstance(art, Model):
        if art.label == "base":
            return "set base_model"
        return f"add its training stage, or give a model under models.{art.label}"
    assert isinstance(art, Scores)
    return "add the evaluator"
