"""The leaderboard report: differences and their intervals, the answer per method, resource
group averages, the base reference, protocols, and the JSON, CSV and Markdown renderings."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest

from okapi_kit.errors import OkapiError
from okapi_kit.leaderboard import ResultRow
from okapi_kit.report import build_report, render
from okapi_kit.report.model import is_proportion, language_group, lower_is_better, spread
from okapi_kit.report.text import format_value, independence_note


def row(method, value, stderr=None, *, lang="vi", task="arc", metric="acc", run="demo", n=100,
        protocol="25-shot", model="tiny", items=None) -> ResultRow:
    return ResultRow(run, model, method, lang, task, metric, value, stderr, n, protocol, "", items)


def binary(correct: list[int]) -> dict[str, float]:
    return {f"q{i}": float(c) for i, c in enumerate(correct)}


def with_items(method, correct, **kw) -> ResultRow:
    items = binary(correct)
    return row(method, sum(items.values()) / len(items), None, n=len(items), items=items, **kw)


ROWS = [
    row("base", 0.25, 0.04),
    row("sft", 0.50, 0.01),
    row("dpo", 0.60, 0.01),  # +0.10, interval 0.1 ± 1.96·sqrt(2)·0.01: better
    row("ppo", 0.51, 0.01),  # +0.01: not distinguishable
    row("sft", 0.30, None, lang="hi"),
    row("dpo", 0.40, 0.02, lang="hi"),  # no SFT stderr: no interval
]


def by(report, method, lang="vi", against="sft"):
    return next(d for d in report.differences if (d.method, d.language, d.against) == (method, lang, against))


# ---- differences ---------------------------------------------------------------------------------

def test_differences_from_standard_errors():
    report = build_report(ROWS)
    assert report.methods == ["base", "sft", "dpo", "ppo"]
    assert [(a, m, ref) for a, m, ref in report.pairs] == [("sft", "dpo", False), ("sft", "ppo", False),
                                                          ("sft", "base", True)]
    dpo = by(report, "dpo")
    half = 1.959963984540054 * math.sqrt(2) * 0.01
    assert dpo.delta == pytest.approx(0.10)
    assert (dpo.low, dpo.high) == (pytest.approx(0.10 - half), pytest.approx(0.10 + half))
    assert dpo.how == "stderr" and dpo.verdict == "better" and dpo.significant is True
    ppo = by(report, "ppo")
    assert ppo.delta == pytest.approx(0.01) and ppo.verdict == "unclear" and ppo.significant is False
    hi = by(report, "dpo", "hi")
    assert hi.delta == pytest.approx(0.10) and hi.low is None and hi.verdict == "untested"
    assert hi.significant is None
    base = by(report, "base")
    assert base.reference and base.delta == pytest.approx(-0.25) and base.verdict == "worse"


def test_significance_threshold_is_a_95_percent_interval():
    se = 0.01
    threshold = 1.959963984540054 * math.sqrt(2) * se
    for delta, expected in [(threshold - 0.001, "unclear"), (threshold + 0.001, "better"),
                            (-(threshold + 0.001), "worse")]:
        report = build_report([row("sft", 0.5, se), row("dpo", 0.5 + delta, se)])
        assert report.differences[0].verdict == expected, delta
    report = build_report([row("sft", 0.5, 0.0, metric="score"), row("dpo", 0.9, 0.0, metric="score")])
    assert report.differences[0].verdict == "untested"  # zero error on a non-proportion: no claim


def test_paired_bootstrap_over_items_is_used_where_items_exist():
    # 200 items; dpo fixes 30 of sft's wrong answers and breaks 10 right ones: +0.10
    sft = [1] * 100 + [0] * 100
    dpo = [1] * 90 + [0] * 10 + [1] * 30 + [0] * 70
    report = build_report([with_items("sft", sft), with_items("dpo", dpo)])
    d = report.differences[0]
    assert d.how == "bootstrap" and d.items == 200
    assert d.delta == pytest.approx(0.10)
    assert d.low < 0.10 < d.high and d.low > 0 and d.verdict == "better"
    # by hand: paired differences are +1 (30), -1 (10), 0 (160); se = sd / sqrt(200)
    mean = 0.1
    sd = math.sqrt((30 * (1 - mean) ** 2 + 10 * (1 + mean) ** 2 + 160 * mean ** 2) / 199)
    assert d.se == pytest.approx(sd / math.sqrt(200), rel=0.1)
    # seeded: the same report twice, and another seed gives (slightly) another interval
    assert build_report([with_items("sft", sft), with_items("dpo", dpo)]).differences[0] == d
    assert build_report([with_items("sft", sft), with_items("dpo", dpo)], seed=1).differences[0] != d
    assert independence_note(report) is None  # every difference is paired


def test_few_differing_items_get_newcombes_paired_interval():
    # tiny runs: 4 items, the two models answer all alike; a bootstrap would say [0, 0]
    report = build_report([with_items("sft", [1, 0, 0, 0]), with_items("dpo", [1, 0, 0, 0])])
    d = report.differences[0]
    assert d.how == "paired_wilson" and d.items == 4 and d.verdict == "unclear"
    assert d.low == pytest.approx(-0.2449, abs=1e-4) and d.high == pytest.approx(0.2449, abs=1e-4)
    # 9 of 200 items differ, all for dpo: still Newcombe's interval, and it excludes 0
    sft = [1] * 100 + [0] * 100
    dpo = [1] * 109 + [0] * 91
    d = build_report([with_items("sft", sft), with_items("dpo", dpo)]).differences[0]
    assert d.how == "paired_wilson" and d.low > 0 and d.verdict == "better"


def test_identical_shares_fall_back_to_the_items_standard_errors():
    # per-prompt shares that are the same for both models: a bootstrap would give [0, 0]
    shares = {"p0": 0.5, "p1": 0.0, "p2": 0.0, "p3": 0.0}
    rows = [row("sft", 0.125, 0.125, n=8, metric="fidelity", items=shares),
            row("dpo", 0.125, 0.125, n=8, metric="fidelity", items=dict(shares))]
    d = build_report(rows).differences[0]
    se = math.sqrt(2) * 0.125  # each: sd(0.5, 0, 0, 0) / 2 = 0.125
    assert d.how == "unpaired_items" and d.se == pytest.approx(se) and d.high == pytest.approx(1.96 * se, rel=1e-3)
    assert d.verdict == "unclear"


def test_pairs_are_never_treated_as_independent():
    # the same 0/1 items shifted by one flip in 40: independent 95% intervals overlap widely,
    # the paired bootstrap sees that the change is consistent
    sft = [1, 0] * 100
    dpo = list(sft)
    for i in range(1, 200, 20):
        dpo[i] = 1  # 10 wrong answers become right, nothing else changes
    report = build_report([with_items("sft", sft), with_items("dpo", dpo)])
    assert report.differences[0].verdict == "better"
    unpaired = build_report([row("sft", 0.5, math.sqrt(0.25 / 200), n=200),
                             row("dpo", 0.55, math.sqrt(0.55 * 0.45 / 200), n=200)])
    assert unpaired.differences[0].verdict == "unclear"


def test_items_are_per_prompt_so_repeated_samples_do_not_shrink_the_interval():
    # 8 prompts, the items are each prompt's share of passing samples: the bootstrap resamples
    # 8 units whatever the number of samples behind them
    sft = {f"p{i}": v for i, v in enumerate([1, 1, 0.5, 0.5, 0, 1, 0.5, 1])}
    dpo = {f"p{i}": v for i, v in enumerate([1, 1, 1, 0.5, 0.5, 1, 0.5, 1])}
    rows = [row("sft", sum(sft.values()) / 8, None, n=64, metric="fidelity", items=sft),
            row("dpo", sum(dpo.values()) / 8, None, n=64, metric="fidelity", items=dpo)]
    d = build_report(rows).differences[0]
    assert d.items == 8 and d.how == "bootstrap" and d.verdict == "unclear"
    assert not is_proportion(rows[0])  # shares, not 0/1 outcomes


def test_proportions_near_0_or_1_get_wilson_intervals():
    perfect = row("sft", 1.0, 0.0, n=8, metric="fidelity")
    assert format_value(perfect) == "1.000 [0.676, 1.000]"  # never "1.000 ±0.000"
    assert spread(perfect).wilson.low == pytest.approx(0.6756, abs=1e-4)
    items = row("sft", 0.0, None, n=10, items=binary([0] * 10))
    assert format_value(items) == "0.000 [0.000, 0.278]"
    # 5 prompts with 4 samples each: the interval counts the 5 prompts, not n = 20
    prompts = row("sft", 1.0, 0.0, n=20, items=binary([1] * 5))
    assert format_value(prompts) == "1.000 [0.566, 1.000]"
    assert format_value(row("sft", 0.5, 0.05)) == "0.500 ±0.050"  # far from the edges: ± se
    assert format_value(row("sft", 0.5, None)) == "0.500"
    assert format_value(row("sft", 12.0, 0.0, metric="bleu")) == "12.000 ±0.000"  # not a proportion
    # a difference between proportions at the edge: Newcombe's interval, not a zero-width one
    report = build_report([row("sft", 1.0, 0.0, n=8, metric="fidelity"),
                           row("dpo", 1.0, 0.0, n=8, metric="fidelity")])
    d = report.differences[0]
    assert d.how == "wilson" and d.low < 0 < d.high and d.verdict == "unclear"


def test_lower_is_better_metrics_turn_the_verdict():
    report = build_report([row("sft", 0.30, 0.01, task="safety", metric="harmful_rate"),
                           row("dpo", 0.10, 0.01, task="safety", metric="harmful_rate")])
    assert report.differences[0].delta == pytest.approx(-0.2)
    assert report.differences[0].verdict == "better"
    assert lower_is_better("harmful_rate") and lower_is_better("word_perplexity")
    assert lower_is_better("bits_per_byte,none") and not lower_is_better("acc_norm")


@pytest.mark.parametrize("other", [dict(n=24), dict(run="b"), dict(model="m2")])
def test_unlike_rows_are_never_compared(other):
    report = build_report([row("sft", 0.5, 0.01), row("dpo", 0.9, 0.01, **other)])
    assert len(report.lines) == 2 and report.differences == []


def test_different_protocols_are_refused_naming_both():
    with pytest.raises(OkapiError) as err:
        build_report([row("sft", 0.5, 0.01), row("dpo", 0.9, 0.01, protocol="0-shot")])
    message = err.value.message
    assert "cannot compare dpo with sft on vi arc · acc" in message
    assert "'25-shot'" in message and "'0-shot'" in message
    assert "--protocol" in err.value.hint
    # one shared protocol is enough: that one is compared, the other stands alone
    report = build_report([row("sft", 0.5, 0.01), row("dpo", 0.9, 0.01),
                           row("sft", 0.4, 0.02, protocol="0-shot", n=24)])
    assert len(report.differences) == 1 and report.differences[0].protocol == "25-shot"


def test_compare_chooses_the_pairs():
    report = build_report(ROWS, compare=[("sft", "ppo")])
    assert report.pairs == [("sft", "ppo", False), ("sft", "base", True)]
    assert {d.method for d in report.differences} == {"ppo", "base"}
    report = build_report(ROWS, compare=[("ppo", "dpo"), ("sft", "dpo")])
    assert [(a, m) for a, m, _ in report.pairs] == [("ppo", "dpo"), ("sft", "dpo"), ("ppo", "base"),
                                                    ("sft", "base")]
    assert by(report, "dpo", against="ppo").delta == pytest.approx(0.09)
    with pytest.raises(OkapiError, match="no results of a method named 'ppo2'") as err:
        build_report(ROWS, compare=[("sft", "ppo2")])
    assert err.value.where == "--compare" and "ppo" in err.value.hint
    with pytest.raises(OkapiError, match="compared with itself"):
        build_report(ROWS, compare=[("sft", "sft")])
    # different protocols for methods outside the pairs are not a problem
    build_report([row("sft", 0.5, 0.01), row("dpo", 0.9, 0.01), row("ppo", 0.9, 0.01, protocol="x")],
                 compare=[("sft", "dpo")])


def test_no_sft_no_answer():
    report = build_report([row("dpo", 0.5, 0.01), row("base", 0.4, 0.01)])
    assert report.pairs == [] and report.differences == [] and report.answers == []


# ---- the answer and the group averages -----------------------------------------------------------

LANGS = {"vi": "H", "de": "H", "hi": "M", "bn": "L", "sw": "other"}


def grid_rows() -> list[ResultRow]:
    rows = []
    for lang in LANGS:
        rows += [row("base", 0.3, 0.01, lang=lang), row("sft", 0.5, 0.01, lang=lang)]
        change = {"vi": 0.10, "de": 0.02, "hi": -0.08, "bn": 0.0, "sw": 0.01}[lang]
        rows.append(row("dpo", 0.5 + change, 0.01, lang=lang))
    return rows


def test_the_answer_sorts_languages_by_verdict():
    report = build_report(grid_rows())
    [answer] = report.answers
    assert (answer.method, answer.against, answer.total) == ("dpo", "sft", 5)
    got = {v: [d.language for d in ds] for v, ds in answer.by_verdict.items()}
    assert got == {"better": ["vi"], "worse": ["hi"], "unclear": ["de", "bn", "sw"], "untested": []}
    assert all(language_group(lang) == g for lang, g in LANGS.items())


def test_group_averages_by_hand():
    report = build_report(grid_rows())
    groups = {g.group: g for g in report.group_rows("demo", "tiny", "arc", "acc")}
    assert list(groups) == ["H", "M", "L", "other", "all"]
    h = groups["H"]
    assert h.languages == ["de", "vi"]
    assert h.values == {"base": pytest.approx(0.3), "sft": pytest.approx(0.5), "dpo": pytest.approx(0.56)}
    d = h.difference("sft", "dpo")
    se = math.sqrt(2 * (2 * 0.01 ** 2)) / 2  # two languages, each with sqrt(2)·0.01
    assert d.delta == pytest.approx(0.06) and d.se == pytest.approx(se)
    assert d.low == pytest.approx(0.06 - 1.959963984540054 * se) and d.verdict == "better"
    overall = groups["all"].difference("sft", "dpo")
    assert overall.delta == pytest.approx((0.10 + 0.02 - 0.08 + 0.0 + 0.01) / 5)
    assert overall.languages == ["de", "vi", "hi", "bn", "sw"]
    assert groups["all"].difference("sft", "base").reference  # the base model as a reference row
    # a single group needs no "all" row
    two = build_report([row("sft", 0.5, 0.01), row("dpo", 0.6, 0.01), row("sft", 0.5, 0.01, lang="de"),
                        row("dpo", 0.6, 0.01, lang="de")])
    assert [g.group for g in two.groups] == ["H"]
    # a single language needs no averages at all
    assert build_report([row("sft", 0.5, 0.01), row("dpo", 0.6, 0.01)]).groups == []


def test_group_average_without_every_standard_error_has_no_interval():
    report = build_report(ROWS)  # hi has no SFT stderr
    [h, m, overall] = report.group_rows("demo", "tiny", "arc", "acc")
    assert h.difference("sft", "dpo").verdict == "better"
    assert m.difference("sft", "dpo").low is None and overall.difference("sft", "dpo").verdict == "untested"


# ---- renderings ----------------------------------------------------------------------------------

def test_render_json_answers_first():
    data = json.loads(render(build_report(grid_rows()), "json"))
    assert list(data) == ["summary", "groups", "differences", "results"]
    [summary] = data["summary"]
    assert (summary["method"], summary["against"]) == ("dpo", "sft")
    assert [x["language"] for x in summary["better"]] == ["vi"]
    assert [x["language"] for x in summary["worse"]] == ["hi"]
    assert [x["language"] for x in summary["not_distinguishable"]] == ["de", "bn", "sw"]
    vi = next(d for d in data["differences"] if d["language"] == "vi" and d["method"] == "dpo")
    assert vi["delta"] == pytest.approx(0.1) and vi["significant"] is True and vi["how"] == "stderr"
    assert vi["group"] == "H" and vi["reference"] is False
    assert len(data["results"]) == 15
    assert {g["group"] for g in data["groups"]} == {"H", "M", "L", "other", "all"}


def test_render_csv_one_row_per_result_and_comparison():
    text = render(build_report(ROWS), "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 6
    dpo_vi = next(r for r in rows if r["method"] == "dpo" and r["language"] == "vi")
    assert (dpo_vi["value"], dpo_vi["against"], dpo_vi["verdict"], dpo_vi["significant"]) == (
        "0.6", "sft", "better", "True")
    assert float(dpo_vi["delta_low"]) == pytest.approx(0.1 - 1.959963984540054 * math.sqrt(2) * 0.01)
    sft_hi = next(r for r in rows if r["method"] == "sft" and r["language"] == "hi")
    assert (sft_hi["stderr"], sft_hi["delta"], sft_hi["group"]) == ("", "", "M")


def test_render_markdown():
    text = render(build_report(ROWS + [row("sft", 0.7, 0.02, run="b", task="x|y")]), "markdown",
                  title="Leaderboard: demo")
    lines = text.splitlines()
    assert lines[0] == "# Leaderboard: demo"
    # the answer comes before any table
    answer = lines.index("**dpo vs sft: better in 1, worse in 0, not distinguishable in 0, no interval in 1 "
                         "of 2** (run `demo`, model `tiny`)")
    assert answer < min(i for i, line in enumerate(lines) if line.startswith("|"))
    assert "- better: vi (arc · acc +0.100)" in lines
    assert "- no interval: hi (arc · acc +0.100)" in lines
    assert "### x\\|y · acc" in lines  # "|" would end a cell
    # where only standard errors exist, the page says what that assumes
    assert ("_note: 3 of 4 differences have no per-item results; their intervals come from standard errors "
            "or counts that treat the evaluator's samples as independent_") in lines
    start = lines.index("## run `demo` · model `tiny`")
    table = lines[start + 4:start + 10]
    assert table[0] == ("| language | group | n | base | sft | dpo | ppo | dpo - sft | ppo - sft | "
                        "base - sft |")
    assert table[2] == ("| vi | H | 100 | 0.250 ±0.040 | 0.500 ±0.010 | 0.600 ±0.010 | 0.510 ±0.010 | "
                        "+0.100* [+0.072, +0.128] | +0.010 [-0.018, +0.038] | -0.250* [-0.331, -0.169] |")
    assert table[3].startswith("| hi | M | 100 |  | 0.300 | 0.400 ±0.020 |  | +0.100 |  |")
    assert table[4].startswith("| avg H | high-resource | 1 | 0.250 | 0.500 | 0.600 | 0.510 | +0.100* [")


def test_render_markdown_shows_the_protocol_when_rows_differ_only_in_it():
    text = render(build_report([row("sft", 0.5), row("sft", 0.4, protocol="0-shot", n=20)]), "markdown")
    assert "| language | group | n | sft | protocol |" in text.splitlines()
    assert "| vi | H | 100 | 0.500 |  | 25-shot |" not in text  # no empty difference column
    assert "| vi | H | 100 | 0.500 | 25-shot |" in text and "| vi | H | 20 | 0.400 | 0-shot |" in text


def test_render_empty_and_unknown_format():
    empty = build_report([])
    assert json.loads(render(empty, "json")) == {"summary": [], "groups": [], "differences": [], "results": []}
    assert render(empty, "csv").splitlines() == [
        "run,model,method,language,group,task,metric,value,stderr,value_low,value_high,n,items,protocol,"
        "against,delta,delta_low,delta_high,significant,verdict,interval"]
    assert "No evaluation results yet." in render(empty, "markdown")
    with pytest.raises(ValueError):
        render(empty, "xml")
