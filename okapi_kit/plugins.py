"""Finding and loading plugins: every entry point in the ``okapi_kit`` group.

Environment switches:

- ``OKAPI_KIT_PLUGINS=a,b``: load only these plugins (by entry-point name);
  ``OKAPI_KIT_PLUGINS=`` (empty) loads none.
- ``OKAPI_KIT_BLOCK_PLUGINS=a,b``: never load these.

Each entry point is loaded on its own: one that fails to import (or that implements
a hook that does not exist) is recorded in :func:`load_failures` with its
distribution and version, and the others still load.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from . import hookspecs
from .hookspecs import PROJECT

ENTRY_POINT_GROUP = "okapi_kit"
ENV_ALLOW = "OKAPI_KIT_PLUGINS"
ENV_BLOCK = "OKAPI_KIT_BLOCK_PLUGINS"


@dataclass(frozen=True)
class PluginInfo:
    name: str
    dist: str
    version: str
    module: str


@dataclass(frozen=True)
class PluginFailure:
    name: str
    dist: str
    version: str
    error: str


class OkapiPluginManager(pluggy.PluginManager):
    def __init__(self) -> None:
        super().__init__(PROJECT)
        self.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.failures: list[PluginFailure] = []

    def add_plugin(self, plugin: object, name: str, *, dist: str = "", version: str = "") -> bool:
        """Register one plugin; a misspelled hook makes it a recorded failure, not a crash."""
        try:
            self.register(plugin, name=name)
            self.check_pending()
        except (pluggy.PluginValidationError, ValueError) as exc:
            if self.get_plugin(name) is not None:
                self.unregister(name=name)
            self.failures.append(PluginFailure(name, dist, version, f"{type(exc).__name__}: {exc}"))
            return False
        self.infos[name] = PluginInfo(name, dist, version, getattr(plugin, "__name__", repr(plugin)))
        return True


def _names(var: str) -> set[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return {n.strip() for n in value.split(",") if n.strip()}


def _dist_of(ep: EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    return (dist.metadata["Name"], dist.version) if dist is not None else ("?", "?")


def build_plugin_manager(*, load_entry_points: bool = True) -> OkapiPluginManager:
    pm = OkapiPluginManager()
    if not load_entry_points:
        return pm
    allow, block = _names(ENV_ALLOW), _names(ENV_BLOCK) or set()
    seen: dict[str, str] = {}
    found = list(entry_points(group=ENTRY_POINT_GROUP))
    if allow is not None:
        unknown = sorted(allow - {ep.name for ep in found})
        if unknown:  # a typo here silently disables a plugin: say so, without stopping
            import warnings

            warnings.warn(f"{ENV_ALLOW} names {', '.join(map(repr, unknown))}, which no installed plugin "
                          f"is called; installed: {', '.join(sorted({ep.name for ep in found}))}",
                          UserWarning, stacklevel=2)
    for ep in found:
        if ep.name in block or (allow is not None and ep.name not in allow):
            continue
        dist, version = _dist_of(ep)
        if ep.name in seen:
            if seen[ep.name] != dist:  # two distributions claim one plugin name: say so
                pm.failures.append(PluginFailure(
                    ep.name, dist, version, f"the plugin name {ep.name!r} is already taken by the "
                    f"distribution {seen[ep.name]!r}; this one was not loaded"))
            continue
        seen[ep.name] = dist
        try:
            plugin = ep.load()
        except Exception as exc:  # any import error of a third-party plugin must not stop the rest
            pm.failures.append(PluginFailure(ep.name, dist, version, f"{type(exc).__name__}: {exc}"))
            continue
        pm.add_plugin(plugin, ep.name, dist=dist, version=version)
    return pm


@lru_cache(maxsize=1)
def plugin_manager() -> OkapiPluginManager:
    """The process-wide plugin manager (entry points loaded once)."""
    return build_plugin_manager()


def load_failures() -> list[PluginFailure]:
    return list(plugin_manager().failures)


@lru_cache(maxsize=1)
def registry():  # -> Registry (import kept local to avoid a cycle at import time)
    from .registry import Registry

    return Registry.from_plugins(plugin_manager())


def reset() -> None:
    """Forget the loaded plugins (tests change the environment switches)."""
    plugin_manager.cache_clear()
    registry.cache_clear()


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for a plugin package whose names (``exports``: name -> submodule)
    are imported on first use, so that loading the plugin (to list its commands, say) builds
    none of its components' option models; its register hooks import what they register."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        from importlib import import_module

        return getattr(import_module(f".{module}", package), name)

    return __getattr__
