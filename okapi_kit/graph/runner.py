"""The runner: one process per run folder (a lock), the manifest, skipping finished units,
resuming interrupted ones, observer hooks, and tidying superseded scratch files.

Under ``accelerate launch`` all of that is the main process's; the others only join it for
the training units (the rules are in :mod:`okapi_kit.graph.processes`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from ..errors import OkapiError
from ..records import RunInfo, atomic_write_text
from . import processes
from .fingerprint import ContentHasher, canonical, digest
from .planner import Plan
from .unit import Unit, UnitRun

MANIFEST_VERSION = 2


class Manifest:
    """``manifest.json``: per unit its status, fingerprint, timings and info; rewritten atomically."""

    def __init__(self, path: Path):
        self.path = path
        self.data: dict[str, Any] = {"version": MANIFEST_VERSION, "units": {}}
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except IsADirectoryError:
                raise OkapiError("the run manifest is a folder, not a file", where=str(path),
                                 hint="move that folder away, or choose another run folder") from None
            except OSError as exc:
                raise OkapiError(f"cannot read the run manifest: {exc.strerror}", where=str(path),
                                 hint="check its permissions, or choose another run folder") from None
            except (json.JSONDecodeError, UnicodeDecodeError):
                data = None
            if not isinstance(data, dict) or not isinstance(data.get("units", {}), dict):
                raise OkapiError("the run manifest is corrupt", where=str(path),
                                 hint="rerun with --fresh to start this run over, or choose another run folder")
            self.data = data
            self.data["version"] = MANIFEST_VERSION

    @property
    def units(self) -> dict[str, dict[str, Any]]:
        return self.data.setdefault("units", {})

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data, indent=2, sort_keys=True, ensure_ascii=False))


class RunLock:
    """An exclusive lock on a run folder, so two processes never write one run."""

    def __init__(self, path: Path):
        self.path = path
        self._fh = None

    def __enter__(self) -> RunLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.seek(0)
            holder = self._fh.read().strip() or "another process"
            self._fh.close()
            raise OkapiError(f"the run folder {self.path.parent} is in use by {holder}",
                             hint="wait for that run to finish, or give this one another run folder") from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(f"okapi-kit pid {os.getpid()}")
        self._fh.flush()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.close()


def fingerprint(plan: Plan, unit: Unit, done: dict[str, str]) -> str:
    """The hash of everything ``unit`` reads (see :class:`~okapi_kit.graph.Unit`)."""
    parts = [unit.stage, str(unit.version), canonical(unit.reads)]
    for art in unit.consumes:
        src = plan.inputs[unit.key][art]
        if src.producer is not None:
            parts.append(f"{art}<-{done[src.producer]}")
        elif src.identity:
            parts.append(f"{art}<-{src.identity}")
        else:
            parts.append(f"{art}<-{plan.hasher.path(src.path)}")
    parts += [f"file:{plan.hasher.path(p)}" for p in unit.files]
    parts += [f"model:{model_identity(plan, m)}" for m in unit.models]
    return digest(*parts)


def fingerprints(plan: Plan) -> dict[str, str]:
    """Every unit's fingerprint, in plan order, without running anything."""
    done: dict[str, str] = {}
    for unit in plan.units:
        done[unit.key] = fingerprint(plan, unit, done)
    return done


def model_identity(plan: Plan, spec: str) -> str:
    from .fingerprint import hub_identity

    local = plan.resolve_path(spec)
    return f"local:{plan.hasher.path(local)}" if local.exists() else hub_identity(spec)


def clear_run_folder(run_dir: Path, keep: Path) -> None:
    """Empty a run folder for ``--fresh``, keeping the lock file we hold."""
    for child in run_dir.iterdir():
        if child == keep:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


