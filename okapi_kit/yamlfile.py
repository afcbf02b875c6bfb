"""Reading YAML files the user writes: UTF-8 only, and a key given twice is an error.

PyYAML's safe loader silently keeps the last of two equal keys; in a config that
means an option the user wrote is dropped without a word.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import OkapiError


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice (lines {seen[key]} and {line})",
                key_node.start_mark)
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def read_text(path: Path, what: str = "file") -> str:
    """A user's text file as UTF-8; every failure is one OkapiError naming the file."""
    path = Path(path).expanduser()
    if not path.exists():
        raise OkapiError(f"no such file (expected {what})", where=str(path))
    if path.is_dir():
        raise OkapiError(f"a folder, not a file (expected {what})", where=str(path))
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise OkapiError(f"cannot read {what}: {exc.strerror}", where=str(path)) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise OkapiError(f"{what} is not UTF-8 text (byte 0x{raw[exc.start]:02x})", where=f"{path}:{line}",
                         hint="save it as UTF-8") from None


def parse_yaml(text: str, where: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise OkapiError(f"malformed YAML: {problem}",
                         where=f"{where}:{mark.line + 1}" if mark else where) from None


def load_yaml(path: Path, what: str = "YAML file") -> Any:
    """Parse a YAML file strictly (see the module docstring)."""
    return parse_yaml(read_text(path, what), str(path))


def load_mapping(path: Path, what: str) -> dict[str, Any]:
    """A YAML file that must hold a mapping (a config, an options file)."""
    data = load_yaml(path, what)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise OkapiError(f"{what} must be a YAML mapping of keys to values, not a {type(data).__name__}",
                         where=str(path))
    return data
