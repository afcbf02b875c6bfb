"""The results store (SQLite).

The database has two tables: ``results``, one row per (run, model, method, language, task,
metric, protocol), and ``items``, the per-item values behind a result (one row per result and
item id; deleted with their result). Its schema version is kept in ``PRAGMA user_version`` and
the file is marked as okapi-kit's with ``PRAGMA application_id``; older versions are migrated in
place when opened. The comparisons and their renderings live in :mod:`okapi_kit.report`.
"""

from __future__ import annotations

import math
import numbers
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import OkapiError

SCHEMA_VERSION = 3
APPLICATION_ID = 0x4F4B4150  # "OKAP": tells our results databases from other SQLite files
SQLITE_HEADER = b"SQLite format 3\x00"

# ``id`` is an explicit INTEGER PRIMARY KEY: VACUUM may renumber implicit rowids, and ``items``
# refers to it.
RESULTS_TABLE = """
CREATE TABLE {name} (
    id INTEGER PRIMARY KEY,
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
    UNIQUE (run, model, method, language, task, metric, protocol)
)
"""
ITEMS_TABLE = """
CREATE TABLE items (
    result INTEGER NOT NULL REFERENCES results (id) ON DELETE CASCADE,
    item TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (result, item)
) WITHOUT ROWID
"""

# Version 1 (okapi-kit 0.1) had no version mark: a `results` table with exactly these columns.
_V1_COLUMNS = {"run", "model", "method", "language", "task", "metric", "value", "stderr", "n",
               "protocol", "created"}
_KEY = ("run", "model", "method", "language", "task", "metric", "protocol")
_COLUMNS = ("run", "model", "method", "language", "task", "metric", "value", "stderr", "n",
            "protocol", "run_dir")
_HINT = "pass --db a results database written by okapi-kit, or a new path"


@dataclass
class ResultRow:
    """One score: a method's value on one task and metric in one language, as measured by ``protocol``.

    ``run`` is the run's name (the config's ``name``); ``run_dir`` the run folder, for information.
    ``items`` (optional) are the per-item values behind ``value`` (item id -> value, one per
    independent unit, e.g. per prompt), for paired comparisons; an empty mapping is stored as none.
    """

    run: str
    model: str
    method: str
    language: str
    task: str
    metric: str
    value: float
    stderr: float | None
    n: int
    protocol: str
    run_dir: str = ""
    items: dict[str, float] | None = None