class Runner:
    """Runs a checked plan in its run folder."""

    def __init__(self, plan: Plan, *, ui: Any, pm: Any, config_dump: dict[str, Any]):
        self.plan = plan
        self.ui = ui
        self.pm = pm
        self.config_dump = config_dump
        self.summary: list[dict[str, Any]] = []
        self.fingerprints: dict[str, str] = {}

    def run(self, *, fresh: bool = False) -> list[dict[str, Any]]:
        here = processes.launch()
        if not here.main:
            self._follow(here)
            return self.summary
        leader = processes.Leader(here)
        with leader.stop_on_error():
            self._lead(leader, fresh)
        leader.end()
        return self.summary

    def _lead(self, leader: processes.Leader, fresh: bool) -> None:
        layout = self.plan.layout
        run_dir = layout.run_dir
        if fresh and run_dir.exists() and any(p.name != layout.lock.name for p in run_dir.iterdir()) \
                and not layout.manifest.exists():
            raise OkapiError(f"--fresh would delete {run_dir}, which is not an okapi-kit run folder",
                             hint="choose another run folder")
        run_dir.mkdir(parents=True, exist_ok=True)
        with RunLock(layout.lock):
            if fresh:
                clear_run_folder(run_dir, layout.lock)
            self.plan.hasher = ContentHasher(run_dir / "work" / "content-hashes.json")
            manifest = Manifest(layout.manifest)
            manifest.data.update(config_name=self.plan.cfg.name, config=self.config_dump)
            manifest.save()
            info = RunInfo(run_dir=run_dir, config_name=self.plan.cfg.name,
                           languages=list(self.plan.cfg.languages))
            try:
                for unit in self.plan.units:
                    self._one(unit, manifest, info, leader)
            finally:
                self.plan.hasher.save()

    def _follow(self, here: processes.Launch) -> None:
        """A process other than the main one: run the training units the main process starts."""
        units = {u.key: u for u in self.plan.units}
        for key, fp in processes.follow(here):
            with processes.together(key):
                units[key].run(UnitRun(units[key], fp, self.plan))

    def _one(self, unit: Unit, manifest: Manifest, info: RunInfo, leader: processes.Leader) -> None:
        fp = self.fingerprints[unit.key] = fingerprint(self.plan, unit, self.fingerprints)
        entry = manifest.units.get(unit.key, {})
        outputs = [self.plan.outputs[unit.key][a].path for a in unit.produces]
        if entry.get("status") == "done" and entry.get("fingerprint") == fp and all(p.exists() for p in outputs):
            self.summary.append({"stage": unit.key, "status": "skipped", "seconds": 0.0,
                                 "info": entry.get("info", {})})
            self.pm.hook.okapi_stage_finished(stage=unit.key, run=info,
                                              outcome={"status": "skipped", "seconds": 0.0})
            return
        manifest.units[unit.key] = {"status": "running", "fingerprint": fp, "stage": unit.stage,
                                    "version": unit.version, "started": time.time(),
                                    "deps": sorted({s for a in unit.consumes
                                                    if (s := self.plan.produced_by(a)) is not None})}
        manifest.save()
        self.pm.hook.okapi_stage_started(stage=unit.key, run=info)
        self.ui.log(f"[bold cyan]>[/] {unit.key}")
        t0 = time.perf_counter()
        try:
            with leader.running(unit, fp):
                result = unit.run(UnitRun(unit, fp, self.plan)) or {}
        except BaseException as exc:
            seconds = time.perf_counter() - t0
            message = exc.render() if isinstance(exc, OkapiError) else f"{type(exc).__name__}: {exc}"
            manifest.units[unit.key].update(status="failed", seconds=round(seconds, 3), error=message[:2000])
            manifest.save()
            self.pm.hook.okapi_stage_finished(stage=unit.key, run=info,
                                              outcome={"status": "failed", "seconds": seconds})
            raise
        seconds = time.perf_counter() - t0
        manifest.units[unit.key].update(status="done", seconds=round(seconds, 3), info=result,
                                        finished=time.time())
        manifest.save()
        self._tidy(unit.key, fp)
        self.summary.append({"stage": unit.key, "status": "done", "seconds": seconds, "info": result})
        self.pm.hook.okapi_stage_finished(stage=unit.key, run=info,
                                          outcome={"status": "done", "seconds": seconds})

    def _tidy(self, key: str, fp: str) -> None:
        """Chunk files of a finished unit, and scratch folders of its older fingerprints, go."""
        layout = self.plan.layout
        current = layout.work(key, fp)
        for path in layout.superseded(key, fp):
            if path == current:
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
