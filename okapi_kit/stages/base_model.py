"""The base model: built from a ``scheme:`` spec by a plugin (``tiny:llama``), or taken as given."""

from __future__ import annotations

import shutil
from typing import Any

from ..errors import OkapiError
from ..graph import Model, Plan, Unit, UnitRun
from ..graph.planner import is_built_spec
from .common import replace_dir

NAME, VERSION = "base_model", 1


def plan(p: Plan) -> None:
    spec = p.cfg.base_model
    if spec is None:
        return
    if not is_built_spec(spec):
        p.supply_model(Model("base"), spec, "base_model")
        return
    from ..plugins import plugin_manager

    try:
        known = plugin_manager().hook.okapi_check_model(spec=spec)
    except OkapiError as exc:
        p.problems.append(OkapiError(exc.message, where=f"{p.source_name}: base_model", hint=exc.hint))
        p.not_planned(Model("base"))
        return
    if not known:
        p.problem(f"no plugin builds models named like {spec!r}", where="base_model",
                  hint="tiny:<arch> needs the okapi_kit_transformers plugin; other schemes need a plugin "
                       "that implements okapi_check_model and okapi_build_model")
        p.not_planned(Model("base"))
        return
    p.add(Unit("base_model", NAME, VERSION, reads={"base_model": spec, "seed": p.cfg.seed},
               consumes=[], produces=[Model("base")], run=build))


def build(run: UnitRun) -> dict[str, Any]:
    from ..plugins import plugin_manager

    final = run.path(Model("base"))
    tmp = final.with_name(f".{final.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    spec = run.plan.cfg.base_model
    if not plugin_manager().hook.okapi_build_model(spec=spec, out_dir=tmp):
        raise OkapiError(f"no plugin builds models named like {spec!r}", where="base_model",
                         hint="tiny:<arch> needs the okapi_kit_transformers plugin; other schemes need "
                              "a plugin that implements okapi_build_model")
    replace_dir(tmp, final)
    return {"built": spec}
