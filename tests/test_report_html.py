"""The HTML page (checked in headless Chromium where it is installed), the PNG plot, and the
command's --format html, --output, --plot and --compare."""

from __future__ import annotations

import base64
import re
import shutil
import struct
import subprocess
import sys

import pytest

from okapi_kit.cli import main
from okapi_kit.errors import OkapiError
from okapi_kit.leaderboard import ResultRow, ResultsStore
from okapi_kit.report import build_report, plot_png, render_html, write_plot, write_run_page

LANGS = ["vi", "de", "hi", "bn", "sw"]
PNG = b"\x89PNG\r\n\x1a\n"


def row(method, value, stderr, *, lang="vi", task="arc", metric="acc", run="demo", items=None) -> ResultRow:
    return ResultRow(run, "tiny", method, lang, task, metric, value, stderr, 40, "25-shot", "", items)


def rows() -> list[ResultRow]:
    out = []
    for i, lang in enumerate(LANGS):
        sft = [1] * 20 + [0] * 20
        dpo = [1] * 20 + [1] * (12 if lang == "vi" else i) + [0] * (20 - (12 if lang == "vi" else i))
        for method, correct in (("sft", sft), ("dpo", dpo), ("base", [1] * 8 + [0] * 32)):
            items = {f"q{k}": float(c) for k, c in enumerate(correct)}
            out.append(row(method, sum(correct) / 40, None, lang=lang, items=items))
        out.append(row("sft", 0.5, 0.02, lang=lang, task="hellaswag", metric="acc_norm"))
        out.append(row("dpo", 0.49, 0.02, lang=lang, task="hellaswag", metric="acc_norm"))
    return out


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG)
    return struct.unpack(">II", data[16:24])  # the IHDR chunk's width and height


def test_page_is_self_contained_and_answers_first():
    page = render_html(build_report(rows()), title="Leaderboard: demo <run>")
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>Leaderboard: demo &lt;run&gt;</title>" in page  # escaped
    # nothing fetched from elsewhere: no scripts, links or remote sources
    assert "<script" not in page and "<link" not in page and "http://" not in page and "https://" not in page
    assert page.index('id="answer"') < page.index('id="plot"') < page.index('id="tables"')
    assert re.search(r'<li class="better"><strong>better:</strong> vi \(arc · acc \+0\.300\)', page)
    for lang in LANGS:
        assert page.count(f'<tr data-language="{lang}">') == 2  # one row per task
    assert page.count('<tr class="average">') == 2 * 5  # H, M, L, other, all per task
    # the plot is an embedded PNG
    data = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page).group(1)
    width, height = png_size(base64.b64decode(data))
    assert width > 500 and height > 400
    # the interval's method on hover, the verdict as a class
    assert 'class="better" title="paired bootstrap over items (40)"' in page


def test_page_without_results_or_without_matplotlib(monkeypatch):
    assert "No evaluation results yet." in render_html(build_report([]))
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if matplotlib were missing
    page = render_html(build_report(rows()))
    assert "No plot: plots need matplotlib, which is not installed (pip install matplotlib)." in page
    assert '<tr data-language="vi">' in page
    with pytest.raises(OkapiError, match="plots need matplotlib") as err:
        plot_png(build_report(rows()))
    assert err.value.hint == "pip install matplotlib"


def test_plot_png(tmp_path):
    report = build_report(rows())
    png = plot_png(report)
    width, height = png_size(png)
    assert height > width / 2  # two task panels, one above the other
    assert plot_png(build_report([row("sft", 0.5, 0.01)])) is None  # nothing compared
    path = write_plot(report, tmp_path / "sub" / "plot.png")
    assert path.read_bytes().startswith(PNG)
    with pytest.raises(OkapiError, match="nothing to plot"):
        write_plot(build_report([row("sft", 0.5, 0.01)]), tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_write_run_page(tmp_path):
    db = tmp_path / "lb.sqlite"
    store = ResultsStore(db)
    store.replace_run("demo", rows())
    store.replace_run("other", [row("sft", 0.9, 0.01, run="other", lang="ta")])
    path = write_run_page(db, "demo", tmp_path / "run" / "leaderboard.html")
    page = path.read_text(encoding="utf-8")
    assert "<h1>Leaderboard: demo</h1>" in page and '<tr data-language="ta">' not in page
    assert '<tr data-language="sw">' in page
    with pytest.raises(OkapiError, match="no results database here"):
        write_run_page(tmp_path / "missing.sqlite", "demo", tmp_path / "x.html")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium is not installed")
def test_page_renders_in_headless_chromium(tmp_path):
    path = tmp_path / "leaderboard.html"
    path.write_text(render_html(build_report(rows()), title="Leaderboard: demo"), encoding="utf-8")
    proc = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                           path.as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    for lang in LANGS:  # the rows as the browser parsed them
        assert len(re.findall(rf'<tr data-language="{lang}">', dom)) == 2
    assert re.search(r"<h3>dpo vs sft: better in \d, worse in \d, not distinguishable in \d of 10", dom)
    assert re.search(r'<img alt="[^"]*" src="data:image/png;base64,', dom)


# ---- the command ---------------------------------------------------------------------------------

@pytest.fixture
def db(tmp_path):
    store = ResultsStore(tmp_path / "lb.sqlite")
    store.replace_run("demo", rows())
    return store.path


def test_command_html_to_stdout_and_file(db, tmp_path, capsys):
    assert main(["leaderboard", "--db", str(db), "--format", "html"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("<!DOCTYPE html>") and '<tr data-language="bn">' in out
    page = tmp_path / "out" / "page.html"
    assert main(["leaderboard", "--db", str(db), "--format", "html", "--output", str(page)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and f"wrote {page}" in captured.err
    assert '<tr data-language="bn">' in page.read_text(encoding="utf-8")


def test_command_plot_markdown_file_and_compare(db, tmp_path, capsys):
    plot, md = tmp_path / "plot.png", tmp_path / "lb.md"
    assert main(["leaderboard", "--db", str(db), "--compare", "sft", "dpo", "--plot", str(plot),
                 "--format", "markdown", "--output", str(md)]) == 0
    assert plot.read_bytes().startswith(PNG)
    text = md.read_text(encoding="utf-8")
    assert text.startswith("# Leaderboard\n") and "**dpo vs sft: better in" in text
    assert main(["leaderboard", "--db", str(db), "--compare", "base", "dpo", "--format", "json"]) == 0
    capsys.readouterr()
    assert main(["leaderboard", "--db", str(db), "--compare", "sft", "ppo"]) == 2
    err = capsys.readouterr().err
    assert "error: --compare: no results of a method named 'ppo'" in err
    assert main(["leaderboard", "--db", str(db), "--compare", "sft"]) == 2
    assert "requires 2 arguments" in capsys.readouterr().err
    table = tmp_path / "lb.txt"
    assert main(["leaderboard", "--db", str(db), "--output", str(table)]) == 0
    text = table.read_text(encoding="utf-8")
    assert text.startswith("Leaderboard\n") and "\x1b[" not in text  # plain text, no colour codes
    assert max(map(len, text.splitlines())) <= 100 and "dpo vs sft: better in" in text
    assert main(["leaderboard", "--db", str(db), "--format", "csv", "--output", str(tmp_path)]) == 2
    assert "a folder, not a file" in capsys.readouterr().err
