"""Per-item values from lm-eval's samples (``--log_samples`` lines), keyed the same way wherever
they are read: by okapi-kit's lm_eval evaluator in a run, and by ``okapi-kit leaderboard import``.

The leaderboard pairs two models' items by key for its paired bootstrap, so both sides must
agree. An item's key is the document's own ``id`` when every document of the task has a distinct
one (a plain value, not an object), else lm-eval's ``doc_id`` (its index in the scored split).
Repeated lines of one document (one per filter, or repeats) are averaged per filter.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def _own_id(line: dict[str, Any]) -> Any:
    doc = line.get("doc")
    return doc.get("id") if isinstance(doc, dict) else None


def item_keys(lines: Iterable[Any]) -> dict[str, str]:
    """``str(doc_id)`` -> the item's key, for the lines of one task."""
    own: dict[str, Any] = {}
    for line in lines:
        if isinstance(line, dict) and "doc_id" in line:
            own.setdefault(str(line["doc_id"]), _own_id(line))
    ids = list(own.values())
    if ids and all(i is not None and not isinstance(i, (dict, list)) for i in ids) \
            and len({str(i) for i in ids}) == len(ids):
        return {doc: str(i) for doc, i in own.items()}
    return {doc: doc for doc in own}


def item_values(lines: list[Any], metrics: Iterable[str]) -> dict[tuple[str, str], dict[str, float]]:
    """(metric, filter) -> item key -> value (the mean over the document's lines), for the
    metrics whose values in the lines are numbers (true/false count as 1/0)."""
    keys = item_keys(lines)
    sums: dict[tuple[str, str], dict[str, list[float]]] = {}
    for line in lines:
        if not isinstance(line, dict) or "doc_id" not in line:
            continue
        filt = str(line.get("filter", "none"))
        for metric in metrics:
            value = line.get(metric)
            if isinstance(value, bool):
                value = float(value)
            if isinstance(value, (int, float)) and math.isfinite(value):
                acc = sums.setdefault((metric, filt), {}).setdefault(keys[str(line["doc_id"])], [0.0, 0])
                acc[0] += value
                acc[1] += 1
    return {key: {i: s / n for i, (s, n) in docs.items()} for key, docs in sums.items()}
