"""The leaderboard's content, computed once for every rendering: per-language lines, the
differences against a reference method with their intervals, averages per Okapi resource group
and the per-method answer (better, worse, not distinguishable).

Only like is compared with like: a difference is taken between two results of the same run,
model, language, task, metric, protocol and item count ``n``. Two methods whose results for a
language, task and metric come only from different protocols are refused with an OkapiError.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..errors import OkapiError, did_you_mean
from ..languages import LANGUAGES
from ..leaderboard import ResultRow
from .stats import (
    Z95,
    Interval,
    newcombe_interval,
    newcombe_paired_interval,
    normal_interval,
    paired_bootstrap,
    standard_error,
    wilson_interval,
)

GROUPS = ("H", "M", "L", "other")  # Okapi's resource groups, then languages outside Okapi's 26
GROUP_NAMES = {"H": "high-resource", "M": "medium-resource", "L": "low-resource", "other": "other",
               "all": "all languages"}
VERDICTS = ("better", "worse", "unclear", "untested")
VERDICT_NAMES = {"better": "better", "worse": "worse", "unclear": "not distinguishable",
                 "untested": "no interval"}

# Metrics that are a share of independent 0/1 outcomes when no items say otherwise; the name
# before "," (lm-eval's filter suffix) counts.
PROPORTION_METRICS = frozenset({"acc", "acc_norm", "exact_match", "accuracy", "fidelity", "win_rate",
                                "harmful_rate", "harm_rate", "pass_rate"})
# Words of metric names for which a lower value is better (harm rates, perplexities, errors).
LOWER_IS_BETTER = frozenset({"harm", "harmful", "harmfulness", "perplexity", "ppl", "loss", "error", "ter",
                             "bits_per_byte", "byte_perplexity", "word_perplexity"})

# With 0/1 items, a bootstrap resamples only the items the two answered differently; with fewer
# than this many it is too coarse (with none it collapses to a point), and Newcombe's paired
# interval is used instead.
MIN_DISCORDANT = 10

HOW = {"bootstrap": "paired bootstrap over items",
       "stderr": "from the standard errors (per-item results missing; samples taken as independent)",
       "wilson": "Newcombe's interval from Wilson intervals (per-item results missing; "
                 "samples taken as independent)",
       "unpaired_items": "from the items' standard errors as if independent (every item differs "
                         "by the same amount, so a bootstrap has no spread)",
       "paired_wilson": "Newcombe's paired interval from Wilson intervals (fewer than "
                        f"{MIN_DISCORDANT} items answered differently: too few for a bootstrap)",
       "average": "average over languages, their intervals combined as independent",
       "none": "no interval: a standard error is missing"}


def pair_key(against: str, method: str) -> str:
    return f"{method} - {against}"


def language_group(code: str) -> str:
    """H, M or L for Okapi's languages (English is H), "other" for any other code."""
    lang = LANGUAGES.get(code)
    return lang.group if lang is not None and lang.in_okapi else "other"


def language_order(code: str) -> tuple[int, str]:
    return GROUPS.index(language_group(code)), code


def lower_is_better(metric: str) -> bool:
    name = metric.split(",")[0].lower()
    return name in LOWER_IS_BETTER or any(word in LOWER_IS_BETTER for word in name.split("_"))


def method_order(method: str) -> tuple[int, str]:
    return {"base": 0, "sft": 1}.get(method, 2), method


def is_proportion(row: ResultRow) -> bool:
    """True when ``row``'s value is a share of 0/1 outcomes: its items are all 0 or 1, or it has
    no items and its metric is one of PROPORTION_METRICS with a value in [0, 1]."""
    if row.items:
        return all(v in (0.0, 1.0) for v in row.items.values())
    return row.metric.split(",")[0] in PROPORTION_METRICS and 0 <= row.value <= 1


def units(row: ResultRow) -> int:
    """The independent units behind ``row``: its items (one per prompt) if it has any, else n."""
    return len(row.items) if row.items else row.n


def near_boundary(row: ResultRow) -> bool:
    """A proportion too close to 0 or 1 for ``p ± z·se`` (fewer than 5 expected successes or
    failures), where the Wilson interval is used instead."""
    k = units(row)
    return is_proportion(row) and k > 0 and min(row.value, 1 - row.value) * k < 5


@dataclass(frozen=True)
class Spread:
    """How sure a single value is: a standard error, or for a proportion near 0 or 1 its
    Wilson interval (``wilson`` set)."""

    se: float | None
    wilson: Interval | None = None


