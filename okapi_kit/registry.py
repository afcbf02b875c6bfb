"""Named components per kind, filled by the register hooks of every loaded plugin."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pluggy

from .components import KINDS, Component
from .errors import OkapiError, did_you_mean
from .hookspecs import REGISTER_HOOKS


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    cls: type[Component]
    plugin: str


class Registry:
    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}

    def add(self, kind: str, cls: type[Component], *, plugin: str) -> None:
        base = KINDS[kind]
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise OkapiError(
                f"plugin {plugin!r} registered {cls!r} as a {kind}, but it is not a subclass of "
                f"okapi_kit.{base.__name__}"
            )
        if not cls.name:
            raise OkapiError(f"plugin {plugin!r} registered {cls.__name__} without a name",
                             hint="set the class attribute `name`")
        taken = self._entries[kind].get(cls.name)
        if taken is not None:
            raise OkapiError(
                f"two plugins register a {kind} named {cls.name!r}: {taken.plugin!r} "
                f"({taken.cls.__module__}.{taken.cls.__name__}) and {plugin!r} "
                f"({cls.__module__}.{cls.__name__})",
                hint="uninstall one of them, or block one with OKAPI_KIT_BLOCK_PLUGINS",
            )
        self._entries[kind][cls.name] = Entry(kind, cls.name, cls, plugin)

    def get(self, kind: str, name: str, *, where: str | None = None) -> Entry:
        if kind not in self._entries:
            raise OkapiError(f"unknown component kind {kind!r}", where=where,
                             hint=did_you_mean(kind, self._entries))
        entry = self._entries[kind].get(name)
        if entry is None:
            hint = did_you_mean(name, self._entries[kind])
            failed = _failed_plugins()
            if failed:
                hint += (f"; note that {len(failed)} plugin(s) failed to load and may provide it: "
                         + "; ".join(failed) + " (see `okapi-kit plugins`)")
            raise OkapiError(f"no {kind} named {name!r} is installed", where=where, hint=hint)
        return entry

    def entries(self, kind: str | None = None) -> list[Entry]:
        kinds = [kind] if kind else list(self._entries)
        return [e for k in kinds for e in sorted(self._entries[k].values(), key=lambda e: e.name)]

    @classmethod
    def from_plugins(cls, pm: pluggy.PluginManager) -> Registry:
        """Call each plugin's register hooks with a ``register`` bound to that plugin's name."""
        from .plugins import PluginFailure

        reg = cls()
        broken: set[str] = set()
        for kind, hook_name in REGISTER_HOOKS.items():
            for impl in getattr(pm.hook, hook_name).get_hookimpls():
                if impl.plugin_name in broken:
                    continue
                try:
                    impl.function(register=partial(reg.add, kind, plugin=impl.plugin_name))
                except OkapiError:
                    raise  # a name clash or a bad registration: the message names the plugins
                except Exception as exc:  # a broken plugin must not take the others down
                    broken.add(impl.plugin_name)
                    reg.drop_plugin(impl.plugin_name)
                    info = getattr(pm, "infos", {}).get(impl.plugin_name)
                    failures = getattr(pm, "failures", None)
                    if failures is not None:
                        failures.append(PluginFailure(
                            impl.plugin_name, info.dist if info else "?", info.version if info else "?",
                            f"{hook_name} raised {type(exc).__name__}: {exc}"))
        return reg

    def drop_plugin(self, plugin: str) -> None:
        for entries in self._entries.values():
            for name in [n for n, e in entries.items() if e.plugin == plugin]:
                del entries[name]


def _failed_plugins() -> list[str]:
    from .plugins import plugin_manager

    return [f"{f.name} ({f.dist} {f.version}): {f.error.splitlines()[0][:200]}" for f in plugin_manager().failures]


def create_component(reg: Registry, kind: str, name: str, options: dict, *, where: str,
                     base_dir: Path | None = None) -> Component:
    """Look a component up and validate its options against its own Config class."""
    from pydantic import ValidationError

    from .config import pydantic_error

    entry = reg.get(kind, name, where=where)
    try:
        config = entry.cls.Config.model_validate(options or {}, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise pydantic_error(exc, source=where.split(":")[0] if ":" in where else "config", model=entry.cls.Config,
                             prefix=f"{where.split(': ')[-1]}.options") from None
    return entry.cls(config)


def create_nested(kind: str, choice: Any, key: str, info: Any) -> Component:
    """The ``kind`` component a ComponentChoice inside another component's options names (a
    judge, a translator, a sampler), created from that config's pydantic validator so that
    ``validate`` checks its name and options too. Relative paths in its options are taken from
    the folder of the config that names them. A problem is raised as a ValueError, so pydantic
    reports it under the options' key path."""
    from .plugins import registry

    base = (info.context or {}).get("base_dir")
    try:
        return create_component(registry(), kind, choice.name, choice.options, where=key, base_dir=base)
    except OkapiError as exc:
        # option problems already name their key path (judge.options.model): no "config:" before
        # them; several are one line, their hints one more
        problems = getattr(exc, "problems", [exc])
        text = "; ".join(p.message if p.where in (None, "config") else f"{p.where}: {p.message}" for p in problems)
        hints = [p.hint for p in problems if p.hint]
        raise ValueError(text + (f"\n  hint: {'; '.join(hints)}" if hints else "")) from None
