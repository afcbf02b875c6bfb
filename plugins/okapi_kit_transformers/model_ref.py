"""The ``model`` option of this plugin's generation components: a local folder or a hub id.

A local folder is taken relative to the folder of the YAML config that names it (as every
path in a config is; the working directory when there is no config) and kept as a ``Path``, so that the pipeline fingerprints it by
content: a model retrained in place re-runs what it made. A hub id stays a string.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, ValidationInfo


def _resolve(value: str | Path, info: ValidationInfo) -> str | Path:
    text = str(value).strip()
    if not text:
        raise ValueError("give a model folder or a hub id")
    path = Path(text).expanduser()
    if path.is_absolute():
        return path
    base = (info.context or {}).get("base_dir")
    local = (Path(base) if base is not None else Path.cwd()) / path
    # "./x", "../x" and "~/x" are folders even before they exist; "org/name" is a folder
    # only when there is one, else a hub id
    if text.startswith((".", "~")) or local.exists():
        return local
    return text


ModelRef = Annotated[str | Path, AfterValidator(_resolve)]
