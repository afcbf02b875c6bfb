"""The records that flow between stages, and JSONL input/output.

Files are written atomically: to a temporary name first, then renamed, so that a
killed run never leaves a half-written file under a final name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from itertools import combinations
from pathlib import Path
from typing import Any, TypeVar

from .errors import OkapiError

T = TypeVar("T", bound="Record")


@dataclass
class Record:
    """Base of every record type: dict round-trip with field checks."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls: type[T], data: Any, *, where: str = "") -> T:
        if not isinstance(data, dict):
            raise OkapiError(f"expected a JSON object, got {type(data).__name__}", where=where)
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise OkapiError(
                f"unknown field {unknown[0]!r} in a {cls.__name__} record",
                where=where,
                hint=f"fields are: {', '.join(known)}",
            )
        missing = [
            n for n, f in known.items()
            if n not in data and f.default is f.default_factory  # both MISSING: required
        ]
        if missing:
            raise OkapiError(f"missing field {missing[0]!r} in a {cls.__name__} record", where=where)
        return cls(**data)


@dataclass
class Instruction(Record):
    """An instruction with optional input and reference output, in one language."""

    id: str
    instruction: str
    input: str = ""
    output: str = ""
    lang: str = "en"
    source_id: str | None = None  # the English record it was translated from


@dataclass
class SampleSet(Record):
    """K responses sampled for one prompt."""

    id: str
    lang: str
    prompt: str
    responses: list[str]
    reference: str | None = None
    model: str = ""


@dataclass
class Ranking(Record):
    """K responses for one prompt, ranked: ``order`` lists response indices best first."""

    id: str
    lang: str
    prompt: str
    responses: list[str]
    order: list[int]
    ranker: str = ""
    scores: list[float] | None = None

    def ranked(self) -> list[str]:
        return [self.responses[i] for i in self.order]

    def pairs(self) -> list[PreferencePair]:
        """All C(K,2) pairs: a ranking A > B > C gives A>B, A>C, B>C."""
        best_first = self.ranked()
        return [
            PreferencePair(id=f"{self.id}:{i}>{j}", lang=self.lang, prompt=self.prompt,
                           chosen=best_first[i], rejected=best_first[j])
            for i, j in combinations(range(len(best_first)), 2)
        ]


@dataclass
class PreferencePair(Record):
    id: str
    lang: str
    prompt: str
    chosen: str
    rejected: str


@dataclass
class RunInfo:
    """What observers learn about a run (see the stage observer hooks)."""

    run_dir: Path
    config_name: str
    languages: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- file IO


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # a failed write (disk full, unencodable text) leaves no temp file behind
        tmp.unlink(missing_ok=True)
        raise


def write_jsonl(path: Path, rows: Iterable[Record | dict[str, Any]]) -> int:
    """Write rows atomically; returns how many were written."""
    lines = [json.dumps(r.to_dict() if isinstance(r, Record) else r, ensure_ascii=False) for r in rows]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-empty line; a bad line is an OkapiError at file:line."""
    path = Path(path)
    if not path.exists():
        raise OkapiError(f"file not found: {path}")
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                raise OkapiError(f"invalid JSON ({exc.msg}, column {exc.colno})",
                                 where=f"{path}:{lineno}") from None


def read_jsonl(path: Path, cls: type[T]) -> list[T]:
    return [cls.from_dict(obj, where=f"{path}:{n}") for n, obj in iter_jsonl(path)]


class JsonlAppender:
    """Appends records one at a time, for stages that resume mid-way (API calls, sampling).

    A torn last line (the process died mid-write) is dropped on open.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.done: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            good = []
            with open(self.path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError:
                        break
                    if not line.endswith("\n") or not isinstance(obj, dict):
                        break
                    good.append(line)
                    self.done[str(obj.get("id"))] = obj
            atomic_write_text(self.path, "".join(good))
        self._fh = open(self.path, "a", encoding="utf-8")

    def append(self, row: Record | dict[str, Any]) -> None:
        obj = row.to_dict() if isinstance(row, Record) else row
        self._fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self._fh.flush()
        self.done[str(obj.get("id"))] = obj

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