def spread(row: ResultRow) -> Spread:
    """The standard error from the items (one per independent unit) when there are at least two,
    else the evaluator's; a Wilson interval for proportions near 0 or 1."""
    se = standard_error(list(row.items.values())) if row.items and len(row.items) >= 2 else row.stderr
    if near_boundary(row):
        k = units(row)
        return Spread(se, wilson_interval(min(max(row.value, 0.0), 1.0) * k, k))
    return Spread(se)


@dataclass
class Line:
    """The results of every method for one (run, model, language, task, metric, protocol, n)."""

    run: str
    model: str
    language: str
    task: str
    metric: str
    protocol: str
    n: int
    results: dict[str, ResultRow] = field(default_factory=dict)

    @property
    def group(self) -> str:
        return language_group(self.language)


@dataclass
class Difference:
    """``method``'s value minus ``against``'s in one language (``language`` set), or averaged over
    a resource group's languages (``language`` empty, ``languages`` listed)."""

    run: str
    model: str
    task: str
    metric: str
    group: str
    method: str
    against: str
    delta: float
    low: float | None
    high: float | None
    se: float | None
    how: str  # a key of HOW
    verdict: str  # a key of VERDICT_NAMES
    reference: bool = False  # the base model: shown for reference, not part of the answer
    language: str = ""
    protocol: str = ""
    n: int = 0
    items: int | None = None  # shared items of a paired bootstrap
    languages: list[str] = field(default_factory=list)

    @property
    def significant(self) -> bool | None:
        return None if self.low is None else self.verdict in ("better", "worse")


@dataclass
class GroupRow:
    """A resource group's averages for one (run, model, task, metric): each method's mean value
    over the group's languages that have it, and each compared method's mean difference."""

    run: str
    model: str
    task: str
    metric: str
    group: str  # H, M, L, other or all
    languages: list[str]
    values: dict[str, float]
    differences: dict[str, Difference]  # keyed by pair_key(against, method)

    def difference(self, against: str, method: str) -> Difference | None:
        return self.differences.get(pair_key(against, method))


@dataclass
class Answer:
    """For one (run, model) and compared pair: the per-language differences by verdict."""

    run: str
    model: str
    method: str
    against: str
    by_verdict: dict[str, list[Difference]]

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.by_verdict.values())


@dataclass
class Report:
    methods: list[str]  # every method present, base and sft first
    pairs: list[tuple[str, str, bool]]  # (against, method, reference)
    lines: list[Line]
    differences: list[Difference]  # per language
    groups: list[GroupRow]
    answers: list[Answer]

    def blocks(self) -> list[tuple[str, str, list[Line]]]:
        """Lines by (run, model), sorted; each block sorted by task, metric, group, language."""
        out: dict[tuple[str, str], list[Line]] = {}
        for line in self.lines:
            out.setdefault((line.run, line.model), []).append(line)
        return [(run, model, sorted(lines, key=lambda x: (x.task, x.metric, *language_order(x.language),
                                                          x.protocol, x.n)))
                for (run, model), lines in sorted(out.items())]

    def difference(self, line: Line, against: str, method: str) -> Difference | None:
        return self._by_line.get((id(line), against, method))

    def group_rows(self, run: str, model: str, task: str, metric: str) -> list[GroupRow]:
        return [g for g in self.groups if (g.run, g.model, g.task, g.metric) == (run, model, task, metric)]

    def __post_init__(self) -> None:
        self._by_line: dict[tuple[int, str, str], Difference] = {}


def build_report(rows: Sequence[ResultRow], *, compare: Sequence[tuple[str, str]] | None = None,
                 resamples: int = 2000, seed: int = 0) -> Report:
    """The report of ``rows``: by default each aligned method against ``sft``; ``compare`` gives
    (reference, method) pairs instead. ``base`` is added as a reference row against each
    reference method. Raises OkapiError for an unknown method or mixed protocols."""
    methods = sorted({r.method for r in rows}, key=method_order)
    pairs = _pairs(methods, compare)
    lines = _lines(rows)
    _refuse_mixed_protocols(lines, pairs)
    report = Report(methods, pairs, lines, [], [], [])
    for line in lines:
        for against, method, reference in pairs:
            if against in line.results and method in line.results:
                d = _difference(line, against, method, reference=reference, resamples=resamples, seed=seed)
                report.differences.append(d)
                report._by_line[(id(line), against, method)] = d
    report.groups = _group_rows(lines, report)
    report.answers = _answers(report)
    return report


