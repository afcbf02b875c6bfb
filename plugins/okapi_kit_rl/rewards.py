"""Reward source ``callable``: a Python function with TRL's reward-function signature.

``f(prompts, completions, **kwargs) -> list[float]``, one score per completion. okapi-kit
calls it with keyword arguments: ``prompts``, ``completions`` (plain strings), ``languages``
(the language code of each prompt) when the function takes it or ``**kwargs``, and the
``kwargs`` option's entries. The function is imported when the config is validated, so
a typo fails ``okapi-kit validate``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import math
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from okapi_kit import ComponentConfig, OkapiError, RewardSource

_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")  # a.b.c


def split_spec(spec: str) -> tuple[str, str]:
    """``module:function`` or ``path/to/file.py:function`` -> (module or path, attribute)."""
    module, sep, attr = spec.rpartition(":")
    if not sep or not module or not _DOTTED.match(attr):
        raise ValueError(f"{spec!r} is not module:function (e.g. my_rewards:score or rewards.py:score)")
    if not (module.endswith(".py") or _DOTTED.match(module)):
        raise ValueError(f"{module!r} is neither a Python module name nor a .py file")
    return module, attr


@contextlib.contextmanager
def _search_path(folders: list[Path]) -> Iterator[None]:
    added = [str(f) for f in folders if str(f) not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for folder in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(folder)


def load_function(spec: str, base_dir: Path | None = None) -> Callable[..., Any]:
    """Import the function named by ``spec``; a ``.py`` path is taken from ``base_dir`` (default: here).

    A module name is imported as usual; when that fails, ``base_dir`` and the working
    directory are searched too (a rewards.py beside the config just works).
    """
    module_name, attr = split_spec(spec)
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    if module_name.endswith(".py"):
        path = Path(module_name).expanduser()
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            raise ValueError(f"file not found: {path}")
        unique = "okapi_kit_reward_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        module = sys.modules.get(unique)
        if module is None:
            loader_spec = importlib.util.spec_from_file_location(unique, path)
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[unique] = module
            try:
                loader_spec.loader.exec_module(module)
            except Exception as exc:
                del sys.modules[unique]
                raise ValueError(f"importing {path} failed: {type(exc).__name__}: {exc}") from None
    else:
        try:
            with _search_path([base, Path.cwd()]):
                module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise ValueError(f"no module named {exc.name!r} (looked in the Python path, {base} and "
                             f"{Path.cwd()})") from None
        except Exception as exc:
            raise ValueError(f"importing {module_name} failed: {type(exc).__name__}: {exc}") from None
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ValueError(f"{module_name} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"{spec} is a {type(target).__name__}, not a function")
    return target


class CallableRewardConfig(ComponentConfig):
    function: str = Field(description="module:function, or path/to/file.py:function (relative to the "
                          "config's folder), with the signature f(prompts, completions, **kwargs) -> list[float]")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="extra keyword arguments for every call")
    _function: Callable[..., Any] | None = PrivateAttr(None)
    _accepts: set[str] | None = PrivateAttr(None)  # None: takes **kwargs

    @field_validator("function")
    @classmethod
    def _spec(cls, value: str) -> str:
        split_spec(value)
        return value

    @model_validator(mode="after")
    def _load(self, info: ValidationInfo) -> CallableRewardConfig:
        base = (info.context or {}).get("base_dir")
        fn = load_function(self.function, Path(base) if base is not None else None)
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):  # builtins without a signature: trust them
            params = []
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params) or not params:
            accepts = None
        else:
            accepts = {p.name for p in params if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                             inspect.Parameter.KEYWORD_ONLY)}
            missing = {"prompts", "completions"} - accepts
            if missing:
                raise ValueError(f"{self.function} must take the keyword arguments prompts and completions "
                                 f"(TRL's reward-function signature); it lacks {', '.join(sorted(missing))}")
            extra = set(self.kwargs) - accepts
            if extra:
                raise ValueError(f"{self.function} takes no argument(s) {', '.join(sorted(extra))} given in kwargs")
        self._function, self._accepts = fn, accepts
        return self

    def call(self, prompts: list[str], completions: list[str], languages: list[str]) -> Any:
        """Call the function with TRL's keyword arguments, ``languages`` if it takes them, and ``kwargs``."""
        if self._function is None:  # a config built without validation (model_construct)
            self._function = load_function(self.function)
        kwargs: dict[str, Any] = {**self.kwargs, "prompts": prompts, "completions": completions}
        if self._accepts is None or "languages" in self._accepts:
            kwargs["languages"] = languages
        return self._function(**kwargs)


class CallableReward(RewardSource):
    """Scores completions with a Python function, f(prompts, completions, **kwargs) -> list[float]
    (TRL's reward-function signature; okapi-kit passes ``languages=``)."""

    name = "callable"
    Config = CallableRewardConfig

    def input_files(self) -> list[Path]:
        """The function's source file: editing the reward re-runs what it trained."""
        fn = self.config._function
        source = inspect.getsourcefile(fn) if fn is not None else None
        return [Path(source)] if source and Path(source).is_file() else []

    def score(self, prompts: Sequence[str], responses: Sequence[str], languages: Sequence[str]) -> list[float]:
        config: CallableRewardConfig = self.config
        where = f"reward source callable ({config.function})"
        try:
            out = config.call(list(prompts), list(responses), list(languages))
        except OkapiError:
            raise
        except Exception as exc:
            raise OkapiError(f"the reward function raised {type(exc).__name__}: {exc}", where=where) from exc
        return _check_scores(out, len(responses), where)


def _check_scores(out: Any, n: int, where: str) -> list[float]:
    try:
        values = [float(v) for v in (out.tolist() if hasattr(out, "tolist") else out)]
    except (TypeError, ValueError):
        raise OkapiError(f"the reward function returned {type(out).__name__}, not a list of {n} numbers",
                         where=where, hint="return one float per completion") from None
    if len(values) != n:
        raise OkapiError(f"the reward function returned {len(values)} scores for {n} completions",
                         where=where, hint="return one float per completion, in order")
    bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
    if bad is not None:
        raise OkapiError(f"the reward function returned {values[bad]} for completion {bad}", where=where,
                         hint="return finite numbers")
    return values
