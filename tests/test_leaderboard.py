"""The results store, the SFT-vs-aligned comparison, its renderings and the leaderboard command."""

from __future__ import annotations

import csv
import io
import json
import math
import sqlite3

import pytest

from okapi_kit.cli import main
from okapi_kit.leaderboard import (
    ResultRow,
    ResultsStore,
    aligned_methods,
    compare,
    render,
    table_rows,
)


def row(method, value, stderr, *, lang="vi", task="arc", metric="acc", run="demo", n=100,
        protocol="25-shot", model="tiny") -> ResultRow:
    return ResultRow(run, model, method, lang, task, metric, value, stderr, n, protocol)


ROWS = [
    row("base", 0.25, 0.04),
    row("sft", 0.50, 0.01),
    row("dpo", 0.60, 0.01),  # +0.10 > 2 * sqrt(2) * 0.01: significant
    row("ppo", 0.51, 0.01),  # +0.01: not significant
    row("sft", 0.30, None, lang="hi"),
    row("dpo", 0.40, 0.02, lang="hi"),  # no SFT stderr: never called significant
]


@pytest.fixture
def store(tmp_path) -> ResultsStore:
    s = ResultsStore(tmp_path / "sub" / "lb.sqlite")
    s.add(ROWS)
    return s


def test_store_round_trip_and_filter(store, tmp_path):
    assert sorted(store.rows(), key=lambda r: (r.language, r.method)) == sorted(
        ROWS, key=lambda r: (r.language, r.method))
    store.add([row("sft", 0.7, 0.02, run="other")])
    assert [r.run for r in store.rows(run="other")] == ["other"]
    assert len(store.rows(run="demo")) == 6 and len(store.rows()) == 7
    # reopening an existing database keeps its rows
    assert len(ResultsStore(tmp_path / "sub" / "lb.sqlite").rows()) == 7


def test_upsert_replaces_the_same_key(store):
    store.add([row("dpo", 0.65, 0.02)])  # same run/model/method/language/task/metric/protocol
    dpo_vi = [r for r in store.rows() if r.method == "dpo" and r.language == "vi"]
    assert dpo_vi == [row("dpo", 0.65, 0.02)]
    assert len(store.rows()) == 6
    store.add([row("dpo", 0.55, 0.02, protocol="0-shot")])  # another protocol is another result
    assert len(store.rows()) == 7
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT COUNT(*) FROM results").fetchone() == (7,)


def test_compare_delta_and_significance(store):
    methods, comps = compare(store.rows())
    assert methods == ["base", "sft", "dpo", "ppo"]
    assert aligned_methods(methods) == ["dpo", "ppo"]
    by_lang = {c.language: c for c in comps}
    assert set(by_lang) == {"vi", "hi"} and len(comps) == 2
    vi, hi = by_lang["vi"], by_lang["hi"]
    assert vi.values == {"base": 0.25, "sft": 0.5, "dpo": 0.6, "ppo": 0.51}
    assert vi.delta("dpo") == pytest.approx(0.10)
    assert vi.delta("ppo") == pytest.approx(0.01)
    assert vi.delta("base") == pytest.approx(-0.25)
    assert vi.significant("dpo") is True
    assert vi.significant("ppo") is False
    assert vi.delta("dpo", against="ppo") == pytest.approx(0.09)
    assert hi.delta("dpo") == pytest.approx(0.10)
    assert hi.significant("dpo") is False  # the SFT value has no stderr
    assert hi.delta("ppo") is None and hi.significant("ppo") is False


def test_significance_threshold_is_two_combined_standard_errors():
    se = 0.01
    threshold = 2 * math.sqrt(2) * se  # 0.02828...
    for delta, expected in [(threshold - 0.001, False), (threshold + 0.001, True), (-(threshold + 0.001), True)]:
        _, comps = compare([row("sft", 0.5, se), row("dpo", 0.5 + delta, se)])
        assert comps[0].significant("dpo") is expected, delta
    _, comps = compare([row("sft", 0.5, 0.0), row("dpo", 0.9, 0.0)])
    assert comps[0].significant("dpo") is False  # zero error: no claim


def test_different_protocols_are_never_compared():
    _, comps = compare([row("sft", 0.5, 0.01, protocol="0-shot"), row("dpo", 0.9, 0.01, protocol="25-shot")])
    assert len(comps) == 2
    assert all(c.delta("dpo") is None for c in comps)


