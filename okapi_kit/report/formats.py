"""The leaderboard as JSON, CSV and Markdown (the terminal tables are in okapi_kit.cli.leaderboard,
the HTML page in okapi_kit.report.html)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from typing import Any

from ..leaderboard import ResultRow
from .model import GROUP_NAMES, VERDICT_NAMES, Difference, Line, Report, language_group, spread
from .text import (
    CAPTION,
    answer_entries,
    answer_heading,
    format_change,
    format_mean,
    format_value,
    independence_note,
)

CSV_FIELDS = ("run", "model", "method", "language", "group", "task", "metric", "value", "stderr",
              "value_low", "value_high", "n", "items", "protocol", "against", "delta", "delta_low",
              "delta_high", "significant", "verdict", "interval")


def render(report: Report, fmt: str, *, title: str = "Leaderboard") -> str:
    """json | csv | markdown."""
    if fmt == "json":
        return json.dumps(to_json(report), indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        return to_csv(report)
    if fmt == "markdown":
        return to_markdown(report, title)
    raise ValueError(fmt)


def _difference(d: Difference) -> dict[str, Any]:
    out = asdict(d)
    out["significant"] = d.significant
    if d.language:
        out.pop("languages")
    else:
        out.pop("language"), out.pop("protocol"), out.pop("n"), out.pop("items")
    return out


def result_record(row: ResultRow) -> dict[str, Any]:
    s = spread(row)
    return {"run": row.run, "model": row.model, "method": row.method, "language": row.language,
            "group": language_group(row.language), "task": row.task, "metric": row.metric,
            "value": row.value, "stderr": s.se,
            "value_low": s.wilson.low if s.wilson else None, "value_high": s.wilson.high if s.wilson else None,
            "n": row.n, "items": len(row.items) if row.items else None, "protocol": row.protocol}


def to_json(report: Report) -> dict[str, Any]:
    """The answer first, then group averages, per-language differences and every result."""
    return {
        "summary": [{"run": a.run, "model": a.model, "method": a.method, "against": a.against,
                     **{VERDICT_NAMES[v].replace(" ", "_"): [
                         {"language": d.language, "group": d.group, "task": d.task, "metric": d.metric,
                          "delta": d.delta, "low": d.low, "high": d.high} for d in ds]
                        for v, ds in a.by_verdict.items()}}
                    for a in report.answers],
        "groups": [{"run": g.run, "model": g.model, "task": g.task, "metric": g.metric, "group": g.group,
                    "languages": g.languages, "values": g.values,
                    "differences": [_difference(d) for d in g.differences.values()]}
                   for g in report.groups],
        "differences": [_difference(d) for d in report.differences],
        "results": [result_record(r) for _, _, lines in report.blocks() for line in lines
                    for r in _results(report, line)],
    }


def _results(report: Report, line: Line) -> list[ResultRow]:
    return [line.results[m] for m in report.methods if m in line.results]


def to_csv(report: Report) -> str:
    """One row per result, with its difference against each method it is compared with."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for _, _, lines in report.blocks():
        for line in lines:
            for row in _results(report, line):
                base = result_record(row)
                diffs = [d for against, method, _ in report.pairs if method == row.method
                         and (d := report.difference(line, against, method))]
                for d in diffs or [None]:
                    extra = {} if d is None else {
                        "against": d.against, "delta": d.delta, "delta_low": d.low, "delta_high": d.high,
                        "significant": d.significant, "verdict": d.verdict, "interval": d.how}
                    writer.writerow({**base, **extra})
    return buf.getvalue()


def to_markdown(report: Report, title: str) -> str:
    out = [f"# {title}", ""]
    if not report.lines:
        return "\n".join([*out, "No evaluation results yet.", ""])
    out += answer_markdown(report)
    for run, model, lines in report.blocks():
        out += [f"## run `{run}` · model `{model}`", ""]
        for (task, metric), part in by_task(lines).items():
            out += [f"### {_md(task)} · {_md(metric)}", ""]
            head, rows, _ = table(report, run, model, task, metric, part)
            out += ["| " + " | ".join(_md(h) for h in head) + " |", "|" + "---|" * len(head)]
            out += ["| " + " | ".join(_md(c) for c in cells) + " |" for cells in rows]
            out.append("")
    out += [f"_{CAPTION}_", ""]
    if note := independence_note(report):
        out += [f"_{note}_", ""]
    return "\n".join(out)


def answer_markdown(report: Report) -> list[str]:
    out = []
    for a in report.answers:
        out += [f"**{_md(answer_heading(a))}** (run `{a.run}`, model `{a.model}`)", ""]
        for verdict in ("better", "worse", "unclear", "untested"):
            ds = a.by_verdict[verdict]
            if ds:
                entries = answer_entries(ds, with_change=verdict != "unclear")
                out.append(f"- {VERDICT_NAMES[verdict]}: "
                           + "; ".join(f"{lang} ({_md(what)})" for lang, what in entries))
        out.append("")
    return out


def by_task(lines: list[Line]) -> dict[tuple[str, str], list[Line]]:
    out: dict[tuple[str, str], list[Line]] = {}
    for line in lines:
        out.setdefault((line.task, line.metric), []).append(line)
    return out


def table(report: Report, run: str, model: str, task: str, metric: str,
          lines: list[Line]) -> tuple[list[str], list[list[str]], list[dict[int, Difference]]]:
    """The header and cells of one task's table: a row per language (with the protocol when two
    rows of a language differ in it), then a row per resource group average; and per row, the
    difference behind each difference cell, by column."""
    methods = [m for m in report.methods if any(m in x.results for x in lines)]
    pairs = [(a, m) for a, m, _ in report.pairs if a in methods and m in methods]
    langs = [x.language for x in lines]
    with_protocol = len(set(langs)) < len(langs)
    head = ["language", "group", "n", *methods, *[f"{m} - {a}" for a, m in pairs],
            *(["protocol"] * with_protocol)]
    first = 3 + len(methods)  # the first difference column
    rows, marks = [], []
    for x in lines:
        diffs = [report.difference(x, a, m) for a, m in pairs]
        rows.append([x.language, x.group, str(x.n), *[format_value(x.results.get(m)) for m in methods],
                     *[format_change(d) for d in diffs], *([x.protocol] * with_protocol)])
        marks.append({first + i: d for i, d in enumerate(diffs) if d is not None})
    for g in report.group_rows(run, model, task, metric):
        diffs = [g.difference(a, m) for a, m in pairs]
        rows.append([f"avg {g.group}", GROUP_NAMES[g.group], str(len(g.languages)),
                     *[format_mean(g.values.get(m)) for m in methods],
                     *[format_change(d) for d in diffs], *([""] * with_protocol)])
        marks.append({first + i: d for i, d in enumerate(diffs) if d is not None})
    return head, rows, marks


def _md(text: str) -> str:
    return str(text).replace("|", "\\|")
