"""lm-eval's results (and per-item samples) turned into okapi-kit Scores.

One Score per task (or group) and metric; the metric keeps lm-eval's filter when it is
not ``none`` (``exact_match,flexible-extract``). ``items`` holds each item's value
(1.0 / 0.0 for a multiple-choice item), keyed by the document's ``id`` field when every
document has a distinct one, else by its index in the scored split (``doc_id``), by the
same rule as ``okapi-kit leaderboard import`` (``okapi_kit.report.lm_eval_items``), so that
imported and pipeline results pair up; a group's items are ``<task>/<id>`` over its tasks.
The protocol string says what was run::

    okapi; arc_vi; 25-shot from train; lm-eval 0.4.13
"""

from __future__ import annotations

from typing import Any

from okapi_kit import Score
from okapi_kit.report.lm_eval_items import item_values

from .prepare import RunPlan


def _metric_keys(row: dict[str, Any]) -> list[tuple[str, str]]:
    """(metric, filter) pairs of a results row, e.g. ('acc', 'none')."""
    out = []
    for key, value in row.items():
        metric, sep, filt = key.partition(",")
        if sep and not metric.endswith("_stderr") and isinstance(value, (int, float)) \
                and not isinstance(value, bool):
            out.append((metric, filt))
    return out


def _leaves(name: str, results: dict[str, Any]) -> list[str]:
    """The tasks under ``name`` (itself when it is a task), from lm-eval's group_subtasks."""
    subtasks = results.get("group_subtasks", {})
    if not subtasks.get(name):
        return [name]
    return [leaf for child in subtasks[name] for leaf in _leaves(child, results)]


def _items(leaves: list[str], samples: dict[str, list[dict]], metric: str, filt: str, prefix: bool
           ) -> dict[str, float] | None:
    """Per-item values of one metric, or None when lm-eval keeps no per-item number for it."""
    out: dict[str, float] = {}
    for leaf in leaves:
        rows = samples.get(leaf, [])
        if any(not isinstance(r.get(metric), (int, float)) for r in rows if r.get("filter", "none") == filt):
            return None  # e.g. bleu keeps (reference, prediction) pairs
        items = item_values(rows, [metric]).get((metric, filt), {})
        out.update({f"{leaf}/{i}" if prefix else i: v for i, v in items.items()})
    return out or None


def _aggregated_by_mean(results: dict[str, Any], leaves: list[str], metric: str) -> bool:
    for leaf in leaves:
        for m in results.get("configs", {}).get(leaf, {}).get("metric_list", []) or []:
            if m.get("metric") == metric and m.get("aggregation", "mean") != "mean":
                return False
    return True


def _fewshot_source(cfg: dict[str, Any]) -> str:
    """Where lm-eval drew the few-shot examples from (its own rule)."""
    pool = cfg.get("fewshot_split") or cfg.get("training_split") or cfg.get("validation_split") \
        or cfg.get("test_split")
    scored = cfg.get("test_split") or cfg.get("validation_split")
    return "the scored split" if pool == scored else str(pool)


def protocol_string(protocol: str, name: str, leaves: list[str], results: dict[str, Any], version: str) -> str:
    shots = results.get("n-shot", {}).get(leaves[0], 0)
    text = f"{protocol}; {name}; {shots}-shot"
    if shots:
        text += f" from {_fewshot_source(results.get('configs', {}).get(leaves[0], {}))}"
    return f"{text}; lm-eval {version}"


def to_scores(results: dict[str, Any], samples: dict[str, list[dict]], plan: RunPlan, version: str
              ) -> list[Score]:
    out: list[Score] = []
    for name in plan.names:
        spec = plan.specs[name]
        leaves = _leaves(name, results)
        row = results.get("groups", {}).get(name) or results["results"].get(name, {})
        pairs = [(name, spec.label, leaves, row)]
        if not _metric_keys(row) and leaves != [name]:  # a group without an aggregate: its tasks
            pairs = [(leaf, f"{spec.label}/{leaf}", [leaf], results["results"].get(leaf, {})) for leaf in leaves]
        for lm_name, label, task_leaves, task_row in pairs:
            n = sum(int(results.get("n-samples", {}).get(leaf, {}).get("effective", 0)) for leaf in task_leaves)
            protocol = protocol_string(plan.protocols[name], lm_name, task_leaves, results, version)
            for metric, filt in _metric_keys(task_row):
                stderr = task_row.get(f"{metric}_stderr,{filt}")
                items = _items(task_leaves, samples, metric, filt, prefix=len(task_leaves) > 1) \
                    if _aggregated_by_mean(results, task_leaves, metric) else None
                out.append(Score(task=label, metric=metric if filt == "none" else f"{metric},{filt}",
                                 value=float(task_row[f"{metric},{filt}"]),
                                 stderr=float(stderr) if isinstance(stderr, (int, float)) else None,
                                 n=n, protocol=protocol, items=items))
    return out