class ResultsStore:
    """The results database at ``path``, checked (and created or migrated) when constructed.

    ``create=True`` (a writer) makes a new database, and its folder, when none is at ``path``;
    ``create=False`` (a reader) makes a missing file an OkapiError. A path that is a folder, an
    unreadable file, a file that is not SQLite, another program's SQLite database or one written
    by a newer okapi-kit is an OkapiError at once, before any work is done.

    Values must be finite numbers: a NaN or infinite ``value`` or item value is refused with an
    OkapiError naming the row (nothing is written). A NaN ``stderr`` means "not known" and is stored as NULL (no
    change is then called significant); an infinite or negative ``stderr`` is refused.
    """

    def __init__(self, path: Path | str, *, create: bool = True):
        self.path = Path(path).expanduser()
        self.check(self.path, must_exist=not create)
        if create and self.path.exists() and not os.access(self.path, os.W_OK):
            raise OkapiError("the results database is read-only", where=str(self.path),
                             hint="make it writable, or pass --db another path")
        if create:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OkapiError(f"cannot create the folder for the results database: {exc.strerror}",
                                 where=str(self.path.parent), hint=_HINT) from exc
        # a reader never writes: an empty file simply holds no results yet
        self._empty = not create and self.path.stat().st_size == 0
        if self._empty:
            return
        with self._connect() as db:
            if _version(db, self.path) != SCHEMA_VERSION:
                self._upgrade(db)

    @classmethod
    def check(cls, path: Path | str, *, must_exist: bool = False) -> None:
        """Raise OkapiError unless ``path`` can hold a results database; reads, never writes.

        A missing file is fine (it will be created) unless ``must_exist``; an existing one must be
        an okapi-kit results database of this or an older schema version.
        """
        path = Path(path).expanduser()
        where = str(path)
        if path.is_dir():
            raise OkapiError("a folder, not a results database", where=where, hint=_HINT)
        if not path.exists():
            if must_exist:
                raise OkapiError("no results database here (no such file)", where=where,
                                 hint="run a pipeline first, or pass --db PATH")
            parent = next((p for p in path.parents if p.exists()), None)
            if parent is not None and not parent.is_dir():
                raise OkapiError(f"cannot create a results database here: {parent} is a file",
                                 where=where, hint=_HINT)
            return
        try:
            with open(path, "rb") as f:
                head = f.read(len(SQLITE_HEADER))
        except OSError as exc:
            raise OkapiError(f"cannot read the results database: {exc.strerror}", where=where,
                             hint="check the file's permissions, or pass --db another path") from exc
        if not head:
            return  # an empty file is an empty SQLite database
        if head != SQLITE_HEADER:
            raise OkapiError("not an SQLite database", where=where, hint=_HINT)
        uri = path.resolve().as_uri() + "?mode=ro"
        try:
            with closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
                version = _version(db, path)
        except sqlite3.DatabaseError as exc:
            raise OkapiError(f"cannot read the results database: {exc}", where=where, hint=_HINT) from exc
        if version > SCHEMA_VERSION:
            raise OkapiError(
                f"the results database has schema version {version}; this okapi-kit reads versions "
                f"up to {SCHEMA_VERSION}", where=where,
                hint="upgrade okapi-kit, or pass --db another path")

    # ------------------------------------------------------------------ connections

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection that is always closed; SQLite errors become OkapiErrors naming the file."""
        try:
            # isolation_level=None: no implicit transactions; every write says BEGIN IMMEDIATE itself
            with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as db:
                db.execute("PRAGMA foreign_keys = ON")  # a deleted result takes its items along
                yield db
        except sqlite3.DatabaseError as exc:  # also OperationalError: locked, read-only, disk full
            hint = ("another process holds it; try again when that one has finished"
                    if "locked" in str(exc) else _HINT)
            raise OkapiError(f"results database error: {exc}", where=str(self.path), hint=hint) from exc

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it is committed, or none of it."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.in_transaction:  # some errors (disk full) have already rolled it back
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _upgrade(self, db: sqlite3.Connection) -> None:
        """Create the schema, or migrate an older one, in one transaction."""
        db.execute("BEGIN IMMEDIATE")
        try:
            version = _version(db, self.path)  # again, now that we hold the write lock
            if version == 0:
                db.execute(RESULTS_TABLE.format(name="results"))
                db.execute(ITEMS_TABLE)
            else:
                while version < SCHEMA_VERSION:
                    _MIGRATIONS[version](db)
                    version += 1
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # ------------------------------------------------------------------ writing

    def replace_run(self, run: str, rows: list[ResultRow]) -> list[str]:
        """Replace every row of ``run`` by ``rows`` in one transaction; ``[]`` deletes the run.

        Every row must belong to ``run``. Returns the run folders of the replaced rows that differ
        from the new rows' (another folder used the same run name), so a caller can say so.
        """
        if not isinstance(run, str) or not run:
            raise ValueError("replace_run needs a run name")
        if stray := sorted({r.run for r in rows if r.run != run}):
            raise ValueError(f"rows of run(s) {stray} given to replace_run({run!r})")
        values = self._checked(rows, unique=True)
        with self._transaction() as db:
            old = {d for (d,) in db.execute("SELECT DISTINCT run_dir FROM results WHERE run = ?", (run,))}
            db.execute("DELETE FROM results WHERE run = ?", (run,))  # items go by ON DELETE CASCADE
            _insert(db, values)
        return sorted(old - {r.run_dir for r in rows} - {""})

    def add(self, rows: Iterable[ResultRow]) -> None:
        """Insert or replace rows one by one (for imports): a row with the same key overwrites,
        items included; all rows in one transaction."""
        values = self._checked(list(rows), unique=False)
        where = " AND ".join(f"{k} = ?" for k in _KEY)
        with self._transaction() as db:
            for row, _ in values:
                db.execute(f"DELETE FROM results WHERE {where}", [row[_COLUMNS.index(k)] for k in _KEY])
            _insert(db, values)

    def _checked(self, rows: list[ResultRow], *, unique: bool) -> list[tuple[tuple, list[tuple]]]:
        """Rows as SQL parameters (with their items), after refusing what must not be stored."""
        now, out, seen = time.time(), [], set()
        for r in rows:
            values, items = _row_values(r), _item_values(r)
            key = tuple(getattr(r, k) for k in _KEY)
            if unique and key in seen:
                raise OkapiError(f"two results for {_describe(r)}", where=f"results of run {r.run!r}",
                                 hint="two evaluators report the same task, metric and protocol; "
                                      "rename one's task")
            seen.add(key)
            out.append(((*values, now), items))
        return out

    # ------------------------------------------------------------------ reading

    def rows(self, run: str | None = None, *, items: bool = True) -> list[ResultRow]:
        """All rows, or only those of ``run``, in a stable order; with their items unless
        ``items=False`` (rows without items have ``items=None``)."""
        if getattr(self, "_empty", False):
            return []
        query = f"SELECT id, {', '.join(_COLUMNS)} FROM results"
        args: tuple = ()
        if run is not None:
            query, args = query + " WHERE run = ?", (run,)
        query += " ORDER BY run, model, language, task, metric, protocol, method"
        with self._connect() as db:
            found = {row[0]: ResultRow(*row[1:]) for row in db.execute(query, args)}
            if items and found:
                item_query = "SELECT result, item, value FROM items"
                if run is not None:
                    item_query += " WHERE result IN (SELECT id FROM results WHERE run = ?)"
                for result, item, value in db.execute(item_query + " ORDER BY result, item", args):
                    row = found[result]
                    if row.items is None:
                        row.items = {}
                    row.items[item] = value
        return list(found.values())

    def runs(self) -> list[str]:
        """The names of the runs with results, sorted."""
        if getattr(self, "_empty", False):
            return []
        with self._connect() as db:
            return [run for (run,) in db.execute("SELECT DISTINCT run FROM results ORDER BY run")]


_INSERT = f"INSERT INTO results ({', '.join(_COLUMNS)}, created) VALUES ({', '.join('?' * (len(_COLUMNS) + 1))})"


def _insert(db: sqlite3.Connection, values: list[tuple[tuple, list[tuple]]]) -> None:
    """Insert checked rows and their items (inside the caller's transaction)."""
    for row, items in values:
        result = db.execute(_INSERT, row).lastrowid
        if items:
            db.executemany("INSERT INTO items (result, item, value) VALUES (?, ?, ?)",
                           [(result, item, value) for item, value in items])


def _version(db: sqlite3.Connection, path: Path) -> int:
    """The schema version of an open database: 0 for an empty one, 1 for okapi-kit 0.1's."""
    app_id = db.execute("PRAGMA application_id").fetchone()[0]
    version = db.execute("PRAGMA user_version").fetchone()[0]
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if app_id == APPLICATION_ID:
        return version
    if app_id == 0 and version == 0 and not tables:
        return 0
    if app_id == 0 and version == 0 and "results" in tables:
        columns = {row[1] for row in db.execute("PRAGMA table_info(results)")}
        if columns == _V1_COLUMNS:
            return 1
    shown = ", ".join(sorted(tables)) or "none"
    raise OkapiError("an SQLite database, but not an okapi-kit results database "
                     f"(its tables: {shown})", where=str(path), hint=_HINT)


def _migrate_1_to_2(db: sqlite3.Connection) -> None:
    """Version 2 adds the run folder; version-1 rows were keyed by the folder's basename, which
    is the config's name for runs in the default folder, so ``run`` is kept as it is."""
    db.execute("ALTER TABLE results ADD COLUMN run_dir TEXT NOT NULL DEFAULT ''")


def _migrate_2_to_3(db: sqlite3.Connection) -> None:
    """Version 3 adds per-item values: ``results`` gets an explicit ``id`` (the table is rebuilt,
    rows kept as they are) and the ``items`` table refers to it."""
    columns = ", ".join((*_COLUMNS, "created"))
    db.execute(RESULTS_TABLE.format(name="results_v3"))
    db.execute(f"INSERT INTO results_v3 ({columns}) SELECT {columns} FROM results")
    db.execute("DROP TABLE results")
    db.execute("ALTER TABLE results_v3 RENAME TO results")
    db.execute(ITEMS_TABLE)


_MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _migrate_1_to_2, 2: _migrate_2_to_3}


