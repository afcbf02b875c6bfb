"""The results store: rows and their per-item values, transactions, checks and migrations."""

from __future__ import annotations

import math
import os
import re
import sqlite3
from pathlib import Path

import pytest

from okapi_kit import leaderboard
from okapi_kit.errors import OkapiError
from okapi_kit.leaderboard import SCHEMA_VERSION, ResultRow, ResultsStore, check_row


def row(method, value, stderr, *, lang="vi", task="arc", metric="acc", run="demo", n=100,
        protocol="25-shot", model="tiny", run_dir="", items=None) -> ResultRow:
    return ResultRow(run, model, method, lang, task, metric, value, stderr, n, protocol, run_dir, items)


ROWS = [
    row("base", 0.25, 0.04),
    row("sft", 0.50, 0.01),
    row("dpo", 0.60, 0.01),  # +0.10 > 2 * sqrt(2) * 0.01: significant
    row("ppo", 0.51, 0.01),  # +0.01: not significant
    row("sft", 0.30, None, lang="hi"),
    row("dpo", 0.40, 0.02, lang="hi"),  # no SFT stderr: never called significant
]

# okapi-kit 0.1's schema, exactly as it created it (no version mark)
OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    run TEXT NOT NULL,
    model TEXT NOT NULL,
    method TEXT NOT NULL,
    language TEXT NOT NULL,
    task TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    stderr REAL,
    n INTEGER NOT NULL,
    protocol TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (run, model, method, language, task, metric, protocol)
)
"""


# version 2 (the run folder, no items), exactly as okapi-kit wrote it
V2_SCHEMA = """
CREATE TABLE results (
    run TEXT NOT NULL,
    model TEXT NOT NULL,
    method TEXT NOT NULL,
    language TEXT NOT NULL,
    task TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    stderr REAL,
    n INTEGER NOT NULL,
    protocol TEXT NOT NULL,
    created REAL NOT NULL,
    run_dir TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run, model, method, language, task, metric, protocol)
)
"""


def _key(r: ResultRow):
    return (r.run, r.language, r.method, r.task, r.metric, r.protocol)


@pytest.fixture
def store(tmp_path) -> ResultsStore:
    s = ResultsStore(tmp_path / "sub" / "lb.sqlite")  # the folder is created
    s.replace_run("demo", ROWS)
    return s


# ---- storing -------------------------------------------------------------------------------------

def test_store_round_trip_filter_and_runs(store, tmp_path):
    assert sorted(store.rows(), key=_key) == sorted(ROWS, key=_key)
    store.replace_run("other", [row("sft", 0.7, 0.02, run="other", run_dir="/r/other")])
    assert store.rows(run="other") == [row("sft", 0.7, 0.02, run="other", run_dir="/r/other")]
    assert len(store.rows(run="demo")) == 6 and len(store.rows()) == 7
    assert store.rows(run="nope") == []
    assert store.runs() == ["demo", "other"]
    # reopening an existing database keeps its rows
    assert len(ResultsStore(tmp_path / "sub" / "lb.sqlite", create=False).rows()) == 7


def test_replace_run_drops_stale_rows_and_leaves_other_runs(store):
    store.replace_run("other", [row("sft", 0.7, 0.02, run="other")])
    # a changed evaluator option: another n and another protocol for the same task and metric
    new = [row("sft", 0.52, 0.02, n=24, protocol="0-shot", run_dir="/b/demo"),
           row("dpo", 0.58, 0.02, n=24, protocol="0-shot", run_dir="/b/demo")]
    assert store.replace_run("demo", new) == []  # the old rows had no run folder
    assert sorted(store.rows(run="demo"), key=_key) == sorted(new, key=_key)
    assert [r.value for r in store.rows(run="other")] == [0.7]
    # the same name from another folder replaces it too, and says which folder it replaced
    assert store.replace_run("demo", [row("sft", 0.5, 0.02, run_dir="/a/demo")]) == ["/b/demo"]
    assert store.replace_run("demo", [row("sft", 0.5, 0.02, run_dir="/a/demo")]) == []
    assert [r.run_dir for r in store.rows(run="demo")] == ["/a/demo"]
    store.replace_run("demo", [])  # nothing left of the run
    assert store.runs() == ["other"]


def test_replace_run_is_one_transaction(store):
    # make SQLite itself fail half-way through the inserts: the deletion must be undone too
    with sqlite3.connect(store.path) as db:
        db.execute("CREATE TRIGGER boom BEFORE INSERT ON results WHEN NEW.task = 'boom' "
                   "BEGIN SELECT RAISE(ABORT, 'boom'); END")
    db.close()
    with pytest.raises(OkapiError, match="boom") as err:
        store.replace_run("demo", [row("sft", 0.1, 0.01), row("dpo", 0.2, 0.01, task="boom")])
    assert err.value.where == str(store.path)
    assert sorted(store.rows(), key=_key) == sorted(ROWS, key=_key)


def test_replace_run_refuses_rows_of_another_run_and_duplicates(store):
    with pytest.raises(ValueError, match="other"):
        store.replace_run("demo", [row("sft", 0.1, 0.01, run="other")])
    with pytest.raises(OkapiError, match="two results for run 'demo'.*method 'dpo'"):
        store.replace_run("demo", [row("dpo", 0.1, 0.01), row("dpo", 0.2, 0.01)])
    assert sorted(store.rows(), key=_key) == sorted(ROWS, key=_key)  # nothing replaced


def test_add_upserts_the_same_key(store):
    store.add([row("dpo", 0.65, 0.02)])  # same run/model/method/language/task/metric/protocol
    dpo_vi = [r for r in store.rows() if r.method == "dpo" and r.language == "vi"]
    assert dpo_vi == [row("dpo", 0.65, 0.02)]
    assert len(store.rows()) == 6
    store.add([row("dpo", 0.55, 0.02, protocol="0-shot")])  # another protocol is another result
    assert len(store.rows()) == 7


@pytest.mark.parametrize("bad, message", [
    (dict(value=math.nan), "value nan is not a finite number"),
    (dict(value=math.inf), "value inf is not a finite number"),
    (dict(value=-math.inf), "value -inf is not a finite number"),
    (dict(value="0.5"), "value '0.5' is not a finite number"),
    (dict(stderr=math.inf), "stderr inf is not a finite number >= 0"),
    (dict(stderr=-0.1), "stderr -0.1 is not a finite number >= 0"),
    (dict(n=-1), "n -1 is not a count"),
    (dict(n=True), "n True is not a count"),
    (dict(task=""), "task is empty"),
    (dict(metric=None), "metric must be text"),
])
@pytest.mark.parametrize("write", ["replace_run", "add"])
def test_non_finite_and_malformed_values_are_refused_naming_the_row(store, bad, message, write):
    fields = dict(method="dpo", value=0.5, stderr=0.01, lang="bn", task="mmlu", metric="acc_norm")
    fields.update(bad)
    rows = [row("sft", 0.4, 0.01, lang="bn"), row(**fields)]
    with pytest.raises(OkapiError) as err:
        getattr(store, write)(rows) if write == "add" else store.replace_run("demo", rows)
    assert message in err.value.message
    assert "method 'dpo', language 'bn'" in err.value.message  # which row
    assert err.value.hint
    assert sorted(store.rows(), key=_key) == sorted(ROWS, key=_key)  # nothing written
    with pytest.raises(OkapiError, match=re.escape(message)):
        check_row(rows[1])  # the same check, before any store is involved
    check_row(rows[0])


def test_nan_stderr_is_stored_as_unknown(store):
    store.replace_run("demo", [row("sft", 0.5, math.nan), row("dpo", 0.9, 0.01)])
    by_method = {r.method: r for r in store.rows()}
    assert by_method["sft"].stderr is None and by_method["dpo"].stderr == 0.01


# ---- per-item values ---------------------------------------------------------------------------

def _item_count(path) -> int:
    with sqlite3.connect(path) as db:
        count = db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    db.close()
    return count


def test_items_round_trip_with_their_rows(store):
    sft = row("sft", 0.5, 0.25, n=4, items={"q1": 1.0, "q2": 0.0, "q3": 1.0, "q4": 0.0})
    dpo = row("dpo", 0.75, 0.25, n=4, items={"q1": 1.0, "q2": 1.0, "q3": 1.0, "q4": 0.0})
    store.replace_run("demo", [sft, dpo, row("base", 0.25, None, n=4)])
    store.replace_run("other", [row("sft", 0.5, None, run="other", items={"a": 0.5, "b": 0.5})])
    by_method = {r.method: r for r in store.rows(run="demo")}
    assert by_method["sft"] == sft and by_method["dpo"] == dpo
    assert by_method["base"].items is None
    assert [r.items for r in store.rows(run="other")] == [{"a": 0.5, "b": 0.5}]
    assert all(r.items is None for r in store.rows(items=False))
    assert _item_count(store.path) == 10


def test_replaced_and_overwritten_rows_take_their_items_along(store):
    store.replace_run("demo", [row("sft", 0.5, None, items={"q1": 1.0, "q2": 0.0})])
    store.replace_run("keep", [row("sft", 0.5, None, run="keep", items={"k": 1.0})])
    store.replace_run("demo", [row("sft", 1.0, None, items={"q3": 1.0})])
    assert [r.items for r in store.rows(run="demo")] == [{"q3": 1.0}]
    store.add([row("sft", 0.0, None, items={"q4": 0.0, "q5": 0.0})])  # the same key: overwritten
    assert [r.items for r in store.rows(run="demo")] == [{"q4": 0.0, "q5": 0.0}]
    store.add([row("sft", 0.0, None)])  # overwritten by a row without items
    assert [r.items for r in store.rows(run="demo")] == [None]
    store.replace_run("demo", [])
    assert _item_count(store.path) == 1  # only run "keep"'s item is left: none orphaned
    assert store.rows(run="keep")[0].items == {"k": 1.0}


def test_empty_items_are_stored_as_none(store):
    store.replace_run("demo", [row("sft", 0.5, None, items={})])
    assert store.rows()[0].items is None


@pytest.mark.parametrize("items, message", [
    ({"q1": math.nan}, "item 'q1': value nan is not a finite number"),
    ({"q1": math.inf}, "item 'q1': value inf is not a finite number"),
    ({"q1": "1"}, "item 'q1': value '1' is not a finite number"),
    ({"q1": True}, "item 'q1': value True is not a finite number"),
    ({1: 1.0}, "item id 1 is not text"),
    ([1.0, 0.0], "items must map item ids to values, not list"),
])
@pytest.mark.parametrize("write", ["replace_run", "add"])
def test_bad_items_are_refused_naming_the_row_and_item(store, items, message, write):
    rows = [row("sft", 0.4, 0.01, lang="bn"), row("dpo", 0.5, 0.01, lang="bn", items=items)]
    with pytest.raises(OkapiError) as err:
        store.add(rows) if write == "add" else store.replace_run("demo", rows)
    assert message in err.value.message and "method 'dpo', language 'bn'" in err.value.message
    assert sorted(store.rows(), key=_key) == sorted(ROWS, key=_key)  # nothing written
    with pytest.raises(OkapiError, match=re.escape(message)):
        check_row(rows[1])


def test_items_survive_a_failed_transaction(store):
    store.replace_run("demo", [row("sft", 0.5, None, items={"q1": 1.0, "q2": 0.0})])
    with sqlite3.connect(store.path) as db:
        db.execute("CREATE TRIGGER boom BEFORE INSERT ON items WHEN NEW.item = 'boom' "
                   "BEGIN SELECT RAISE(ABORT, 'boom'); END")
    db.close()
    with pytest.raises(OkapiError, match="boom"):
        store.replace_run("demo", [row("sft", 0.1, None, items={"ok": 1.0, "boom": 0.0})])
    assert [r.items for r in store.rows()] == [{"q1": 1.0, "q2": 0.0}]


def test_connections_are_closed(store):
    def open_on_db() -> list[str]:
        fds = Path("/proc/self/fd")
        links = []
        for fd in fds.iterdir():
            try:
                links.append(os.readlink(fd))
            except OSError:
                pass
        return [p for p in links if p.startswith(str(store.path))]

    store.rows(), store.runs(), store.replace_run("x", [row("sft", 0.1, None, run="x")])
    store.add([row("sft", 0.2, None, run="x")])
    ResultsStore(store.path)
    assert open_on_db() == []


# ---- opening -------------------------------------------------------------------------------------

def test_bad_paths_are_refused_at_once(tmp_path):
    (tmp_path / "folder.sqlite").mkdir()
    with pytest.raises(OkapiError, match="a folder, not a results database"):
        ResultsStore(tmp_path / "folder.sqlite")
    text = tmp_path / "notes.txt"
    text.write_text("name: demo\n" * 10)
    for create in (True, False):
        with pytest.raises(OkapiError, match="not an SQLite database") as err:
            ResultsStore(text, create=create)
        assert err.value.where == str(text) and "--db" in err.value.hint
    assert text.read_text() == "name: demo\n" * 10  # untouched
    with pytest.raises(OkapiError, match="cannot create a results database here: .*notes.txt is a file"):
        ResultsStore(text / "lb.sqlite")
    with pytest.raises(OkapiError, match=r"no results database here \(no such file\)"):
        ResultsStore(tmp_path / "missing.sqlite", create=False)
    assert not (tmp_path / "missing.sqlite").exists()
    # check() reads only: a new path is fine and stays absent
    ResultsStore.check(tmp_path / "new" / "lb.sqlite")
    assert not (tmp_path / "new").exists()


def test_unreadable_file_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "lb.sqlite"
    ResultsStore(path)

    def no_access(file, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(file))

    # as root, chmod cannot make a file unreadable: make opening it fail instead
    monkeypatch.setattr(leaderboard, "open", no_access, raising=False)
    with pytest.raises(OkapiError, match="cannot read the results database: Permission denied"):
        ResultsStore(path, create=False)


def test_another_programs_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "cache.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE cache (key TEXT PRIMARY KEY, value TEXT)")
    db.close()
    with pytest.raises(OkapiError, match=r"not an okapi-kit results database \(its tables: cache\)"):
        ResultsStore(path)
    # a `results` table that okapi-kit did not write
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE results (id INTEGER, score REAL)")
    db.close()
    with pytest.raises(OkapiError, match="not an okapi-kit results database"):
        ResultsStore(other)
    with sqlite3.connect(other) as db:
        assert [r[1] for r in db.execute("PRAGMA table_info(results)")] == ["id", "score"]
    db.close()


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "lb.sqlite"
    ResultsStore(path).replace_run("demo", [row("sft", 0.5, 0.01)])
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    for create in (True, False):
        with pytest.raises(OkapiError, match=f"schema version {SCHEMA_VERSION + 1}") as err:
            ResultsStore(path, create=create)
        assert "upgrade okapi-kit" in err.value.hint


def test_old_schema_is_migrated_in_place(tmp_path):
    path = tmp_path / "lb.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(OLD_SCHEMA)
        db.executemany("INSERT INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?)", [
            ("exp", "tiny", "sft", "vi", "arc", "acc", 0.5, 0.01, 100, "25-shot", 1.0),
            ("exp", "tiny", "dpo", "vi", "arc", "acc", 0.6, None, 100, "25-shot", 1.0),
            ("old", "tiny", "sft", "bn", "arc", "acc", 0.3, 0.02, 48, "0-shot", 1.0)])
    db.close()
    store = ResultsStore(path, create=False)  # a reader migrates too
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert db.execute("SELECT COUNT(*) FROM results").fetchone() == (3,)
    db.close()
    assert store.runs() == ["exp", "old"]
    assert sorted(store.rows(run="exp"), key=_key) == [
        row("dpo", 0.6, None, run="exp"), row("sft", 0.5, 0.01, run="exp")]
    # the migrated table works like a new one
    store.replace_run("exp", [row("sft", 0.55, 0.01, run="exp", run_dir="/runs/exp")])
    assert store.rows(run="exp") == [row("sft", 0.55, 0.01, run="exp", run_dir="/runs/exp")]
    assert ResultsStore(path).rows(run="old") == [
        row("sft", 0.3, 0.02, run="old", lang="bn", n=48, protocol="0-shot")]


def test_version_2_is_migrated_and_gets_items(tmp_path):
    path = tmp_path / "lb.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(V2_SCHEMA)
        db.executemany("INSERT INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", [
            ("exp", "tiny", "sft", "vi", "arc", "acc", 0.5, 0.01, 100, "25-shot", 1.0, "/runs/exp"),
            ("exp", "tiny", "dpo", "vi", "arc", "acc", 0.6, None, 100, "25-shot", 1.0, "/runs/exp")])
        db.execute(f"PRAGMA application_id = {leaderboard.APPLICATION_ID}")
        db.execute("PRAGMA user_version = 2")
    db.close()
    assert ResultsStore(path, create=False).rows(run="exp") == [
        row("dpo", 0.6, None, run="exp", run_dir="/runs/exp"),
        row("sft", 0.5, 0.01, run="exp", run_dir="/runs/exp")]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (3,)
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    db.close()
    assert tables == {"results", "items"}
    store = ResultsStore(path)
    store.add([row("sft", 0.5, 0.01, run="exp", items={"q1": 1.0, "q2": 0.0})])  # the key still upserts
    assert {r.method: r.items for r in store.rows(run="exp")} == {"sft": {"q1": 1.0, "q2": 0.0}, "dpo": None}
    store.replace_run("exp", [])
    assert store.rows() == [] and _item_count(path) == 0


def test_empty_file_becomes_a_database(tmp_path):
    path = tmp_path / "lb.sqlite"
    path.touch()
    ResultsStore(path).replace_run("demo", [row("sft", 0.5, 0.01)])
    assert ResultsStore(path, create=False).runs() == ["demo"]
