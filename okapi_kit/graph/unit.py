"""A unit of work: what it reads, what it consumes and produces, and how it runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import OkapiError
from .artifacts import Artifact

if TYPE_CHECKING:
    from .planner import Plan, Source


@dataclass
class Unit:
    """One unit of the stage graph (``translate/vi``, ``sft``, ``evaluate/lm_eval/dpo/hi``).

    Its fingerprint covers exactly: the stage name and ``version``, the config fields in
    ``reads``, the content of ``files``, the identity of each model in ``models`` and of
    each consumed artifact (the fingerprint of the unit that produced it, or the content
    of the file or model the user supplied).
    """

    key: str
    stage: str
    version: int
    reads: dict[str, Any]
    consumes: list[Artifact]
    produces: list[Artifact]
    run: Callable[[UnitRun], dict[str, Any] | None]
    files: list[Path] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    # Runs on every process of a multi-process launch (it trains); see graph/processes.py.
    distributed: bool = False


@dataclass
class UnitRun:
    """What a unit's run function gets: its fingerprint and the plan to resolve paths with."""

    unit: Unit
    fingerprint: str
    plan: Plan

    def _source(self, art: Artifact) -> Source:
        """This unit's own output if it produces ``art``, else the input it was planned with."""
        key = self.unit.key
        return self.plan.outputs[key].get(art) or self.plan.inputs[key][art]

    def path(self, art: Artifact) -> Path:
        """Where a produced (else a consumed) artifact of this unit lives."""
        src = self._source(art)
        if src.path is None:
            raise OkapiError(f"{art} is a hub model, not a local path")
        return src.path

    def input_path(self, art: Artifact) -> Path:
        """Where a consumed artifact lives, also when this unit produces its replacement."""
        return self.plan.inputs[self.unit.key][art].path

    def model(self, art: Artifact) -> str:
        """A model artifact as ``from_pretrained`` takes it: a local folder or a hub id."""
        return self._source(art).ref

    @property
    def work_dir(self) -> Path:
        return self.plan.layout.work(self.unit.key, self.fingerprint)

    @property
    def partial(self) -> Path:
        return self.plan.layout.partial(self.unit.key, self.fingerprint)
