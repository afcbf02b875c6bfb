"""Typed artifacts that flow between stages, and the one place that builds run-folder paths.

An artifact is what a stage consumes or produces: records of a kind in one language,
a model by label and scope, or the scores of one evaluator for one model and language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import OkapiError

# Labels the pipeline gives its own models and folders; a user-given name may not take them.
RESERVED = frozenset({"base", "sft", "rm", "reward_model", "records", "models", "work", "partial",
                      "eval", "manifest", "supplied"})
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_name(value: str, where: str, *, reserved: frozenset[str] = RESERVED) -> str:
    """A user-given name that becomes part of a path: letters, digits, ``._-``; no ``..``."""
    if not isinstance(value, str) or not _SAFE.match(value) or ".." in value:
        raise OkapiError(f"{value!r} cannot be used as a name: it becomes part of a file path",
                         where=where, hint="use letters, digits, '.', '_' and '-' only "
                         "(at most 64, starting with a letter or digit)")
    if value.lower() in reserved:
        raise OkapiError(f"{value!r} is a name okapi-kit uses itself", where=where,
                         hint=f"choose another; reserved: {', '.join(sorted(reserved))}")
    return value


@dataclass(frozen=True)
class Records:
    """Records of one kind (instructions, heldout, translations, samples, rankings, prompts,
    eval_prompts, generations) for one language; ``variant`` tells several sets apart
    (e.g. the generations of one model)."""

    kind: str
    lang: str
    variant: str = ""

    def __str__(self) -> str:
        return f"{self.kind}[{self.variant + '/' if self.variant else ''}{self.lang}]"


@dataclass(frozen=True)
class Model:
    """A model by label (base, sft, rm, dpo ...) and scope (a language, or None: multilingual)."""

    label: str
    scope: str | None = None

    def __str__(self) -> str:
        return f"model {self.label}" + (f" ({self.scope})" if self.scope else "")


@dataclass(frozen=True)
class Scores:
    """The scores of one evaluator for one model in one language."""

    evaluator: str
    model: str
    lang: str

    def __str__(self) -> str:
        return f"scores {self.evaluator}/{self.model}/{self.lang}"


Artifact = Records | Model | Scores

MANIFEST = "manifest.json"
LOCK = ".okapi-kit.lock"


class RunLayout:
    """Every path inside a run folder. Nothing else in okapi-kit joins run-folder paths."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)

    @property
    def manifest(self) -> Path:
        return self.run_dir / MANIFEST

    @property
    def lock(self) -> Path:
        return self.run_dir / LOCK

    def records(self, art: Records, producer: str = "") -> Path:
        """``records/<kind>/<lang>.jsonl``; a plugin stage's replacement lives under its own name."""
        parts = ["records", *([producer] if producer else []), art.kind, *([art.variant] if art.variant else [])]
        return self.run_dir.joinpath(*parts, f"{art.lang}.jsonl")

    def model(self, art: Model) -> Path:
        name = art.label if art.scope is None else f"{art.label}-{art.scope}"
        return self.run_dir / "models" / name

    def scores(self, art: Scores) -> Path:
        return self.run_dir / "records" / "eval" / art.evaluator / art.model / f"{art.lang}.json"

    def path(self, art: Artifact, producer: str = "") -> Path:
        if isinstance(art, Records):
            return self.records(art, producer)
        if isinstance(art, Model):
            return self.model(art)
        return self.scores(art)

    def failures(self, key: str) -> Path:
        """What a unit could not do in its last run, one JSON line per item with the reason."""
        return self.run_dir / "failures" / f"{self.slug(key)}.jsonl"

    @staticmethod
    def slug(key: str) -> str:
        return key.replace("/", "-")

    def work(self, key: str, fingerprint: str) -> Path:
        """A unit's scratch folder (trainer checkpoints, evaluator logs), named by its fingerprint."""
        return self.run_dir / "work" / f"{self.slug(key)}-{fingerprint[:12]}"

    def partial(self, key: str, fingerprint: str) -> Path:
        """A unit's resumable chunk file, named by its fingerprint."""
        return self.run_dir / "partial" / f"{self.slug(key)}-{fingerprint[:12]}.jsonl"

    def superseded(self, key: str, fingerprint: str) -> list[Path]:
        """Work folders and chunk files of ``key`` for any fingerprint, the given one included."""
        slug = self.slug(key)
        pattern = re.compile(re.escape(slug) + r"-[0-9a-f]{12}(\.jsonl)?$")
        found = []
        for folder in (self.run_dir / "work", self.run_dir / "partial"):
            if folder.is_dir():
                found += [p for p in folder.iterdir() if pattern.match(p.name)]
        return found
