"""PNG plots of each compared method's difference from its reference, by language, with the
languages grouped by Okapi resource group. matplotlib is imported only here, and only when a
plot is made (no pyplot: no global backend state)."""

from __future__ import annotations

import io
from pathlib import Path

from ..errors import OkapiError
from .model import GROUP_NAMES, GROUPS, Difference, Report, language_order

MAX_PANELS = 12  # one panel per (run, model, task, metric); more would make an unreadable image
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def _matplotlib():
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise OkapiError("plots need matplotlib, which is not installed", where="--plot",
                         hint="pip install matplotlib") from exc
    return Figure


def panels(report: Report) -> list[tuple[tuple[str, str, str, str], list[Difference]]]:
    """The compared (not reference) per-language differences by (run, model, task, metric)."""
    out: dict[tuple[str, str, str, str], list[Difference]] = {}
    for d in report.differences:
        if not d.reference:
            out.setdefault((d.run, d.model, d.task, d.metric), []).append(d)
    return sorted(out.items())


def plot_png(report: Report) -> bytes | None:
    """The plot as PNG bytes, or None when there is no difference to plot."""
    parts = panels(report)
    if not parts:
        return None
    Figure = _matplotlib()
    shown = parts[:MAX_PANELS]
    most_langs = max(len({d.language for d in ds}) for _, ds in shown)
    fig = Figure(figsize=(max(6.5, 0.45 * most_langs + 2.5), 2.9 * len(shown)), layout="constrained")
    axes = fig.subplots(len(shown), 1, squeeze=False)[:, 0]
    runs = {(run, model) for (run, model, _, _), _ in parts}
    for ax, ((run, model, task, metric), ds) in zip(axes, shown):
        _panel(ax, ds, report, run, model, task, metric)
        title = f"{task} · {metric}" + (f"   (run {run}, model {model})" if len(runs) > 1 else "")
        ax.set_title(title, fontsize=10, loc="left")
    if len(parts) > len(shown):
        fig.suptitle(f"first {len(shown)} of {len(parts)} task panels", fontsize=9)
    fig.supxlabel("bars: 95% intervals; filled: the interval excludes 0; dashed: the resource group's mean",
                  fontsize=8, color="#555")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _panel(ax, ds: list[Difference], report: Report, run: str, model: str, task: str, metric: str) -> None:
    langs = sorted({d.language for d in ds}, key=language_order)
    x, pos, last = {}, 0.0, None
    spans: dict[str, list[float]] = {}
    for lang in langs:
        group = language_order(lang)[0]
        if last is not None and group != last:
            pos += 0.8  # a gap between resource groups
        x[lang], last = pos, group
        spans.setdefault(GROUPS[group], []).append(pos)
        pos += 1
    pairs = list(dict.fromkeys((d.against, d.method) for d in ds))
    width = 0.7 / max(1, len(pairs))
    for k, (against, method) in enumerate(pairs):
        color = COLORS[k % len(COLORS)]
        offset = (k - (len(pairs) - 1) / 2) * width
        mine = [d for d in ds if (d.against, d.method) == (against, method)]
        for d in mine:
            xi = x[d.language] + offset
            if d.low is not None and d.high is not None:
                ax.errorbar([xi], [d.delta], yerr=[[d.delta - d.low], [d.high - d.delta]], color=color,
                            capsize=2, linewidth=1)
            ax.plot([xi], [d.delta], "o", color=color, markerfacecolor=color if d.significant else "white",
                    markersize=5)
        ax.plot([], [], "o", color=color, label=f"{method} − {against}")
        for g in report.group_rows(run, model, task, metric):  # the group's mean difference
            avg = g.difference(against, method)
            if g.group in spans and avg is not None:
                xs = spans[g.group]
                ax.hlines(avg.delta, xs[0] - 0.4, xs[-1] + 0.4, colors=color, linestyles="dashed", linewidth=1)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks([x[lang] for lang in langs], langs, fontsize=8)
    ax.set_ylabel("difference", fontsize=9)
    for group, xs in spans.items():
        ax.annotate(GROUP_NAMES[group], xy=((xs[0] + xs[-1]) / 2, 0), xycoords=("data", "axes fraction"),
                    xytext=(0, -22), textcoords="offset points", ha="center", fontsize=8, color="#555")
    ax.legend(fontsize=8, loc="best", frameon=False)
    ax.grid(axis="y", alpha=0.3)


def write_plot(report: Report, path: Path | str) -> Path:
    """Write the plot to ``path`` (PNG); an OkapiError when there is nothing to plot."""
    path = Path(path).expanduser()
    png = plot_png(report)
    if png is None:
        raise OkapiError("nothing to plot: no method is compared with another", where=str(path),
                         hint="the plot shows aligned methods against sft; see --compare")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
    except OSError as exc:
        raise OkapiError(f"cannot write the plot: {exc.strerror}", where=str(path)) from exc
    return path
