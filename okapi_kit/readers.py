"""Readers for the data users hand us: Okapi's JSON files, JSONL, Hugging Face datasets.

Okapi's released files (FORMATS.md) are JSON arrays, one per language (``vi.json`` or
``r_vi.json``): alpaca (instruction, input, output), ranking (instruction, input,
prefered_output, rejected_output: their spelling) and rl-tuning (instruction, input).
TRL's preference records (prompt, chosen, rejected; plain strings or lists of
``{role, content}`` messages) and K-wise rankings (responses with order, ranks or scores)
are read too. A pair may carry ``chosen_reward`` and ``rejected_reward`` (scored pairs, as
``copg_offline`` learns from): they become the ranking's scores.

A source is a file, a saved ``datasets`` folder or a hub id; every reader also takes a list
of sources (several files per language), read one after the other. A record without an
``id`` is identified by its position: ``<file stem>-<index>``, with as many parent folders
before the stem as it takes to tell the files of one list apart.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import OkapiError, did_you_mean
from .records import Instruction, PreferencePair, Ranking, iter_jsonl

Source = str | Path
Sources = str | Path | Sequence[str | Path]

FORMATS = ("auto", "okapi", "json", "jsonl", "hf")
KINDS = ("instructions", "prompts", "preferences", "rankings", "samples", "unknown")

_OKAPI_NAME = re.compile(r"^(?:r_)?([a-z]{2,3})\.json$")
_PAIR_KEYS = ("prefered_output", "preferred_output", "rejected_output", "chosen", "rejected")
_ORDER_KEYS = ("order", "ranks", "scores")
_TEXT_KEYS = ("instruction", "prompt", "input", "output", "completion")


def language_from_filename(path: Path) -> str | None:
    """``vi.json`` and ``r_vi.json`` are Vietnamese; other names carry no language."""
    match = _OKAPI_NAME.match(Path(path).name)
    return match.group(1) if match else None


# ---------------------------------------------------------------- kinds


def detect_kind(obj: dict[str, Any]) -> str:
    """What a record is, from its keys: one of KINDS.

    Preference keys are looked at first: an Okapi ranking record also has ``instruction``.
    ``responses`` with an order (or with neither ``model`` nor ``reference``, i.e. best
    first) is a ranking; with ``model``/``reference`` and no order it is a SampleSet.
    """
    if not isinstance(obj, dict):
        return "unknown"
    keys = set(obj)
    if keys & set(_PAIR_KEYS):
        return "preferences"
    if "responses" in keys:
        if keys & set(_ORDER_KEYS) or not keys & {"model", "reference"}:
            return "rankings"
        return "samples"
    if "completion" in keys and "label" in keys:  # TRL's unpaired preference (KTO) data
        return "unknown"
    if "instruction" in keys or "prompt" in keys:
        return "instructions" if keys & {"output", "completion"} else "prompts"
    return "unknown"


def _describe(kind: str, obj: dict[str, Any]) -> str:
    """A kind in words, with the keys that gave it away."""
    def found(candidates: Sequence[str]) -> str:
        return "/".join(k for k in candidates if k in obj)

    if kind == "preferences":
        return f"preference pairs ({found(_PAIR_KEYS)})"
    if kind == "rankings":
        return f"K-wise rankings ({found(('responses',) + _ORDER_KEYS)})"
    if kind == "samples":
        return f"sampled responses without a ranking ({found(('responses', 'model', 'reference'))})"
    if kind == "instructions":
        return f"instructions with reference outputs ({found(_TEXT_KEYS)})"
    if kind == "prompts":
        return f"prompts without outputs ({found(_TEXT_KEYS)})"
    return f"none of the kinds okapi-kit reads (keys: {', '.join(sorted(obj)) or 'none'})"


# ---------------------------------------------------------------- rows from one source


def _json_type(value: Any) -> str:
    names = {str: "a string", bool: "true or false", int: "a number", float: "a number",
             dict: "an object", list: "an array", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _read_text(path: Path) -> str:
    """A whole file as UTF-8 text (a leading BOM is dropped); IO problems are OkapiErrors."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = "it is a folder" if isinstance(exc, IsADirectoryError) else (exc.strerror or str(exc))
        raise OkapiError(f"cannot open {path.name}: {reason}", where=str(path)) from None
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise OkapiError(f"{path.name} is not UTF-8 text (byte 0x{data[exc.start]:02x})",
                         where=f"{path}:{line}", hint="save the file as UTF-8") from None


