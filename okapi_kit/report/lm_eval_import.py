"""Import lm-eval results JSON (made by okapi-kit or by lm-eval anywhere) as leaderboard rows.

lm-eval writes ``results_<date>.json`` (top-level keys ``results``, ``groups``,
``group_subtasks``, ``configs``, ``versions``, ``n-shot``, ``higher_is_better``, ``n-samples``,
``config``, ...; metrics as ``acc,none`` and ``acc_stderr,none``) and, with ``--log_samples``,
``samples_<task>_<date>.jsonl`` beside it: one line per document with ``doc_id``, the document
and its metric values. Those become per-item values (one per document; repeated lines of one
document are averaged, as they are not independent), keyed by the document's own ``id`` when
every document has a distinct one, else by ``doc_id``: as okapi-kit's lm_eval evaluator keys
them (``lm_eval_items``), so imported and pipeline results of the same items pair up.

The language comes from the task name: ``arc_vi``, ``m_mmlu_vi``, ``global_mmlu_full_vi``,
``xcopa_vi``, ``mgsm_direct_bn``, ``belebele_vie_Latn``, ``include_base_44_vietnamese``; the task
is the name without it (``arc``, ``belebele``; ``m_mmlu`` becomes ``mmlu`` as okapi-kit's lm_eval
evaluator names it), so one task lines up across languages.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import OkapiError
from ..languages import LANGUAGES
from ..leaderboard import ResultRow
from .lm_eval_items import item_values

# ISO 639-3 (as in FLORES / Belebele names like vie_Latn) -> the codes okapi-kit uses
ISO3 = {
    "eng": "en", "rus": "ru", "deu": "de", "zho": "zh", "fra": "fr", "spa": "es", "ita": "it",
    "nld": "nl", "vie": "vi", "ind": "id", "arb": "ar", "ara": "ar", "hun": "hu", "ron": "ro",
    "dan": "da", "slk": "sk", "ukr": "uk", "cat": "ca", "srp": "sr", "hrv": "hr", "hin": "hi",
    "ben": "bn", "tam": "ta", "npi": "ne", "nep": "ne", "mal": "ml", "mar": "mr", "tel": "te",
    "kan": "kn", "eus": "eu", "guj": "gu", "hye": "hy", "por": "pt", "isl": "is", "nob": "nb",
    "swh": "sw", "swa": "sw", "tha": "th", "tur": "tr", "jpn": "ja", "kor": "ko", "pol": "pl",
    "ces": "cs", "ell": "el", "heb": "he", "pes": "fa", "fas": "fa", "urd": "ur", "est": "et",
    "fin": "fi", "swe": "sv", "bul": "bg", "lit": "lt", "lav": "lv", "slv": "sl", "zsm": "ms",
}
# lm-eval's okapi families under the names okapi-kit's lm_eval evaluator gives them
TASK_NAMES = {"m_mmlu": "mmlu"}
_NAMES = {lang.name.lower().replace(" ", "_"): code for code, lang in LANGUAGES.items()}
_NAMES.update({"norwegian": "nb", "chinese_simplified": "zh", "persian": "fa", "swahili": "sw",
               "turkish": "tr", "japanese": "ja", "korean": "ko", "polish": "pl", "greek": "el"})
_SCRIPT = re.compile(r"^[A-Z][a-z]{3}$")  # Latn, Cyrl, Deva, Hans ...
_SAMPLES = re.compile(r"^samples_(?P<task>.+)_(?P<date>\d{4}-\d{2}-\d{2}T[\d.\-]+)\.jsonl$")
_RESULTS = re.compile(r"^results_(?P<date>\d{4}-\d{2}-\d{2}T[\d.\-]+)\.json$")
_HINT = "pass lm-eval's results_<date>.json (written by lm_eval --output_path, or okapi-kit's lm_eval_results.json)"


def task_language(task: str) -> tuple[str, str] | None:
    """``(language code, task without the language)`` for an lm-eval task name, or None.

    Tried in order: a FLORES-style ``xxx_Scrp`` pair, a code okapi-kit knows, a language name
    (INCLUDE), then any other two-letter part (e.g. ``sw`` in ``xcopa_sw``). The first match
    from the left wins, so ``global_mmlu_full_vi_us_foreign_policy`` is Vietnamese.
    """
    parts = task.split("_")
    for i in range(len(parts) - 1):
        if parts[i].islower() and len(parts[i]) == 3 and _SCRIPT.match(parts[i + 1]):
            code = ISO3.get(parts[i], parts[i])
            return code, _task_name(parts[:i] + parts[i + 2:])
    for test in (lambda p: p in LANGUAGES, lambda p: p in _NAMES,
                 lambda p: len(p) == 2 and p.isalpha() and p.islower()):
        for i, part in enumerate(parts):
            if i > 0 and test(part):  # the first part names the benchmark
                code = _NAMES.get(part, part)
                return code, _task_name(parts[:i] + parts[i + 1:])
    return None


def _task_name(parts: list[str]) -> str:
    name = "_".join(parts)
    return TASK_NAMES.get(name, name)


def import_lm_eval(paths: Iterable[Path | str], *, run: str, method: str | None = None, model: str = "-",
                   protocol: str = "lm-eval", language: str | None = None,
                   subtasks: bool = False) -> list[ResultRow]:
    """Rows for every task and metric of the lm-eval results files at ``paths``.

    ``method`` defaults to the label okapi-kit's lm_eval evaluator wrote into the file;
    ``protocol`` names the settings (``lm-eval``: the stock ones; ``okapi``: Okapi's shots) and is
    stored as okapi-kit's lm_eval evaluator stores it, ``<protocol>; <task>; <shots>-shot[ from
    <few-shot split>]; lm-eval <version>``, so imported results line up with the pipeline's;
    ``language`` is used for tasks whose names carry none. Tasks that are subtasks of a group in the same file are
    left out unless ``subtasks``. Samples files (``samples_<task>_<date>.jsonl``) given in
    ``paths`` or lying beside a ``results_<date>.json`` supply per-item values.
    """
    paths = [Path(p).expanduser() for p in paths]
    samples = {m["task"]: p for p in paths if (m := _SAMPLES.match(p.name))}
    rows: list[ResultRow] = []
    seen: dict[tuple, Path] = {}
    for path in paths:
        if _SAMPLES.match(path.name):
            continue
        for row in _import_file(path, run=run, method=method, model=model, protocol=protocol,
                                language=language, subtasks=subtasks, samples=samples):
            key = (row.method, row.language, row.task, row.metric, row.protocol)
            if key in seen:
                raise OkapiError(f"two results for {row.method} {row.language} {row.task} · {row.metric}: "
                                 f"in {seen[key]} and in {path}", where=str(path),
                                 hint="import one of them, or give them different --method labels")
            seen[key] = path
            rows.append(row)
    if not rows:
        raise OkapiError("no results to import", where=", ".join(map(str, paths)) or "import", hint=_HINT)
    return rows


def _read_json(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise OkapiError("no such file", where=str(path), hint=_HINT) from exc
    except IsADirectoryError as exc:
        raise OkapiError("a folder, not a results file", where=str(path), hint=_HINT) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise OkapiError(f"cannot read the file: {exc}", where=str(path), hint=_HINT) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OkapiError(f"invalid JSON: {exc.msg} (line {exc.lineno})", where=str(path), hint=_HINT) from exc
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise OkapiError("not an lm-eval results file: no 'results' mapping", where=str(path), hint=_HINT)
    return data


def _import_file(path: Path, *, run: str, method: str | None, model: str, protocol: str,
                 language: str | None, subtasks: bool, samples: dict[str, Path]) -> list[ResultRow]:
    data = _read_json(path)
    label = (data.get("okapi_kit") or {}).get("label") if isinstance(data.get("okapi_kit"), dict) else None
    method = method or label
    if not method:
        raise OkapiError("which method produced these results?", where=str(path),
                         hint="pass --method LABEL (e.g. sft, dpo, base)")
    version = data.get("lm_eval_version") or "?"
    results: dict[str, Any] = data["results"]
    members = {t for subs in (data.get("group_subtasks") or {}).values() if isinstance(subs, list) for t in subs}
    date = _RESULTS.match(path.name)
    inline = data.get("samples") if isinstance(data.get("samples"), dict) else {}
    rows = []
    for task, metrics in results.items():
        if not isinstance(metrics, dict) or (task in members and not subtasks):
            continue
        found = task_language(task)
        if found is None:
            if language is None:
                raise OkapiError(f"cannot tell the language of task {task!r} from its name", where=str(path),
                                 hint="pass --language CODE for tasks whose names carry no language")
            found = (language, task)
        lang, name = found
        n = _count(data, task)
        proto = _protocol(protocol, task, data, version)
        per_item = _items(task, data, inline, samples, path.parent, date["date"] if date else None)
        for key, value in metrics.items():
            metric, _, filt = key.partition(",")
            if metric == "alias" or metric.endswith("_stderr") or not _number(value):
                continue
            stderr = metrics.get(f"{metric}_stderr,{filt}" if filt else f"{metric}_stderr")
            items = per_item.get((metric, filt))
            if items is not None and not math.isclose(sum(items.values()) / len(items), value, abs_tol=1e-6):
                items = None  # not the per-item form of this figure (e.g. a corpus-level metric)
            rows.append(ResultRow(run=run, model=model, method=method, language=lang, task=name,
                                  metric=metric if filt in ("", "none") else f"{metric},{filt}",
                                  value=float(value), stderr=float(stderr) if _number(stderr) else None,
                                  n=len(items) if items and not n else n, protocol=proto,
                                  run_dir=str(path.parent), items=items))
    return rows


def _leaves(data: dict, task: str) -> list[str]:
    """The tasks a group is made of (recursively), or the task itself."""
    subs = (data.get("group_subtasks") or {}).get(task)
    if not isinstance(subs, list) or not subs:
        return [task]
    return [leaf for sub in subs for leaf in _leaves(data, sub)]


def _protocol(name: str, task: str, data: dict, version: str) -> str:
    """``<name>; <task>; <shots>-shot[ from <split>]; lm-eval <version>``, the form okapi-kit's
    lm_eval evaluator stores, with the shots and few-shot split of the task's first leaf."""
    leaf = _leaves(data, task)[0]
    shots = (data.get("n-shot") or {}).get(leaf, 0)
    text = f"{name}; {task}; {shots}-shot"
    if shots:
        cfg = (data.get("configs") or {}).get(leaf) or {}
        # lm-eval's rule for the few-shot pool: the first of these splits the task names
        pool = (cfg.get("fewshot_split") or cfg.get("training_split") or cfg.get("validation_split")
                or cfg.get("test_split"))
        scored = cfg.get("test_split") or cfg.get("validation_split")
        text += " from " + ("the scored split" if pool == scored else str(pool))
    return f"{text}; lm-eval {version}"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _count(data: dict, task: str) -> int:
    """The documents a task (or a group, summed over its subtasks) was scored on; 0 if unknown."""
    counts = data.get("n-samples") or {}
    if isinstance(counts.get(task), dict):
        return int(counts[task].get("effective", counts[task].get("original", 0)) or 0)
    subs = (data.get("group_subtasks") or {}).get(task) or []
    return sum(_count(data, sub) for sub in subs) if isinstance(subs, list) else 0