def _pairs(methods: list[str], compare: Sequence[tuple[str, str]] | None) -> list[tuple[str, str, bool]]:
    if compare:
        pairs = []
        for against, method in compare:
            for name in (against, method):
                if name not in methods:
                    raise OkapiError(f"no results of a method named {name!r}", where="--compare",
                                     hint=did_you_mean(name, methods) if methods else "the database holds no results yet")
            if against == method:
                raise OkapiError(f"{method!r} compared with itself", where="--compare",
                                 hint="name a reference and another method, e.g. --compare sft dpo")
            if (against, method, False) not in pairs:
                pairs.append((against, method, False))
    else:
        pairs = [("sft", m, False) for m in methods if m not in ("base", "sft")] if "sft" in methods else []
    compared = {m for _, m, _ in pairs}
    if "base" in methods and "base" not in compared:
        pairs += [(against, "base", True) for against in dict.fromkeys(a for a, _, _ in pairs) if against != "base"]
    return pairs


def _lines(rows: Iterable[ResultRow]) -> list[Line]:
    lines: dict[tuple, Line] = {}
    for r in rows:
        key = (r.run, r.model, r.language, r.task, r.metric, r.protocol, r.n)
        lines.setdefault(key, Line(*key)).results[r.method] = r
    return list(lines.values())


def _refuse_mixed_protocols(lines: list[Line], pairs: list[tuple[str, str, bool]]) -> None:
    protocols: dict[tuple, dict[str, set[str]]] = {}
    for line in lines:
        per_method = protocols.setdefault((line.run, line.model, line.language, line.task, line.metric), {})
        for method in line.results:
            per_method.setdefault(method, set()).add(line.protocol)
    for (run, model, lang, task, metric), per_method in sorted(protocols.items()):
        for against, method, _ in pairs:
            a, b = per_method.get(against), per_method.get(method)
            if a and b and not a & b:
                raise OkapiError(
                    f"cannot compare {method} with {against} on {lang} {task} · {metric} (run {run!r}, "
                    f"model {model!r}): {against} was measured with protocol {_names(a)} and {method} "
                    f"with {_names(b)}", where="leaderboard",
                    hint="evaluate both with the same protocol (the lm_eval evaluator's `protocol` "
                         "option), or import both with the same --protocol")


def _names(protocols: set[str]) -> str:
    return " or ".join(repr(p) for p in sorted(protocols))


def _seed(seed: int, *parts: str) -> int:
    """A seed of its own for each comparison, the same on every call."""
    return seed * 1_000_003 + zlib.crc32("\x1f".join(parts).encode())


def _verdict(interval: Interval | None, metric: str) -> str:
    if interval is None:
        return "untested"
    if not interval.excludes_zero():
        return "unclear"
    up = interval.low > 0
    return "better" if up != lower_is_better(metric) else "worse"


def _difference(line: Line, against: str, method: str, *, reference: bool, resamples: int,
                seed: int) -> Difference:
    a, b = line.results[against], line.results[method]
    delta = b.value - a.value
    interval: Interval | None = None
    se: float | None = None
    items = None
    counts = _paired_counts(a, b)
    boot = (paired_bootstrap(a.items, b.items, resamples=resamples,
                             seed=_seed(seed, line.run, line.model, line.language, line.task, line.metric,
                                        line.protocol, against, method))
            if a.items and b.items and counts is None else None)
    if counts is not None:
        interval = newcombe_paired_interval(*counts)
        se, how, items = _se_of(interval), "paired_wilson", sum(counts)
    elif boot is not None and boot.se > 0:
        interval, se, how, items = boot.interval, boot.se, "bootstrap", boot.items
    elif boot is not None:  # every item differs by the same amount: the bootstrap has no spread
        se_a, se_b = spread(a).se, spread(b).se
        se = math.sqrt(se_a ** 2 + se_b ** 2) if se_a is not None and se_b is not None else 0.0
        interval = normal_interval(delta, se) if se > 0 else None
        how, items = ("unpaired_items", boot.items) if se > 0 else ("none", None)
    elif (near_boundary(a) or near_boundary(b)) and is_proportion(a) and is_proportion(b) and units(a) and units(b):
        interval = newcombe_interval(a.value, units(a), b.value, units(b))
        se, how = _se_of(interval), "wilson"
    elif a.stderr is not None and b.stderr is not None and (a.stderr > 0 or b.stderr > 0):
        se = math.sqrt(a.stderr ** 2 + b.stderr ** 2)
        interval, how = normal_interval(delta, se), "stderr"
    else:
        how = "none"
    return Difference(line.run, line.model, line.task, line.metric, line.group, method, against, delta,
                      None if interval is None else interval.low, None if interval is None else interval.high,
                      se, how, _verdict(interval, line.metric), reference, line.language, line.protocol,
                      line.n, items, [line.language])