def _rows_from_json(path: Path) -> list[tuple[str, Any]]:
    text = _read_text(path)
    if not text.strip():
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # JSON Lines under a .json name, as `datasets` accepts
            lines = _json_lines(text)
            if lines is not None:
                return [(f"{path}:{n}", obj) for n, obj in lines]
        raise OkapiError(f"invalid JSON ({exc.msg})", where=f"{path}:{exc.lineno}") from None
    if isinstance(data, dict):  # a single record, or {"data": [...]}
        data = data.get("data", [data])
    if not isinstance(data, list):
        raise OkapiError(f"expected a JSON array of records, got {_json_type(data)}", where=str(path))
    return [(f"{path}: record {i}", obj) for i, obj in enumerate(data)]


def _json_lines(text: str) -> list[tuple[int, Any]] | None:
    """Every non-blank line parsed as JSON, or None when one line is not JSON."""
    out = []
    for n, line in enumerate(text.split("\n"), 1):
        if line.strip():
            try:
                out.append((n, json.loads(line)))
            except json.JSONDecodeError:
                return None
    return out


def _saved_dataset(path: Path) -> bool:
    """A folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    return any((path / name).is_file() for name in ("dataset_dict.json", "state.json", "dataset_info.json"))


def _rows_from_hf(source: str, split: str) -> list[tuple[str, Any]]:
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - datasets is a core dependency
        raise OkapiError("reading a Hugging Face dataset needs the `datasets` package") from exc
    path = Path(source)
    if path.is_dir() and _saved_dataset(path):
        # load_from_disk maps the saved Arrow files; load_dataset would re-generate them
        # into the user's cache
        try:
            ds = datasets.load_from_disk(str(path))
        except Exception as exc:  # a damaged folder raises many types
            raise OkapiError(f"could not read the saved dataset {path.name}: {exc}", where=str(path)) from None
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise OkapiError(f"{path.name} has no split {split!r}", where=str(path),
                                 hint=f"its splits are: {', '.join(ds)}")
            return [(f"{path}[{split}] row {i}", dict(row)) for i, row in enumerate(ds[split])]
        return [(f"{path} row {i}", dict(row)) for i, row in enumerate(ds)]
    if path.is_dir():
        # a plain folder would go to load_dataset, which builds an Arrow copy in the user's cache
        raise OkapiError(f"{path.name} is a folder, not a data file or a saved dataset", where=str(path),
                         hint="give a JSON or JSONL file, or a folder written by datasets' save_to_disk")
    try:
        ds = datasets.load_dataset(source, split=split)
    except Exception as exc:  # datasets raises many types for a missing or offline source
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OkapiError(f"could not load dataset {source!r} (split {split!r}): {first_line}",
                         hint="give a local JSON/JSONL file or a saved dataset folder when offline") from None
    return [(f"{source}[{split}] row {i}", dict(row)) for i, row in enumerate(ds)]


def read_rows(source: str | Path, *, fmt: str = "auto", split: str = "train") -> list[tuple[str, Any]]:
    """(where, object) for each record of one source; an empty source is an error.

    ``fmt``: ``auto`` (by the path: ``.jsonl`` is JSON Lines, a folder or a hub id is a
    ``datasets`` source, anything else a JSON array), ``okapi``/``json``, ``jsonl`` or ``hf``.
    """
    if fmt not in FORMATS:
        raise OkapiError(f"unknown data format {fmt!r}", hint=did_you_mean(fmt, FORMATS))
    path = Path(source).expanduser()
    try:
        exists, is_dir = path.exists(), path.is_dir()
    except OSError as exc:  # e.g. a parent folder that may not be entered
        raise OkapiError(f"cannot open {path.name}: {exc.strerror or exc}", where=str(source)) from None
    data_suffix = path.suffix in (".json", ".jsonl")
    if fmt == "hf" or (fmt == "auto" and (is_dir or not exists) and not (is_dir and data_suffix)):
        if fmt == "auto" and not is_dir and (str(source).startswith((".", "/", "~")) or path.suffix):
            raise OkapiError(f"data file not found: {source}")
        return _rows_from_hf(str(path) if is_dir else str(source), split)
    if not exists:
        raise OkapiError(f"data file not found: {source}")
    if is_dir:
        raise OkapiError(f"cannot open {path.name}: it is a folder, not a data file", where=str(path),
                         hint="a saved `datasets` folder holds dataset_dict.json or dataset_info.json")
    if fmt == "jsonl" or (fmt == "auto" and path.suffix == ".jsonl"):
        rows: list[tuple[str, Any]] = [(f"{path}:{n}", obj) for n, obj in iter_jsonl(path)]
    else:
        rows = _rows_from_json(path)
    if not rows:
        raise OkapiError(f"{path.name} is empty: no records", where=str(path))
    return rows


def data_files(source: Sources) -> list[Path]:
    """The local files that reading ``source`` reads (for fingerprints); none for a hub id."""
    out: list[Path] = []
    for src in _as_list(source):
        path = Path(src).expanduser()
        if path.is_file():
            out.append(path)
        elif path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.is_file())
    return out


# ---------------------------------------------------------------- several sources


@dataclass
class _Row:
    where: str
    obj: Any
    file: str  # the file name, for messages
    default_id: str  # the position as identity, when the record has no id
    lang: str


def _as_list(source: Sources) -> list[Source]:
    if isinstance(source, (str, Path)):
        return [source]
    sources = list(source)
    if not sources:
        raise OkapiError("no data source given")
    for s in sources:
        if not isinstance(s, (str, Path)):
            raise OkapiError(f"a data source must be a path or a dataset id, got {_json_type(s)}")
    return sources


def _labels(sources: list[Source]) -> list[str]:
    """A short label per source: the file stem, with parent folders where stems collide."""
    parts = []
    for s in sources:
        path = Path(s).expanduser()
        try:
            if path.exists():
                path = path.resolve()  # the same file gets the same ids however it is written
        except OSError:  # unreadable: read_rows says so
            pass
        stemmed = path.with_name(path.stem) if path.name else path
        parts.append([p for p in stemmed.parts if p != path.anchor] or [str(s)])
    seen: dict[tuple[str, ...], Source] = {}
    for s, p in zip(sources, parts):
        if tuple(p) in seen:
            raise OkapiError(f"data source listed twice: {s}", hint=f"the same as {seen[tuple(p)]}")
        seen[tuple(p)] = s
    for depth in range(1, max(len(p) for p in parts) + 1):
        labels = [".".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [".".join(p) for p in parts]  # pragma: no cover - distinct paths differ at full depth


def _rows(source: Sources, fmt: str, split: str, lang: str | None) -> Iterator[_Row]:
    sources = _as_list(source)
    for src, label in zip(sources, _labels(sources)):
        file_lang = lang or language_from_filename(Path(src)) or "en"
        for i, (where, obj) in enumerate(read_rows(src, fmt=fmt, split=split)):
            if not isinstance(obj, dict):
                raise OkapiError(f"expected a JSON object, got {type(obj).__name__}", where=where)
            yield _Row(where, obj, Path(src).name, f"{label}-{i:06d}", file_lang)


def _check_kind(row: _Row, accepted: tuple[str, ...], wanted: str) -> str:
    kind = detect_kind(row.obj)
    if kind == "unknown" and {"completion", "label"} <= set(row.obj):
        raise OkapiError(f"{row.file} looks like unpaired preference data (prompt/completion/label), "
                         f"not {wanted}", where=row.where,
                         hint="give pairs (prompt/chosen/rejected) or rankings instead")
    if kind not in accepted and kind != "unknown":
        raise OkapiError(f"{row.file} looks like {_describe(kind, row.obj)}, not {wanted}", where=row.where)
    return kind


def _record_id(row: _Row) -> str:
    value = row.obj.get("id")
    return row.default_id if value is None else str(value)


def _record_lang(row: _Row) -> str:
    return _text(row.obj, "lang", row.where, required=False) or row.lang


def _check_unique(ids: list[str], wheres: list[str]) -> None:
    first: dict[str, str] = {}
    for rid, where in zip(ids, wheres):
        if rid in first:
            raise OkapiError(f"duplicate record id {rid!r}", where=where, hint=f"first at {first[rid]}")
        first[rid] = where


# ---------------------------------------------------------------- fields


def _missing(obj: dict[str, Any], key: str, where: str) -> OkapiError:
    return OkapiError(f"missing field {key!r}", where=where,
                      hint=f"record keys are: {', '.join(sorted(obj)) or 'none'}")


def _text(obj: dict[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise _missing(obj, key, where)
        return ""
    if not isinstance(value, str):
        raise OkapiError(f"field {key!r} must be a string, got {type(value).__name__}", where=where)
    return value


def _messages(value: Any, key: str, where: str) -> list[dict[str, str]]:
    ok = isinstance(value, list) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in value)
    if not ok:
        raise OkapiError(f"field {key!r} must be a string or a list of {{role, content}} messages "
                         "with string content", where=where)
    return value


def _user_text(messages: list[dict[str, str]]) -> str:
    return "\n\n".join(m["content"] for m in messages if m["role"] == "user")


def _response(obj: dict[str, Any], key: str, where: str) -> tuple[str, str | None]:
    """(response, prompt text or None) of a string or of TRL's conversational form: the
    last assistant message, and the user turns before it (an implicit prompt)."""
    value = obj.get(key)
    if value is None:
        raise _missing(obj, key, where)
    if isinstance(value, str):
        return value, None
    messages = _messages(value, key, where)
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last is None:
        raise OkapiError(f"field {key!r} has no assistant message", where=where)
    return messages[last]["content"], _user_text(messages[:last]) or None


def _prompt(obj: dict[str, Any], where: str) -> tuple[str, str | None, str | None] | None:
    """(prompt, instruction, input) from ``prompt`` or from Okapi's ``instruction``/``input``;
    None when the record has neither (TRL's implicit prompt)."""
    from .prompts import format_alpaca

    value = obj.get("prompt")
    if isinstance(value, list):  # conversational: the user turns are the instruction
        text = _user_text(_messages(value, "prompt", where))
        if not text.strip():
            raise OkapiError("field 'prompt' has no user message", where=where)
        return text, text, ""
    if value is not None:
        instruction = obj.get("instruction")
        raw = instruction if isinstance(instruction, str) else None
        return (_text(obj, "prompt", where), raw,
                _text(obj, "input", where, required=False) if raw is not None else None)
    if obj.get("instruction") is not None:
        instruction = _text(obj, "instruction", where)
        inp = _text(obj, "input", where, required=False)
        return format_alpaca(instruction, inp), instruction, inp
    return None


# ---------------------------------------------------------------- instructions


def read_instructions(source: Sources, *, fmt: str = "auto", split: str = "train",
                      lang: str | None = None) -> list[Instruction]:
    """Instructions from alpaca-style or rl-tuning records (``output`` optional: a record
    without it is a prompt), or TRL prompt(-completion) records; one source or a list.

    The language is the record's ``lang``, else ``lang``, else the file name's, else English.
    """
    out: list[Instruction] = []
    wheres: list[str] = []
    for row in _rows(source, fmt, split, lang):
        _check_kind(row, ("instructions", "prompts"), "instructions")
        out.append(_instruction(row))
        wheres.append(row.where)
    _check_unique([r.id for r in out], wheres)
    return out


def _instruction(row: _Row) -> Instruction:
    obj, where = row.obj, row.where
    if "instruction" not in obj and "prompt" in obj:  # TRL prompt-only / prompt-completion
        value = obj["prompt"]
        instruction = _user_text(_messages(value, "prompt", where)) if isinstance(value, list) \
            else _text(obj, "prompt", where)
        inp = ""
        output = _response(obj, "completion", where)[0] if obj.get("completion") is not None else ""
    else:
        instruction = _text(obj, "instruction", where)
        inp = _text(obj, "input", where, required=False)
        output = _text(obj, "output", where, required=False)
    if not instruction.strip():
        raise OkapiError("field 'instruction' is empty", where=where)
    return Instruction(id=_record_id(row), instruction=instruction, input=inp, output=output,
                       lang=_record_lang(row))


# ---------------------------------------------------------------- rankings and pairs


def read_rankings(source: Sources, *, fmt: str = "auto", split: str = "train",
                  lang: str | None = None) -> list[Ranking]:
    """Rankings from Okapi ranking files (a pair: K=2, order [0, 1]), TRL preference records
    (standard or conversational, explicit or implicit prompt) or K-wise rankings
    (``responses`` best first, or with ``order`` best first, ``ranks`` (lower is better) or
    ``scores`` (higher is better; ties keep the given order)); one source or a list."""
    out: list[Ranking] = []
    wheres: list[str] = []
    for row in _rows(source, fmt, split, lang):
        kind = _check_kind(row, ("preferences", "rankings"), "preference pairs or rankings")
        if kind == "unknown":
            raise OkapiError(
                "not a preference pair or a ranking", where=row.where,
                hint="expected instruction/input/prefered_output/rejected_output (Okapi), "
                     "prompt/chosen/rejected (TRL) or prompt/responses with order, ranks or "
                     f"scores; record keys are: {', '.join(sorted(row.obj)) or 'none'}")
        out.append(_pair_ranking(row) if kind == "preferences" else _kwise_ranking(row))
        wheres.append(row.where)
    _check_unique([r.id for r in out], wheres)
    return out


def _pair_ranking(row: _Row) -> Ranking:
    obj, where = row.obj, row.where
    if "chosen" in obj or "rejected" in obj:  # TRL
        chosen, chosen_prompt = _response(obj, "chosen", where)
        rejected, rejected_prompt = _response(obj, "rejected", where)
        given = _prompt(obj, where)
        if given is not None:
            prompt, instruction, inp = given
        else:  # implicit prompt: the user turns shared by both conversations, or none
            if chosen_prompt != rejected_prompt:
                raise OkapiError("'chosen' and 'rejected' start from different user messages",
                                 where=where, hint="an implicit prompt must be the same in both")
            prompt = chosen_prompt or ""
            instruction, inp = chosen_prompt, ("" if chosen_prompt is not None else None)
    else:  # Okapi
        chosen_key = "prefered_output" if "prefered_output" in obj else "preferred_output"
        if obj.get("instruction") is None:
            raise _missing(obj, "instruction", where)
        prompt, instruction, inp = _prompt(obj, where)  # type: ignore[misc]
        chosen, rejected = _text(obj, chosen_key, where), _text(obj, "rejected_output", where)
    return Ranking(id=_record_id(row), lang=_record_lang(row), prompt=prompt, responses=[chosen, rejected],
                   order=[0, 1], ranker=_text(obj, "ranker", where, required=False),
                   scores=_pair_rewards(obj, where), instruction=instruction, input=inp)


def _pair_rewards(obj: dict[str, Any], where: str) -> list[float] | None:
    """``[chosen_reward, rejected_reward]`` of a scored pair (``copg_offline``'s data), or None."""
    keys = ("chosen_reward", "rejected_reward")
    given = [k for k in keys if obj.get(k) is not None]
    if not given:
        return None
    if len(given) == 1:
        other = keys[1 - keys.index(given[0])]
        raise OkapiError(f"field {given[0]!r} is given without {other!r}", where=where,
                         hint="a scored pair gives both rewards, or neither")
    for k in keys:
        value = obj[k]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise OkapiError(f"field {k!r} must be a finite number, got {value!r}", where=where)
    return [float(obj[k]) for k in keys]


def _numbers(obj: dict[str, Any], key: str, k: int, where: str) -> list[float]:
    value = obj[key]
    ok = isinstance(value, list) and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in value)
    if not ok or len(value) != k:
        raise OkapiError(f"field {key!r} must be a list of {k} finite numbers, one per response",
                         where=where)
    return [float(x) for x in value]


