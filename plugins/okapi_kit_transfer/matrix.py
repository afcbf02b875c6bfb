"""The transfer matrix: each reward model's accuracy on each target language's preference
test set, with Wilson intervals, and its difference from the target-native RM with a paired
interval over the test rows; per category and averaged over targets.

Plain numbers only (no numpy): the inputs are, per (RM, target), which rows the RM got
right, i.e. scored the chosen response above the rejected one (a tie is wrong).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from okapi_kit.report.stats import Interval, newcombe_paired_interval, wilson_interval

ALL = "all"  # the category of every row


@dataclass(frozen=True)
class RMRow:
    """A row of the matrix: a reward model applied through one transfer method.

    ``language`` is the language the RM was trained in; the RM is ``native`` for a target in
    that language when its method is ``direct`` (the target's own RM, read as it is)."""

    label: str
    language: str | None
    method: str = "direct"

    def native_for(self, target: str) -> bool:
        return self.method == "direct" and self.language == target


@dataclass(frozen=True)
class Cell:
    """One RM on one target (one category of it)."""

    row: str
    target: str
    category: str
    n: int
    correct: int
    accuracy: float
    ci: Interval
    native: str | None = None  # the label of the target-native RM, when there is one
    diff: float | None = None  # accuracy minus the native RM's, on the same rows
    diff_ci: Interval | None = None


@dataclass(frozen=True)
class Average:
    """One RM's mean over targets (one category): accuracy over every target and over the
    targets in other languages than its own (transfer), and the mean difference from the
    native RMs over the targets where it is not the native one."""

    row: str
    category: str
    accuracy: float
    accuracy_ci: Interval
    targets: int
    transfer_accuracy: float | None = None
    transfer_ci: Interval | None = None
    transfer_targets: int = 0
    diff: float | None = None
    diff_ci: Interval | None = None
    diff_targets: int = 0


@dataclass
class TransferMatrix:
    rows: list[RMRow]
    targets: list[str]
    categories: list[str]  # ALL first
    confidence: float
    cells: dict[tuple[str, str, str], Cell] = field(default_factory=dict)
    averages: dict[tuple[str, str], Average] = field(default_factory=dict)

    def cell(self, row: str, target: str, category: str = ALL) -> Cell | None:
        return self.cells.get((row, target, category))

    def to_json(self) -> dict[str, Any]:
        def iv(i: Interval | None) -> list[float] | None:
            return None if i is None else [round(i.low, 6), round(i.high, 6)]

        return {
            "confidence": self.confidence,
            "rows": [{"label": r.label, "language": r.language, "method": r.method} for r in self.rows],
            "targets": self.targets,
            "categories": self.categories,
            "cells": [{"row": c.row, "target": c.target, "category": c.category, "n": c.n, "correct": c.correct,
                       "accuracy": round(c.accuracy, 6), "ci": iv(c.ci), "native": c.native,
                       "diff": None if c.diff is None else round(c.diff, 6), "diff_ci": iv(c.diff_ci)}
                      for c in self.cells.values()],
            "averages": [{"row": a.row, "category": a.category, "accuracy": round(a.accuracy, 6),
                          "ci": iv(a.accuracy_ci), "targets": a.targets,
                          "transfer_accuracy": None if a.transfer_accuracy is None else round(a.transfer_accuracy, 6),
                          "transfer_ci": iv(a.transfer_ci), "transfer_targets": a.transfer_targets,
                          "diff": None if a.diff is None else round(a.diff, 6), "diff_ci": iv(a.diff_ci),
                          "diff_targets": a.diff_targets}
                         for a in self.averages.values()],
        }


def _z(confidence: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2)


def _se(interval: Interval, z: float) -> float:
    """A standard error read off an interval (half its width over z): Wilson and Newcombe
    intervals never have zero width, so neither does a mean built from them."""
    return (interval.high - interval.low) / (2 * z)


def _mean(values: list[tuple[float, Interval]], z: float, bounds: tuple[float, float]) -> tuple[float, Interval]:
    """The mean of independent estimates (one per target: separate test sets) and its normal
    interval from their standard errors, kept within ``bounds`` (what the estimate can be)."""
    k = len(values)
    mean = sum(v for v, _ in values) / k
    se = math.sqrt(sum(_se(i, z) ** 2 for _, i in values)) / k
    return mean, Interval(max(bounds[0], mean - z * se), min(bounds[1], mean + z * se))


def transfer_matrix(rows: list[RMRow], targets: list[str], outcomes: Mapping[tuple[str, str], Mapping[str, bool]],
                    categories: Mapping[str, Mapping[str, str]] | None = None, *,
                    confidence: float = 0.95) -> TransferMatrix:
    """Build the matrix.

    ``outcomes[(row label, target)]`` maps each test row's id to whether the RM got it right;
    ``categories[target]`` maps row ids to their category (none: one category). Every RM must
    have been scored on the same rows of a target (the paired difference needs them).
    """
    categories = categories or {}
    z = _z(confidence)
    names = sorted({c for t in targets for c in categories.get(t, {}).values()})
    m = TransferMatrix(rows=list(rows), targets=list(targets), categories=[ALL, *[c for c in names if c != ALL]],
                       confidence=confidence)
    for target in targets:
        natives = [r for r in rows if r.native_for(target)]
        native = natives[0] if natives else None
        for row in rows:
            got = outcomes.get((row.label, target))
            if got is None:
                continue
            base = outcomes.get((native.label, target)) if native is not None else None
            if base is not None and set(base) != set(got):
                raise ValueError(f"{row.label} and {native.label} were scored on different rows of {target}")
            groups: dict[str, list[str]] = {ALL: list(got)}
            for item in got:
                cat = categories.get(target, {}).get(item)
                if cat is not None and cat != ALL:
                    groups.setdefault(cat, []).append(item)
            for cat, items in groups.items():
                m.cells[(row.label, target, cat)] = _cell(row, native, target, cat, items, got, base, z)
    for row in rows:
        for cat in m.categories:
            avg = _average(m, row, cat, z)
            if avg is not None:
                m.averages[(row.label, cat)] = avg
    return m


def _cell(row: RMRow, native: RMRow | None, target: str, category: str, items: list[str],
          got: Mapping[str, bool], base: Mapping[str, bool] | None, z: float) -> Cell:
    n = len(items)
    correct = sum(bool(got[i]) for i in items)
    cell = Cell(row.label, target, category, n, correct, correct / n, wilson_interval(correct, n, z=z))
    if base is None or native is None:
        return cell
    both = sum(bool(got[i]) and bool(base[i]) for i in items)
    only_row = sum(bool(got[i]) and not base[i] for i in items)
    only_native = sum(bool(base[i]) and not got[i] for i in items)
    neither = n - both - only_row - only_native
    # newcombe_paired_interval(.., only_a, only_b, ..) bounds p_b - p_a: a is the native RM
    diff_ci = newcombe_paired_interval(both, only_native, only_row, neither, z=z)
    return Cell(row.label, target, category, n, correct, correct / n, cell.ci, native=native.label,
                diff=(only_row - only_native) / n, diff_ci=diff_ci)


def _average(m: TransferMatrix, row: RMRow, category: str, z: float) -> Average | None:
    cells = [c for t in m.targets if (c := m.cell(row.label, t, category)) is not None]
    if not cells:
        return None
    acc, acc_ci = _mean([(c.accuracy, c.ci) for c in cells], z, (0.0, 1.0))
    other = [c for c in cells if c.target != row.language]
    gains = [c for c in cells if c.diff is not None and c.native != row.label]
    avg = Average(row.label, category, acc, acc_ci, len(cells))
    if other:
        t_acc, t_ci = _mean([(c.accuracy, c.ci) for c in other], z, (0.0, 1.0))
        avg = Average(**{**avg.__dict__, "transfer_accuracy": t_acc, "transfer_ci": t_ci,
                         "transfer_targets": len(other)})
    if gains:
        d, d_ci = _mean([(c.diff, c.diff_ci) for c in gains], z, (-1.0, 1.0))
        avg = Average(**{**avg.__dict__, "diff": d, "diff_ci": d_ci, "diff_targets": len(gains)})
    return avg


# ------------------------------------------------------------------ rendering


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _acc(c: Cell | Average | None) -> str:
    if c is None:
        return "–"
    ci = c.ci if isinstance(c, Cell) else c.accuracy_ci
    return f"{_pct(c.accuracy)} [{_pct(ci.low)}, {_pct(ci.high)}]"


def _diff(value: float | None, ci: Interval | None) -> str:
    if value is None or ci is None:
        return "–"
    mark = " *" if ci.excludes_zero() else ""
    return f"{100 * value:+.1f} [{100 * ci.low:+.1f}, {100 * ci.high:+.1f}]{mark}"


def to_markdown(m: TransferMatrix, *, title: str = "Reward-model transfer") -> str:
    """Accuracy and difference-from-native tables, overall and per category."""
    level = round(100 * m.confidence)
    out = [f"# {title}", "",
           f"Accuracy (%) of each reward model (rows) on each target language's preference test set "
           f"(columns), with {level}% Wilson intervals; `mean` averages the targets, `transfer` the targets "
           "in other languages than the RM's own.", ""]
    for cat in m.categories:
        suffix = "" if cat == ALL else f" — category `{cat}`"
        out += [f"## Accuracy{suffix}", "", table(m, cat, accuracy=True), ""]
    out += [f"Difference from the target-native RM (points; {level}% paired Newcombe interval over the test rows; "
            "`*`: the interval excludes 0); `mean` averages the targets where the RM is not the native one.", ""]
    for cat in m.categories:
        suffix = "" if cat == ALL else f" — category `{cat}`"
        out += [f"## Difference from native{suffix}", "", table(m, cat, accuracy=False), ""]
    return "\n".join(out)


def table(m: TransferMatrix, cat: str = ALL, *, accuracy: bool = True) -> str:
    """One markdown table: accuracy (or the difference from the native RM) for one category."""
    head = ["RM", *m.targets, "mean"] + (["transfer"] if accuracy else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in m.rows:
        cells = [m.cell(row.label, t, cat) for t in m.targets]
        avg = m.averages.get((row.label, cat))
        if accuracy:
            values = [_acc(c) for c in cells] + [_acc(avg)]
            values.append("–" if avg is None or avg.transfer_accuracy is None else
                          f"{_pct(avg.transfer_accuracy)} [{_pct(avg.transfer_ci.low)}, {_pct(avg.transfer_ci.high)}]")
        else:
            values = [("native" if c is not None and c.native == row.label else
                       _diff(c.diff if c else None, c.diff_ci if c else None)) for c in cells]
            values.append(_diff(avg.diff, avg.diff_ci) if avg is not None else "–")
        lines.append("| " + " | ".join([f"`{row.label}`", *values]) + " |")
    return "\n".join(lines)


def plot_png(m: TransferMatrix) -> bytes:
    """A heatmap of the overall accuracy, RMs by targets (matplotlib, imported here)."""
    import io

    from okapi_kit.report.plots import _matplotlib

    Figure = _matplotlib()
    values = [[(c.accuracy if (c := m.cell(r.label, t)) is not None else float("nan")) for t in m.targets]
              for r in m.rows]
    fig = Figure(figsize=(1.2 * len(m.targets) + 2.6, 0.55 * len(m.rows) + 1.6), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(values, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(m.targets)), m.targets)
    ax.set_yticks(range(len(m.rows)), [r.label for r in m.rows])
    ax.set_xlabel("target language (test set)")
    ax.set_ylabel("reward model")
    for i, row in enumerate(m.rows):
        for j, t in enumerate(m.targets):
            c = m.cell(row.label, t)
            if c is not None:
                ax.text(j, i, f"{100 * c.accuracy:.0f}", ha="center", va="center",
                        color="black" if c.accuracy > 0.6 else "white", fontsize=9)
    fig.colorbar(image, ax=ax, label="accuracy")
    ax.set_title("RM accuracy (%) by test language", fontsize=9, loc="left")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()