def test_render_json(store):
    records = json.loads(render(*compare(store.rows()), "json"))
    assert len(records) == 6
    for r in records:
        assert {"model", "method", "language", "task", "metric", "value"} <= set(r)
    key = {(r["language"], r["method"]): r for r in records}
    assert key[("vi", "dpo")] == {
        "run": "demo", "model": "tiny", "method": "dpo", "language": "vi", "task": "arc", "metric": "acc",
        "value": 0.6, "stderr": 0.01, "n": 100, "protocol": "25-shot",
        "delta_vs_sft": pytest.approx(0.1), "significant": True}
    assert key[("vi", "sft")]["delta_vs_sft"] is None and key[("vi", "sft")]["significant"] is None
    assert key[("vi", "ppo")]["significant"] is False
    assert key[("hi", "dpo")]["significant"] is False


def test_render_csv(store):
    text = render(*compare(store.rows()), "csv")
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == ["run", "model", "method", "language", "task", "metric", "value", "stderr",
                                 "n", "protocol", "delta_vs_sft", "significant"]
    rows = list(reader)
    assert len(rows) == 6
    dpo_vi = next(r for r in rows if r["method"] == "dpo" and r["language"] == "vi")
    assert (dpo_vi["value"], dpo_vi["stderr"], dpo_vi["significant"]) == ("0.6", "0.01", "True")
    sft_hi = next(r for r in rows if r["method"] == "sft" and r["language"] == "hi")
    assert (sft_hi["stderr"], sft_hi["delta_vs_sft"]) == ("", "")


def test_render_markdown(store):
    text = render(*compare(store.rows()), "markdown")
    assert text.splitlines() == [
        "| language | task | metric | base | sft | dpo | ppo | dpo - sft | ppo - sft | n |",
        "|---|---|---|---|---|---|---|---|---|---|",
        "| hi | arc | acc |  | 0.300 | 0.400 ±0.020 |  | +0.100 |  | 100 |",
        "| vi | arc | acc | 0.250 ±0.040 | 0.500 ±0.010 | 0.600 ±0.010 | 0.510 ±0.010 | +0.100* | +0.010 | 100 |",
    ]
    assert table_rows(*compare(store.rows()))[1][7] == "+0.100*"


def test_render_empty_and_unknown_format():
    assert json.loads(render([], [], "json")) == []
    assert render([], [], "csv").splitlines()[0].startswith("run,model,method,language")
    with pytest.raises(ValueError):
        render([], [], "xml")


# ---- the command ---------------------------------------------------------------------------------

def test_leaderboard_command_json(store, capsys):
    store.add([row("sft", 0.7, 0.02, run="other", lang="bn")])
    rc = main(["leaderboard", "--db", str(store.path), "--format", "json"])
    out, err = capsys.readouterr()
    assert (rc, err) == (0, "")
    records = json.loads(out)
    assert len(records) == 7
    assert {(r["run"], r["language"], r["method"]) for r in records} >= {("other", "bn", "sft"),
                                                                         ("demo", "vi", "dpo")}
    rc = main(["leaderboard", "--db", str(store.path), "--format", "json", "--run", "other"])
    out, _ = capsys.readouterr()
    assert rc == 0
    assert [(r["run"], r["model"], r["method"], r["language"], r["task"], r["metric"], r["value"])
            for r in json.loads(out)] == [("other", "tiny", "sft", "bn", "arc", "acc", 0.7)]


def test_leaderboard_command_markdown_csv_and_table(store, capsys):
    assert main(["leaderboard", "--db", str(store.path), "--format", "markdown"]) == 0
    out, _ = capsys.readouterr()
    assert out == render(*compare(store.rows()), "markdown")
    assert main(["leaderboard", "--db", str(store.path), "--format", "csv"]) == 0
    out, _ = capsys.readouterr()
    assert out == render(*compare(store.rows()), "csv")
    assert main(["leaderboard", "--db", str(store.path)]) == 0
    out, _ = capsys.readouterr()
    assert "Leaderboard" in out and "0.600" in out


def test_leaderboard_command_errors(tmp_path, capsys):
    rc = main(["leaderboard", "--db", str(tmp_path / "none.sqlite"), "--format", "json"])
    _, err = capsys.readouterr()
    assert rc == 2
    assert err.startswith(f"error: no results database at {tmp_path / 'none.sqlite'}")
    assert not (tmp_path / "none.sqlite").exists()
    rc = main(["leaderboard", "--db", str(tmp_path / "x.sqlite"), "--format", "xml"])
    _, err = capsys.readouterr()
    assert rc == 2 and "'xml' is not one of" in err