def _kwise_ranking(row: _Row) -> Ranking:
    obj, where = row.obj, row.where
    given = _prompt(obj, where)
    if given is None:
        raise OkapiError("missing field 'prompt'", where=where,
                         hint="a ranking needs 'prompt', or 'instruction' (and 'input')")
    prompt, instruction, inp = given
    raw = obj["responses"]
    if not isinstance(raw, list) or len(raw) < 2:
        raise OkapiError("field 'responses' must be a list of at least 2 responses", where=where)
    if not all(isinstance(r, (str, list)) for r in raw):
        raise OkapiError("field 'responses' must hold strings or lists of {role, content} messages",
                         where=where)
    responses = [_response({"responses": r}, "responses", where)[0] for r in raw]
    k = len(responses)
    if obj.get("order") is not None and obj.get("ranks") is not None:
        raise OkapiError("give 'order' or 'ranks', not both", where=where)
    scores = _numbers(obj, "scores", k, where) if obj.get("scores") is not None else None
    if obj.get("order") is not None:
        order = obj["order"]
        ints = isinstance(order, list) and all(type(i) is int for i in order)
        if not ints or sorted(order) != list(range(k)):
            raise OkapiError(f"field 'order' must list each response index 0..{k - 1} once, best first",
                             where=where)
    elif obj.get("ranks") is not None:
        ranks = _numbers(obj, "ranks", k, where)
        if len(set(ranks)) != k:
            raise OkapiError("field 'ranks' has a tie", where=where,
                             hint="ranks are a total order (lower is better); use 'scores' for ties")
        order = sorted(range(k), key=ranks.__getitem__)
    elif scores is not None:
        order = sorted(range(k), key=lambda i: -scores[i])  # stable: ties keep the given order
    else:
        order = list(range(k))
    return Ranking(id=_record_id(row), lang=_record_lang(row), prompt=prompt, responses=responses,
                   order=list(order), ranker=_text(obj, "ranker", where, required=False),
                   scores=scores, instruction=instruction, input=inp)