def _describe(r: ResultRow) -> str:
    return (f"run {r.run!r}, model {r.model!r}, method {r.method!r}, language {r.language!r}, "
            f"task {r.task!r}, metric {r.metric!r}, protocol {r.protocol!r}")


def check_row(row: ResultRow) -> None:
    """Raise the OkapiError that storing ``row`` would raise (see ResultsStore), without storing it:
    for a stage that wants to refuse a bad score when the evaluator returns it."""
    _row_values(row)
    _item_values(row)


def _refusal(r: ResultRow, problem: str, hint: str) -> OkapiError:
    return OkapiError(f"{_describe(r)}: {problem}", where=f"results of run {r.run!r}", hint=hint)


_BAD_NUMBER = "an evaluator reported it; fix the evaluator, or leave this score out"


def _item_values(r: ResultRow) -> list[tuple[str, float]]:
    """The row's items as (item id, value) pairs, or an OkapiError naming the row and the item."""
    if r.items is None:
        return []
    if not isinstance(r.items, Mapping):
        raise _refusal(r, f"items must map item ids to values, not {type(r.items).__name__}", "fix the evaluator")
    out = []
    for item, value in r.items.items():
        if not isinstance(item, str):
            raise _refusal(r, f"item id {item!r} is not text", "fix the evaluator")
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
            raise _refusal(r, f"item {item!r}: value {value!r} is not a finite number", _BAD_NUMBER)
        out.append((item, float(value)))
    return out


