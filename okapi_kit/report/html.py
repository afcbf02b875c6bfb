"""One self-contained static HTML page: the answer, the plot (an embedded PNG) and the tables.
No script, no server, no external file: it opens from disk in any browser."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape
from pathlib import Path

from .. import __version__
from ..errors import OkapiError
from ..leaderboard import ResultsStore
from ..records import atomic_write_text
from .formats import by_task, table
from .model import VERDICT_NAMES, Report, build_report
from .text import CAPTION, answer_entries, answer_heading, describe_how, independence_note

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em;
       color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
th, td { padding: .2em .6em; border-bottom: 1px solid #ddd; text-align: right; white-space: nowrap; }
th.text, td.text { text-align: left; }
div.scroll { overflow-x: auto; }
tr.average td { background: #f4f4f4; font-weight: 600; }
td.better, li.better strong { color: #1a7f37; } td.worse, li.worse strong { color: #c0392b; }
ul.answer { list-style: none; padding-left: 1em; } ul.answer li { margin: .2em 0; }
img { max-width: 100%; } .caption, footer { color: #666; font-size: .9em; }
code { background: #f4f4f4; padding: 0 .2em; }
"""


def render_html(report: Report, *, title: str = "Leaderboard", plot: bool = True) -> str:
    """The page for ``report``; with the plot when ``plot`` and matplotlib is installed."""
    body = [f"<h1>{escape(title)}</h1>"]
    if not report.lines:
        body.append("<p>No evaluation results yet.</p>")
    else:
        body += _answers(report)
        if plot:
            body += _plot(report)
        body += _tables(report)
        body.append(f'<p class="caption">{escape(CAPTION)}</p>')
        if note := independence_note(report):
            body.append(f'<p class="caption">{escape(note)}</p>')
    body.append(f"<footer>okapi-kit {escape(__version__)}</footer>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def _answers(report: Report) -> list[str]:
    if not report.answers:
        return ['<section id="answer"><p>No method is compared with another (no <code>sft</code> results, '
                "or nothing else to set against them).</p></section>"]
    out = ['<section id="answer">', "<h2>The answer, per language</h2>"]
    for a in report.answers:
        out.append(f"<h3>{escape(answer_heading(a))} <small>(run <code>{escape(a.run)}</code>, model "
                   f"<code>{escape(a.model)}</code>)</small></h3>")
        out.append('<ul class="answer">')
        for verdict in ("better", "worse", "unclear", "untested"):
            ds = a.by_verdict[verdict]
            if ds:
                entries = "; ".join(f"{escape(lang)} ({escape(what)})"
                                    for lang, what in answer_entries(ds, with_change=verdict != "unclear"))
                out.append(f'<li class="{verdict}"><strong>{escape(VERDICT_NAMES[verdict])}:</strong> {entries}</li>')
        out.append("</ul>")
    out.append("</section>")
    return out


def _plot(report: Report) -> list[str]:
    from .plots import plot_png

    try:
        png = plot_png(report)
    except OkapiError as exc:  # no matplotlib: the page without its plot
        return [f'<p class="caption">No plot: {escape(exc.message)} ({escape(exc.hint or "")}).</p>']
    if png is None:
        return []
    data = base64.b64encode(png).decode("ascii")
    return ['<section id="plot">', "<h2>Differences by language</h2>",
            f'<img alt="differences by language and resource group" src="data:image/png;base64,{data}">',
            "</section>"]


def _tables(report: Report) -> list[str]:
    out = ['<section id="tables">']
    for run, model, lines in report.blocks():
        out.append(f"<h2>run <code>{escape(run)}</code> · model <code>{escape(model)}</code></h2>")
        for (task, metric), part in by_task(lines).items():
            head, rows, marks = table(report, run, model, task, metric, part)
            out.append(f"<h3>{escape(task)} · {escape(metric)}</h3>")
            texts = {0, 1} | {i for i, h in enumerate(head) if h == "protocol"}
            out.append('<div class="scroll"><table>\n<thead><tr>'
                       + "".join(f'<th class="text">{escape(h)}</th>' if i in texts else f"<th>{escape(h)}</th>"
                                 for i, h in enumerate(head))
                       + "</tr></thead>\n<tbody>")
            for cells, mark in zip(rows, marks):
                average = cells[0].startswith("avg ")
                tds = []
                for i, cell in enumerate(cells):
                    cls = ["text"] if i in texts else []
                    d = mark.get(i)
                    if d is not None and d.verdict in ("better", "worse"):
                        cls.append(d.verdict)
                    attr = f' class="{" ".join(cls)}"' if cls else ""
                    if d is not None:  # how the interval was made, on hover
                        attr += f' title="{escape(describe_how(d))}"'
                    tds.append(f"<td{attr}>{escape(cell)}</td>")
                row_attr = ' class="average"' if average else f' data-language="{escape(cells[0])}"'
                out.append(f"<tr{row_attr}>" + "".join(tds) + "</tr>")
            out.append("</tbody>\n</table></div>")
    out.append("</section>")
    return out


def write_html(report: Report, path: Path | str, *, title: str = "Leaderboard") -> Path:
    path = Path(path).expanduser()
    try:
        atomic_write_text(path, render_html(report, title=title))
    except OSError as exc:
        raise OkapiError(f"cannot write the page: {exc.strerror}", where=str(path)) from exc
    return path


def write_run_page(db: Path | str, run: str, path: Path | str, *,
                   compare: Sequence[tuple[str, str]] | None = None) -> Path:
    """Write the HTML leaderboard of ``run`` from the results database ``db`` to ``path`` (e.g.
    ``<run folder>/leaderboard.html``): for the pipeline, after it has stored its results."""
    rows = ResultsStore(db, create=False).rows(run=run)
    return write_html(build_report(rows, compare=compare), path, title=f"Leaderboard: {run}")
