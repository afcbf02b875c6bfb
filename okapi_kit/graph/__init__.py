"""The stage graph: typed artifacts, units of work, the planner and the runner."""

from .artifacts import Model, Records, RunLayout, Scores, check_name
from .planner import Plan, Source
from .runner import Manifest, Runner
from .unit import Unit, UnitRun

__all__ = ["Manifest", "Model", "Plan", "Records", "RunLayout", "Runner", "Scores", "Source", "Unit",
           "UnitRun", "check_name"]
