"""The persistent request cache: every answer an API gave, so that nothing is paid for twice.

One SQLite file holds JSON values (never pickle) keyed by the SHA-256 of the canonical JSON
of the whole request: provider, model, endpoint, parameters and messages. The API key is
never part of a key or a value. The cache stores what the provider returned (the reply
text and its token counts), not what a component made of it: changing how a reply is
parsed does not invalidate it.

Location: the ``OKAPI_KIT_CACHE`` environment variable, else
``~/.cache/okapi-kit/requests.sqlite``; a provider's ``cache`` option overrides both.
Safe to share between the threads of one process and between processes (WAL journal;
each answer is committed as soon as it arrives, so a killed run keeps what it had).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from .errors import OkapiError

ENV_CACHE = "OKAPI_KIT_CACHE"
KEY_VERSION = 1  # bump when the key's layout changes, so old entries are never misread


def default_cache_path() -> Path:
    """``$OKAPI_KIT_CACHE``, else ``~/.cache/okapi-kit/requests.sqlite``."""
    env = os.environ.get(ENV_CACHE, "").strip()
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "okapi-kit" / "requests.sqlite"


def request_key(request: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a request description (sorted keys, no spaces)."""
    text = json.dumps({"v": KEY_VERSION, **request}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class RequestCache:
    """A key -> JSON value store in one SQLite file, safe across threads and processes."""

    def __init__(self, path: Path | str):
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One connection shared by the threads of a chat model, serialised by the lock;
            # the busy timeout covers other processes writing to the same file.
            self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # A commit reaches the OS at once (a killed process loses nothing) but is not
            # fsync'ed each time: an fsync per answer would cap a run at a few hundred answers
            # a second; a power cut may lose the last answers, which are then asked again.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS responses ("
                             "key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)")
        except (OSError, sqlite3.Error) as exc:
            raise OkapiError(f"cannot open the request cache: {exc}", where=str(self.path),
                             hint=f"choose another file with the provider's `cache` option or ${ENV_CACHE}; "
                                  "a file that is not an okapi-kit cache can be moved away") from None

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._query("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Store (or replace) one answer; committed before this returns."""
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
        with self._lock:
            self._query("INSERT OR REPLACE INTO responses (key, value, created) VALUES (?, ?, ?)",
                        (key, text, time.time()))

    def delete(self, key: str) -> bool:
        """Remove one answer; True if there was one."""
        with self._lock:
            return self._query("DELETE FROM responses WHERE key = ?", (key,)).rowcount > 0

    def __len__(self) -> int:
        with self._lock:
            return int(self._query("SELECT COUNT(*) FROM responses", ()).fetchone()[0])

    def close(self) -> None:
        with _open_lock:
            _open.pop(self.path.resolve(), None)
        with self._lock:
            self._db.close()

    def _query(self, sql: str, args: tuple[Any, ...]) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise OkapiError(f"the request cache failed: {exc}", where=str(self.path),
                             hint="a full disk or a damaged file; move the file away to start a new cache") from None


_open: dict[Path, RequestCache] = {}
_open_lock = threading.Lock()


def open_cache(path: Path | str | None = None) -> RequestCache:
    """The cache at ``path`` (default: :func:`default_cache_path`), one instance per file and
    process, so that the components of one run share a connection."""
    resolved = Path(path).expanduser().resolve() if path is not None else default_cache_path().resolve()
    with _open_lock:
        if resolved not in _open:
            _open[resolved] = RequestCache(resolved)
        return _open[resolved]
