"""The ``leaderboard`` command: the answer first, then rich tables at 80 columns; its formats."""

from __future__ import annotations

import io
import json
import re

import pytest
from rich.console import Console

from okapi_kit.cli import main
from okapi_kit.cli.leaderboard import print_leaderboard
from okapi_kit.leaderboard import ResultRow, ResultsStore
from okapi_kit.report import build_report, render

LANGS = ["vi", "bn", "hi"]
TASKS = [("arc", "acc"), ("arc", "acc_norm"), ("hellaswag", "acc_norm"), ("language_fidelity", "fidelity")]


def row(method, value, stderr, *, lang="vi", task="arc", metric="acc", run="demo", n=100,
        protocol="25-shot", model="tiny:llama:128x2") -> ResultRow:
    return ResultRow(run, model, method, lang, task, metric, value, stderr, n, protocol)


def grid(methods, tasks=TASKS, langs=LANGS) -> list[ResultRow]:
    """Every method on every task and language, each value distinct so it can be found."""
    out = []
    for t, (task, metric) in enumerate(tasks):
        for li, lang in enumerate(langs):
            for m, method in enumerate(methods):
                out.append(row(method, 0.1 + t / 10 + li / 100 + m / 1000, 0.0125 + m / 10000,
                               lang=lang, task=task, metric=metric))
    return out


def printed(rows, width=80) -> list[str]:
    console = Console(width=width, record=True, file=io.StringIO())
    print_leaderboard(rows, "Leaderboard: demo", console=console)
    return console.export_text().splitlines()


def assert_readable(lines: list[str], rows: list[ResultRow], width=80) -> None:
    """No line too long, every task and metric name whole on a line, every value with its stderr."""
    assert max(len(line) for line in lines) <= width
    text = "\n".join(lines)
    for r in rows:
        assert re.search(rf"(^|\s){re.escape(r.task)} · {re.escape(r.metric)}$", text, re.M), (r.task, r.metric)
        # the value and its stderr side by side on one line: "0.500 ±0.010" or "0.500   0.010"
        pair = re.compile(rf"(^|\s){r.value:.3f}\s+±?{r.stderr:.3f}(\s|$)")
        assert any(pair.search(line) for line in lines), (r.value, r.stderr)


@pytest.mark.parametrize("methods, width", [(["sft", "dpo"], 80), (["base", "sft", "dpo"], 100)])
def test_few_methods_get_a_column_each(methods, width):
    rows = grid(methods)
    lines = printed(rows, width=width)
    assert_readable(lines, rows, width=width)
    header = next(line for line in lines if line.startswith("lang"))
    assert header.split() == ["lang", "grp", "n", *methods, "dpo", "-", "sft"]
    # each language's row, then the resource group averages
    vi = next(line for line in lines if line.startswith("vi "))
    assert vi.split()[:3] == ["vi", "H", "100"]
    averages = [line.split()[:3] for line in lines if line.startswith("avg ")]
    assert averages[:4] == [["avg", "H", "1"], ["avg", "M", "1"], ["avg", "L", "1"], ["avg", "all", "3"]]


def test_the_base_model_too_is_a_row_each_at_80_columns():
    rows = grid(["base", "sft", "dpo"])
    lines = printed(rows)
    assert_readable(lines, rows)
    header = next(line for line in lines if line.startswith("lang"))
    assert header.split() == ["lang", "n", "method", "value", "vs", "sft", "95%", "CI"]
    # the base model's difference from SFT, for reference
    base = next(line for line in lines if line.startswith("vi ") and "base" in line)
    assert base.split()[2:6] == ["base", "0.100", "±0.013", "-0.001"]


def test_the_answer_comes_first():
    rows = [row("sft", 0.5, 0.01), row("dpo", 0.6, 0.01), row("ppo", 0.5, 0.01),
            row("sft", 0.5, 0.01, lang="bn"), row("dpo", 0.4, 0.01, lang="bn"), row("ppo", 0.5, 0.01, lang="bn"),
            row("sft", 0.5, 0.01, lang="hi", task="hellaswag", metric="acc_norm"),
            row("dpo", 0.51, 0.01, lang="hi", task="hellaswag", metric="acc_norm")]
    lines = printed(rows)
    assert max(map(len, lines)) <= 80
    first_table = next(i for i, line in enumerate(lines) if line.startswith("lang"))
    answer = lines[:first_table]
    dpo = answer.index("dpo vs sft: better in 1, worse in 1, not distinguishable in 1 of 3")
    assert answer[dpo + 1].split() == ["better", "vi", "arc", "·", "acc", "+0.100"]
    assert answer[dpo + 2].split() == ["worse", "bn", "arc", "·", "acc", "-0.100"]
    assert answer[dpo + 3].split() == ["not", "distinguishable", "hi", "hellaswag", "·", "acc_norm"]
    assert "ppo vs sft: better in 0, worse in 0, not distinguishable in 2 of 2" in answer


