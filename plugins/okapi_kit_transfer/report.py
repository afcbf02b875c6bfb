"""The study's reports from its units' outputs: the transfer matrix, the representation table,
their files under ``<run folder>/rm-transfer/``, and the leaderboard rows."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from okapi_kit.graph import Plan
from okapi_kit.leaderboard import ResultRow
from okapi_kit.records import atomic_write_text

from .study import SCORE, Study, StudyPlan, row_label

MATRIX_FILES = ("matrix.json", "matrix.md", "matrix.png")
REPRESENTATION_FILES = ("representation.json", "representation.md", "representation.png")


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def collect_matrix(study: Study, score_files: Iterable[Path]) -> Any:
    """The transfer matrix from the score units' files."""
    from .matrix import RMRow, transfer_matrix

    rows = [RMRow(row_label(rm.key, c.key), rm.language, c.key) for rm in study.rms for c in study.transfer]
    outcomes, categories = {}, {}
    for path in score_files:
        data = _read(path)
        outcomes[(row_label(data["rm"], data["method"]), data["target"])] = \
            {r["id"]: r["correct"] for r in data["rows"]}
        categories.setdefault(data["target"], {r["id"]: r["category"] for r in data["rows"]})
    return transfer_matrix(rows, list(study.targets.languages), outcomes, categories)


def collect_representation(table_files: Iterable[Path]) -> Any:
    """The represent units' tables as one."""
    from .representation import RepresentationTable

    table = None
    for path in table_files:
        part = RepresentationTable.from_json(_read(path))
        table = part if table is None else table.merged(part)
    return table


def write_matrix(sp: StudyPlan, matrix: Any, artifact: Path) -> None:
    """The matrix as the unit's artifact and as matrix.json, .md and .png in the report folder."""
    from .matrix import plot_png, to_markdown

    text = json.dumps(matrix.to_json(), indent=2, ensure_ascii=False)
    atomic_write_text(artifact, text)
    sp.report_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path, png_path = (sp.report_dir / name for name in MATRIX_FILES)
    atomic_write_text(json_path, text)
    atomic_write_text(md_path, to_markdown(matrix, title=f"Reward-model transfer: {sp.study.name}"))
    _write_bytes(png_path, plot_png(matrix))


def write_representation(sp: StudyPlan, table: Any, artifact: Path) -> None:
    from .representation import plot_png

    text = json.dumps(table.to_json(), indent=2, ensure_ascii=False)
    atomic_write_text(artifact, text)
    sp.report_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path, png_path = (sp.report_dir / name for name in REPRESENTATION_FILES)
    atomic_write_text(json_path, text)
    atomic_write_text(md_path, "# Representation shift\n\n"
                      f"Mean cosine similarity of {table.pooling}-token hidden states over {table.items} "
                      "parallel items, per layer (L0: embeddings).\n\n" + table.to_markdown() + "\n")
    _write_bytes(png_path, plot_png(table))


def _write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def report_files(sp: StudyPlan) -> list[Path]:
    """The report's files that exist."""
    return [sp.report_dir / n for n in MATRIX_FILES + REPRESENTATION_FILES if (sp.report_dir / n).exists()]


def score_files(sp: StudyPlan, plan: Plan) -> list[Path]:
    return [plan.outputs[u.key][u.produces[0]].path for u in sp.of_stage(SCORE)]


def result_rows(sp: StudyPlan, plan: Plan) -> list[ResultRow]:
    """Leaderboard rows: task ``rm_accuracy`` (and ``rm_accuracy.<category>``), method the RM's
    label, language the target; per-row items for paired comparisons."""
    study = sp.study
    files = [f for f in score_files(sp, plan) if f.exists()]
    if not files:
        return []
    matrix = collect_matrix(study, files)
    models = {row_label(rm.key, c.key): rm.name for rm in study.rms for c in study.transfer}
    outcomes: dict[tuple[str, str], dict[str, tuple[bool, str]]] = {}
    for path in files:
        data = _read(path)
        outcomes[(row_label(data["rm"], data["method"]), data["target"])] = \
            {r["id"]: (r["correct"], r["category"]) for r in data["rows"]}
    protocol = f"rm-transfer; r(chosen) > r(rejected), ties wrong; {study.prompt_template} prompt"
    out = []
    for c in matrix.cells.values():
        items = {i: float(ok) for i, (ok, cat) in outcomes[(c.row, c.target)].items() if c.category in ("all", cat)}
        p = c.accuracy
        out.append(ResultRow(run=study.name, model=models[c.row], method=c.row, language=c.target,
                             task="rm_accuracy" if c.category == "all" else f"rm_accuracy.{c.category}",
                             metric="accuracy", value=p, stderr=(p * (1 - p) / c.n) ** 0.5, n=c.n,
                             protocol=protocol, items=items))
    return out