def _paired_counts(a: ResultRow, b: ResultRow) -> tuple[int, int, int, int] | None:
    """(both right, only a, only b, neither) over the shared 0/1 items, when fewer than
    MIN_DISCORDANT of them differ; else None (the bootstrap is used)."""
    if not (a.items and b.items and is_proportion(a) and is_proportion(b)):
        return None
    shared = a.items.keys() & b.items.keys()
    if not shared:
        return None
    pairs = [(a.items[i], b.items[i]) for i in shared]
    only_a, only_b = pairs.count((1.0, 0.0)), pairs.count((0.0, 1.0))
    if only_a + only_b >= MIN_DISCORDANT:
        return None
    return pairs.count((1.0, 1.0)), only_a, only_b, pairs.count((0.0, 0.0))


def _se_of(interval: Interval) -> float:
    """The standard error a 95% normal interval of this width would have (for group averages)."""
    return (interval.high - interval.low) / (2 * Z95)


def _group_rows(lines: list[Line], report: Report) -> list[GroupRow]:
    """Averages per resource group and over all languages, per (run, model, task, metric).

    A group's difference is the mean of its languages' differences; its standard error combines
    theirs as independent (sqrt(sum se²) / L), so it is missing when any language's is.
    """
    by_task: dict[tuple[str, str, str, str], list[Line]] = {}
    for line in lines:
        by_task.setdefault((line.run, line.model, line.task, line.metric), []).append(line)
    out = []
    for (run, model, task, metric), part in sorted(by_task.items()):
        if len({x.language for x in part}) < 2:
            continue  # one language: its row says it all
        present = [g for g in GROUPS if any(x.group == g for x in part)]
        for group in [*present, "all"] if len(present) > 1 else present:  # "all" repeats a lone group
            members = [x for x in part if group in ("all", x.group)]
            values = {}
            for m in sorted({m for x in members for m in x.results}, key=method_order):
                vals = [x.results[m].value for x in members if m in x.results]
                values[m] = sum(vals) / len(vals)
            diffs: dict[str, Difference] = {}
            for against, method, reference in report.pairs:
                per_lang = [d for x in members if (d := report.difference(x, against, method))]
                if per_lang:
                    diffs[pair_key(against, method)] = _average(per_lang, run, model, task, metric, group, against, method, reference)
            out.append(GroupRow(run, model, task, metric, group,
                                sorted({x.language for x in members}, key=language_order), values, diffs))
    return out


def _average(per_lang: list[Difference], run: str, model: str, task: str, metric: str, group: str,
             against: str, method: str, reference: bool) -> Difference:
    k = len(per_lang)
    delta = sum(d.delta for d in per_lang) / k
    interval, se = None, None
    if all(d.se is not None for d in per_lang):
        se = math.sqrt(sum(d.se ** 2 for d in per_lang)) / k
        interval = normal_interval(delta, se) if se > 0 else None
    return Difference(run, model, task, metric, group, method, against, delta,
                      None if interval is None else interval.low, None if interval is None else interval.high,
                      se, "average" if interval is not None else "none", _verdict(interval, metric), reference,
                      languages=sorted((d.language for d in per_lang), key=language_order))


def _answers(report: Report) -> list[Answer]:
    out: dict[tuple[str, str, str, str], Answer] = {}
    for run, model, _ in report.blocks():
        for against, method, reference in report.pairs:
            if not reference:
                out[(run, model, against, method)] = Answer(run, model, method, against,
                                                            {v: [] for v in VERDICTS})
    for d in report.differences:
        if not d.reference:
            out[(d.run, d.model, d.against, d.method)].by_verdict[d.verdict].append(d)
    for answer in out.values():
        for ds in answer.by_verdict.values():
            ds.sort(key=lambda d: (*language_order(d.language), d.task, d.metric))
    return [a for a in out.values() if a.total]
