"""The results store (SQLite) and the SFT-vs-aligned comparison."""

from __future__ import annotations

import csv
import io
import json
import math
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    run TEXT NOT NULL,
    model TEXT NOT NULL,
    method TEXT NOT NULL,
    language TEXT NOT NULL,
    task TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    stderr REAL,
    n INTEGER NOT NULL,
    protocol TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (run, model, method, language, task, metric, protocol)
)
"""


@dataclass
class ResultRow:
    run: str
    model: str
    method: str
    language: str
    task: str
    metric: str
    value: float
    stderr: float | None
    n: int
    protocol: str


class ResultsStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def add(self, rows: Iterable[ResultRow]) -> None:
        """Insert or replace: re-evaluating the same model and protocol overwrites its row."""
        now = time.time()
        with self._connect() as db:
            db.executemany(
                "INSERT OR REPLACE INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [(r.run, r.model, r.method, r.language, r.task, r.metric, r.value, r.stderr,
                  r.n, r.protocol, now) for r in rows])

    def rows(self, run: str | None = None) -> list[ResultRow]:
        query = "SELECT run, model, method, language, task, metric, value, stderr, n, protocol FROM results"
        args: tuple = ()
        if run:
            query, args = query + " WHERE run = ?", (run,)
        with self._connect() as db:
            return [ResultRow(*row) for row in db.execute(query + " ORDER BY run, language, task, metric", args)]


@dataclass
class Comparison:
    """One (model, language, task, metric) line: every method's value, and the change vs SFT."""

    run: str
    model: str
    language: str
    task: str
    metric: str
    n: int
    protocol: str
    values: dict[str, float]
    stderrs: dict[str, float | None]

    def delta(self, method: str, against: str = "sft") -> float | None:
        if method in self.values and against in self.values:
            return self.values[method] - self.values[against]
        return None

    def significant(self, method: str, against: str = "sft") -> bool:
        """|delta| > 2 combined standard errors (independent-samples approximation)."""
        d = self.delta(method, against)
        se = [self.stderrs.get(method), self.stderrs.get(against)]
        if d is None or any(s is None for s in se):
            return False
        combined = math.sqrt(se[0] ** 2 + se[1] ** 2)
        return combined > 0 and abs(d) > 2 * combined


def compare(rows: list[ResultRow]) -> tuple[list[str], list[Comparison]]:
    """Group rows by (run, model, language, task, metric, protocol); methods in a stable order."""
    order = {"base": 0, "sft": 1}
    methods = sorted({r.method for r in rows}, key=lambda m: (order.get(m, 2), m))
    groups: dict[tuple, Comparison] = {}
    for r in rows:
        key = (r.run, r.model, r.language, r.task, r.metric, r.protocol)
        comp = groups.setdefault(key, Comparison(r.run, r.model, r.language, r.task, r.metric,
                                                 r.n, r.protocol, {}, {}))
        comp.values[r.method] = r.value
        comp.stderrs[r.method] = r.stderr
    return methods, list(groups.values())


def aligned_methods(methods: list[str]) -> list[str]:
    return [m for m in methods if m not in ("base", "sft")]


def to_records(methods: list[str], comps: list[Comparison]) -> list[dict]:
    """One flat dict per (method, language, task, metric): the machine formats' rows."""
    out = []
    for c in comps:
        for m in methods:
            if m not in c.values:
                continue
            delta = c.delta(m) if m != "sft" else None
            out.append({"run": c.run, "model": c.model, "method": m, "language": c.language,
                        "task": c.task, "metric": c.metric, "value": c.values[m],
                        "stderr": c.stderrs[m], "n": c.n, "protocol": c.protocol,
                        "delta_vs_sft": delta,
                        "significant": c.significant(m) if delta is not None else None})
    return out


def render(methods: list[str], comps: list[Comparison], fmt: str) -> str:
    """json | csv | markdown; the rich table lives in the CLI."""
    records = to_records(methods, comps)
    if fmt == "json":
        return json.dumps(records, indent=2, ensure_ascii=False)
    if fmt == "csv":
        buf = io.StringIO()
        fields = list(ResultRow.__dataclass_fields__) + ["delta_vs_sft", "significant"]
        fields = [f for f in fields if f in (records[0] if records else {})] or fields
        writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)
        return buf.getvalue()
    if fmt == "markdown":
        head = ["language", "task", "metric", *methods,
                *[f"{m} - sft" for m in aligned_methods(methods)], "n"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in table_rows(methods, comps):
            lines.append("| " + " | ".join(row) + " |")
        return "\n".join(lines) + "\n"
    raise ValueError(fmt)


def table_rows(methods: list[str], comps: list[Comparison]) -> list[list[str]]:
    rows = []
    for c in sorted(comps, key=lambda c: (c.language, c.task, c.metric)):
        vals = [_fmt(c.values.get(m), c.stderrs.get(m)) for m in methods]
        deltas = []
        for m in aligned_methods(methods):
            d = c.delta(m)
            deltas.append("" if d is None else f"{d:+.3f}" + ("*" if c.significant(m) else ""))
        rows.append([c.language, c.task, c.metric, *vals, *deltas, str(c.n)])
    return rows


def _fmt(value: float | None, stderr: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" + (f" ±{stderr:.3f}" if stderr is not None else "")


def rows_as_dicts(rows: list[ResultRow]) -> list[dict]:
    return [asdict(r) for r in rows]