def read_preferences(source: Sources, *, fmt: str = "auto", split: str = "train",
                     lang: str | None = None) -> list[PreferencePair]:
    """Preference pairs: a pair record stays one pair (with its own id); a K-wise ranking
    gives all its C(K,2) pairs (ids ``<id>:i>j``). See read_rankings for the formats."""
    pairs: list[PreferencePair] = []
    for r in read_rankings(source, fmt=fmt, split=split, lang=lang):
        if len(r.responses) == 2:
            chosen, rejected = r.ranked()
            pairs.append(PreferencePair(id=r.id, lang=r.lang, prompt=r.prompt, chosen=chosen,
                                        rejected=rejected, instruction=r.instruction, input=r.input))
        else:
            pairs += r.pairs()
    return pairs


def language_file(data_dir: Path, names: Iterable[str]) -> Path | None:
    """A language's file in an evaluation data folder: ``<name>/test.jsonl`` (or ``.json``),
    then ``<name>.jsonl`` (or ``.json``), for each of the language's ``names`` (its code, a
    hub split or FLORES name); None when there is none."""
    names = list(dict.fromkeys(names))
    forms = [f"{n}/test{ext}" for n in names for ext in (".jsonl", ".json")]
    forms += [f"{n}{ext}" for n in names for ext in (".jsonl", ".json")]
    return next((data_dir / f for f in forms if (data_dir / f).is_file()), None)