def _items(task: str, data: dict, inline: dict, samples: dict[str, Path], folder: Path,
           date: str | None) -> dict[tuple[str, str], dict[str, float]]:
    """Per-item values by (metric, filter) for ``task``: from the file's own ``samples``, a
    samples file given on the command line or one beside the results file (lm-eval's
    ``samples_<task>_<date>.jsonl`` or okapi-kit's ``lm_eval_samples_<task>.jsonl``), keyed as
    okapi-kit's lm_eval evaluator keys them (``lm_eval_items``). A group's items are its leaf
    tasks', each key prefixed with its leaf's name."""
    # the task's metric names, as its results name them (a samples line also holds doc ids, targets)
    names = {key.partition(",")[0] for key in (data["results"].get(task) or {})} - {"alias"}
    leaves = _leaves(data, task)
    merged: dict[tuple[str, str], dict[str, float]] = {}
    for leaf in leaves:
        values = item_values(_sample_lines(leaf, inline, samples, folder, date), names)
        for key, items in values.items():
            merged.setdefault(key, {}).update({f"{leaf}/{i}" if len(leaves) > 1 else i: v for i, v in items.items()})
    return merged


def _sample_lines(task: str, inline: dict, samples: dict[str, Path], folder: Path, date: str | None) -> list[Any]:
    """The samples lines of one task, wherever they are; none when there are none."""
    if isinstance(inline.get(task), list):
        return inline[task]
    # lm-eval's name for the samples file, or okapi-kit's evaluator's (lm_eval_samples_<task>.jsonl)
    candidates = [samples.get(task), folder / f"samples_{task}_{date}.jsonl" if date else None,
                  folder / f"lm_eval_samples_{task}.jsonl"]
    path = next((c for c in candidates if c is not None and c.is_file()), None)
    if path is None:
        return []
    lines = []
    for i, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if text.strip():
            try:
                lines.append(json.loads(text))
            except json.JSONDecodeError as exc:
                raise OkapiError(f"invalid JSON: {exc.msg}", where=f"{path}:{i}",
                                 hint="pass lm-eval's samples file as written") from exc
    return lines
