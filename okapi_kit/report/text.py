"""The leaderboard's numbers as text, the same in every rendering."""

from __future__ import annotations

from ..leaderboard import ResultRow
from .model import HOW, VERDICT_NAMES, Answer, Difference, Report, spread

CAPTION = ("± standard error; [a, b] a 95% interval: Wilson's for a proportion near 0 or 1; for a "
           "difference, paired over items where they exist (a bootstrap, or Newcombe's interval when "
           "few items differ), else from the standard errors; * = the interval excludes 0")


def independence_note(report: Report) -> str | None:
    """Says how many differences rest on standard errors alone (no per-item results), whose
    intervals cannot tell samples of one prompt from independent ones; None when none do."""
    loose = [d for d in report.differences if d.how in ("stderr", "wilson")]
    if not loose:
        return None
    return (f"note: {len(loose)} of {len(report.differences)} differences have no per-item results; "
            "their intervals come from standard errors or counts that treat the evaluator's samples "
            "as independent")


def format_value(row: ResultRow | None) -> str:
    """``0.600 ±0.010``; a proportion near 0 or 1 as ``0.000 [0.000, 0.037]`` (Wilson); the bare
    value when no error is known; "" for no result."""
    if row is None:
        return ""
    s = spread(row)
    if s.wilson is not None:
        return f"{row.value:.3f} [{s.wilson.low:.3f}, {s.wilson.high:.3f}]"
    return f"{row.value:.3f}" + (f" ±{s.se:.3f}" if s.se is not None else "")


def format_mean(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def format_delta(d: Difference | None) -> str:
    """``+0.100*``: the difference, starred when its interval excludes 0; "" for none."""
    if d is None:
        return ""
    return f"{d.delta:+.3f}" + ("*" if d.significant else "")


def format_interval(d: Difference | None) -> str:
    """``[+0.072, +0.128]``, or "" when there is no interval."""
    if d is None or d.low is None or d.high is None:
        return ""
    return f"[{d.low:+.3f}, {d.high:+.3f}]"


def format_change(d: Difference | None) -> str:
    """The difference and its interval in one cell: ``+0.100* [+0.072, +0.128]``."""
    return " ".join(x for x in (format_delta(d), format_interval(d)) if x)


def describe_how(d: Difference) -> str:
    text = HOW[d.how]
    return f"{text} ({d.items})" if d.how == "bootstrap" and d.items else text


def answer_heading(a: Answer) -> str:
    counts = [f"{VERDICT_NAMES[v]} in {len(a.by_verdict[v])}" for v in ("better", "worse", "unclear")]
    if a.by_verdict["untested"]:
        counts.append(f"{VERDICT_NAMES['untested']} in {len(a.by_verdict['untested'])}")
    return f"{a.method} vs {a.against}: " + ", ".join(counts) + f" of {a.total}"


def answer_entries(ds: list[Difference], *, with_change: bool) -> list[tuple[str, str]]:
    """(language, "task · metric +0.100, ...") per language, in the order of ``ds``."""
    out: dict[str, list[str]] = {}
    for d in ds:
        what = f"{d.task} · {d.metric}"
        out.setdefault(d.language, []).append(f"{what} {format_delta(d).rstrip('*')}" if with_change else what)
    return [(lang, ", ".join(items)) for lang, items in out.items()]