def _row_values(r: ResultRow) -> tuple:
    """The row's column values in ``_COLUMNS`` order, or an OkapiError naming the row."""
    def refuse(problem: str, hint: str) -> OkapiError:
        return _refusal(r, problem, hint)

    for name in _KEY + ("run_dir",):
        if not isinstance(getattr(r, name), str):
            raise refuse(f"{name} must be text, not {getattr(r, name)!r}", "fix the evaluator")
        if name not in ("protocol", "run_dir") and not getattr(r, name):
            raise refuse(f"{name} is empty", "fix the evaluator")
    bad_number = _BAD_NUMBER
    if not isinstance(r.value, numbers.Real) or isinstance(r.value, bool) or not math.isfinite(r.value):
        raise refuse(f"value {r.value!r} is not a finite number", bad_number)
    stderr = r.stderr
    if stderr is not None:
        if not isinstance(stderr, numbers.Real) or isinstance(stderr, bool):
            raise refuse(f"stderr {stderr!r} is not a number", bad_number)
        if math.isnan(stderr):
            stderr = None  # unknown: stored as NULL, so no change is called significant
        elif math.isinf(stderr) or stderr < 0:
            raise refuse(f"stderr {stderr!r} is not a finite number >= 0", bad_number)
    if not isinstance(r.n, numbers.Integral) or isinstance(r.n, bool) or r.n < 0:
        raise refuse(f"n {r.n!r} is not a count", bad_number)
    return (r.run, r.model, r.method, r.language, r.task, r.metric, float(r.value),
            None if stderr is None else float(stderr), int(r.n), r.protocol, r.run_dir)
