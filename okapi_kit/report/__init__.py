"""The leaderboard report: comparisons with intervals (model, stats), renderings (formats, html,
plots) and the import of lm-eval results files (lm_eval_import).

matplotlib and numpy are imported only when a plot or a bootstrap is made.
"""

from __future__ import annotations

from .formats import render, to_csv, to_json, to_markdown
from .html import render_html, write_html, write_run_page
from .lm_eval_import import import_lm_eval, task_language
from .model import Answer, Difference, GroupRow, Line, Report, build_report, language_group
from .plots import plot_png, write_plot

__all__ = ["Answer", "Difference", "GroupRow", "Line", "Report", "build_report", "import_lm_eval",
           "language_group", "plot_png", "render", "render_html", "task_language", "to_csv", "to_json",
           "to_markdown", "write_html", "write_plot", "write_run_page"]