def test_many_methods_and_long_names_get_a_row_each():
    methods = ["base", "sft", "dpo", "ppo", "rloo_with_a_long_label"]
    tasks = [("arc_challenge_multilingual", "acc_norm_with_a_suffix"), ("m" * 60, "x" * 15)]
    rows = grid(methods, tasks=tasks)
    lines = printed(rows)
    assert_readable(lines, rows)
    header = next(line for line in lines if line.startswith("lang"))
    assert header.split() == ["lang", "n", "method", "value", "vs", "sft", "95%", "CI"]
    # a row per language, then per resource group average (H, M, L and all)
    table_rows = [line for line in lines if line.split()[:1] == ["rloo_with_a_long_label"]
                  and " vs sft: " not in line]  # not the answer's heading
    assert len(table_rows) == (len(LANGS) + 4) * len(tasks)


def test_rows_that_differ_only_in_protocol_show_it():
    rows = [row("sft", 0.5, 0.01), row("dpo", 0.6, 0.01),
            row("sft", 0.4, 0.02, n=24, protocol="lm-eval 0.4.9; arc_vi; 0-shot; loglikelihood; " * 2)]
    lines = printed(rows)
    assert max(map(len, lines)) <= 80
    header = next(line for line in lines if line.startswith("lang"))
    assert header.split()[-1] == "protocol"
    assert any(line.split()[:5] == ["vi", "24", "sft", "0.400", "±0.020"] for line in lines)


def test_each_run_and_model_is_its_own_table():
    rows = grid(["sft", "dpo"], tasks=TASKS[:1]) + [row("sft", 0.9, 0.01, run="other", model="m2")]
    lines = printed(rows)
    assert "run demo · model tiny:llama:128x2" in lines and "run other · model m2" in lines
    other = lines[lines.index("run other · model m2"):]
    assert not any("0.100" in line for line in other) and any("0.900" in line for line in other)


def test_nothing_to_show():
    assert printed([]) == ["no evaluation results yet"]


# ---- the command ---------------------------------------------------------------------------------

@pytest.fixture
def store(tmp_path) -> ResultsStore:
    s = ResultsStore(tmp_path / "lb.sqlite")
    s.replace_run("demo", grid(["base", "sft", "dpo"]))
    s.replace_run("other", [row("sft", 0.7, 0.02, run="other", lang="bn")])
    return s


def test_leaderboard_command_json(store, capsys):
    assert main(["leaderboard", "--db", str(store.path), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    data = json.loads(out)
    assert len(data["results"]) == 3 * 3 * 4 + 1
    assert [(s["method"], s["against"]) for s in data["summary"]] == [("dpo", "sft")]
    assert main(["leaderboard", "--db", str(store.path), "--format", "json", "--run", "other"]) == 0
    out, _ = capsys.readouterr()
    assert [(r["run"], r["method"], r["language"], r["task"], r["metric"], r["value"])
            for r in json.loads(out)["results"]] == [("other", "sft", "bn", "arc", "acc", 0.7)]


def test_leaderboard_command_markdown_csv_and_table(store, capsys, monkeypatch):
    for fmt in ("markdown", "csv"):
        assert main(["leaderboard", "--db", str(store.path), "--format", fmt]) == 0
        out, _ = capsys.readouterr()
        assert out == render(build_report(store.rows()), fmt)
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["leaderboard", "--db", str(store.path), "--run", "demo"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Leaderboard: demo"
    assert_readable(lines, store.rows(run="demo"))
    assert not any("other" in line for line in lines)


def test_unknown_run_lists_the_known_ones(store, capsys, tmp_path):
    assert main(["leaderboard", "--db", str(store.path), "--run", "dmeo"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --run: no results of a run named 'dmeo' in {store.path}")
    assert "hint: did you mean 'demo'?" in err
    assert main(["leaderboard", "--db", str(store.path), "--run", "zzz"]) == 2
    assert "hint: choose one of: demo, other" in capsys.readouterr().err
    empty = ResultsStore(tmp_path / "empty.sqlite")
    assert main(["leaderboard", "--db", str(empty.path), "--run", "demo"]) == 2
    assert "the database holds no results yet" in capsys.readouterr().err


def test_bad_databases(tmp_path, capsys):
    missing = tmp_path / "none.sqlite"
    assert main(["leaderboard", "--db", str(missing), "--format", "json"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {missing}: no results database here")
    assert not missing.exists()
    (tmp_path / "dir").mkdir()
    assert main(["leaderboard", "--db", str(tmp_path / "dir")]) == 2
    assert f"{tmp_path / 'dir'}: a folder, not a results database" in capsys.readouterr().err
    (tmp_path / "config.yaml").write_text("name: demo\n")
    assert main(["leaderboard", "--db", str(tmp_path / "config.yaml")]) == 2
    err = capsys.readouterr().err
    assert "config.yaml: not an SQLite database" in err and "Traceback" not in err
    assert main(["leaderboard", "--db", str(tmp_path / "x.sqlite"), "--format", "xml"]) == 2
    assert "'xml' is not one of" in capsys.readouterr().err
