"""Hashing what a unit reads: canonical JSON of config fields, file contents, model identities."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..errors import OkapiError


def canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)


def digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


class ContentHasher:
    """Content hashes of files and folders, remembered by (size, mtime) so that a model of
    many gigabytes is read once, not on every run. The memo lives in the run folder."""

    def __init__(self, memo_path: Path | None = None):
        self.memo_path = memo_path
        self.memo: dict[str, list[Any]] = {}
        if memo_path is not None and memo_path.is_file():
            try:
                loaded = json.loads(memo_path.read_text(encoding="utf-8"))
                self.memo = loaded if isinstance(loaded, dict) else {}
            except (json.JSONDecodeError, UnicodeDecodeError, OSError):
                self.memo = {}  # a lost memo only costs re-reading

    def file(self, path: Path) -> str:
        try:
            st = path.stat()
        except OSError as exc:
            raise OkapiError(f"cannot read {path}: {exc.strerror}") from None
        key = str(path.resolve())
        stamp = [st.st_size, st.st_mtime_ns]
        known = self.memo.get(key)
        if known and known[:2] == stamp:
            return known[2]
        h = hashlib.sha256()
        try:
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        except OSError as exc:
            raise OkapiError(f"cannot read {path}: {exc.strerror}") from None
        self.memo[key] = [*stamp, h.hexdigest()]
        return h.hexdigest()

    def path(self, path: Path) -> str:
        """A file's hash, or a folder's: the names and hashes of every file below it."""
        path = Path(path)
        if path.is_dir():
            parts = [f"{p.relative_to(path).as_posix()}:{self.file(p)}"
                     for p in sorted(path.rglob("*")) if p.is_file()]
            return digest(*parts)
        if not path.exists():
            return "missing"
        return self.file(path)

    def save(self) -> None:
        if self.memo_path is None:
            return
        from ..records import atomic_write_text

        atomic_write_text(self.memo_path, json.dumps(self.memo))


def hub_identity(model_id: str, revision: str = "main") -> str:
    """A hub model's identity: its id and, when it is in the local cache, the commit it resolves to."""
    cache = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", "~/.cache/huggingface"))
                 .expanduser() / "hub")
    ref = cache / f"models--{model_id.replace('/', '--')}" / "refs" / revision
    commit = ref.read_text().strip() if ref.is_file() else revision
    return f"hub:{model_id}@{commit}"
