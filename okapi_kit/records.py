"""The records that flow between stages, and JSONL input/output.

Files are written atomically: to a temporary name first, then renamed, so that a
killed run never leaves a half-written file under a final name.
"""

from __future__ import annotations

import codecs
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
    """K responses for one prompt, ranked: ``order`` lists response indices best first.

    ``instruction``/``input`` keep the raw text the prompt was made from, when known (Okapi's
    files), so that a stage can apply another prompt template; None when only a prompt is known.
    """

    id: str
    lang: str
    prompt: str
    responses: list[str]
    order: list[int]
    ranker: str = ""
    scores: list[float] | None = None
    details: dict[str, Any] | None = None  # what the ranker recorded (e.g. a judge's permutation)
    instruction: str | None = None
    input: str | None = None

    def ranked(self) -> list[str]:
        return [self.responses[i] for i in self.order]

    def pairs(self) -> list[PreferencePair]:
        """All C(K,2) pairs: a ranking A > B > C gives A>B, A>C, B>C."""
        best_first = self.ranked()
        return [
            PreferencePair(id=f"{self.id}:{i}>{j}", lang=self.lang, prompt=self.prompt,
                           chosen=best_first[i], rejected=best_first[j],
                           instruction=self.instruction, input=self.input)
            for i, j in combinations(range(len(best_first)), 2)
        ]


@dataclass
class PreferencePair(Record):
    """One preferred and one rejected response; ``instruction``/``input`` as in Ranking."""

    id: str
    lang: str
    prompt: str
    chosen: str
    rejected: str
    instruction: str | None = None
    input: str | None = None


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


def _open_error(path: Path, exc: OSError) -> OkapiError:
    """An OkapiError for a file that exists but cannot be opened (a folder, no permission)."""
    reason = "it is a folder" if isinstance(exc, IsADirectoryError) else (exc.strerror or str(exc))
    return OkapiError(f"cannot open {path.name}: {reason}", where=str(path))


def _decode_line(raw: bytes, path: Path, lineno: int) -> str:
    """One line of a JSONL file as text; a byte that is not UTF-8 is an error at file:line."""
    if lineno == 1 and raw.startswith(codecs.BOM_UTF8):  # editors on Windows write one
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OkapiError(f"{path.name} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at byte "
                         f"{exc.start + 1} of the line)", where=f"{path}:{lineno}",
                         hint="save the file as UTF-8") from None


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-empty line; a bad line is an OkapiError at file:line."""
    path = Path(path)
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise OkapiError(f"file not found: {path}") from None
    except OSError as exc:
        raise _open_error(path, exc) from None
    with fh:
        for lineno, raw in enumerate(fh, 1):
            line = _decode_line(raw, path, lineno)
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

    On open, the finished records are loaded into ``done`` (by id). A torn last line (the
    process died mid-write: no trailing newline, perhaps cut inside a multi-byte character)
    is dropped, so that its work is redone. A complete line in the middle that is not a JSON
    object is an error naming file:line: the lines after it are finished work, never dropped.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.done: dict[str, dict[str, Any]] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            data = self.path.read_bytes() if self.path.exists() else b""
        except OSError as exc:
            raise _open_error(self.path, exc) from None
        # bytes, not text: a cut multi-byte character must not fail the decoding of the file
        complete = data[: data.rfind(b"\n") + 1]
        for lineno, raw in enumerate(complete.split(b"\n")[:-1], 1):  # numbered as iter_jsonl does
            self._load_line(raw, lineno)
        try:
            if len(complete) < len(data):  # drop the torn tail in place; the rest is untouched
                with open(self.path, "r+b") as fh:
                    fh.truncate(len(complete))
            self._fh = open(self.path, "ab")
        except OSError as exc:
            raise _open_error(self.path, exc) from None

    def _load_line(self, raw: bytes, lineno: int) -> None:
        where = f"{self.path}:{lineno}"
        hint = ("the lines after it are finished work: fix or delete this line, "
                "or delete the file to redo all of it")
        line = _decode_line(raw, self.path, lineno)
        if not line.strip():
            return
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise OkapiError(f"corrupt line in a partial file (invalid JSON: {exc.msg})",
                             where=where, hint=hint) from None
        if not isinstance(obj, dict):
            raise OkapiError(f"corrupt line in a partial file (a JSON {type(obj).__name__}, "
                             "not an object)", where=where, hint=hint)
        self.done[str(obj.get("id"))] = obj

    def append(self, row: Record | dict[str, Any]) -> None:
        obj = row.to_dict() if isinstance(row, Record) else row
        # encoded before writing, so a row that cannot be encoded writes nothing
        self._fh.write((json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8"))
        self._fh.flush()
        self.done[str(obj.get("id"))] = obj

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def trim_metrics(path: Path, step: int) -> None:
    """Drop ``metrics.jsonl`` lines past ``step``: those a killed run logged after the checkpoint
    it resumes from (every trainer's metrics file has one JSON object with a ``step`` per line)."""
    if not path.is_file():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    kept = [ln for ln in lines if json.loads(ln).get("step", 0) <= step]
    if len(kept) != len(lines):
        path.write_text("".join(ln + "\n" for ln in kept))


def refuse_other_job(stamp_file: Path, stamp: dict[str, Any]) -> None:
    """Raise if ``stamp_file`` (beside a trainer's checkpoints) describes another training job
    than ``stamp`` (model, data, options): its checkpoints must not be resumed."""
    if not stamp_file.is_file():
        return
    old = json.loads(stamp_file.read_text())
    if old != stamp:
        changed = sorted(k for k in stamp if old.get(k) != stamp[k])
        raise OkapiError(f"the work folder {stamp_file.parent} holds checkpoints of a different training job "
                         f"(changed: {', '.join(changed)})",
                         hint="delete that folder to start afresh, or restore the previous settings")
