"""The units of a transfer study, planned by one function for both ``okapi-kit rm-transfer``
and the ``rm_transfer`` pipeline stage: they differ only in where the reward models come from.

Units (their stage names in brackets):

- ``rm_transfer/score/<method>/<rm>/<target>`` [rm_transfer_score]: one RM on one target's
  test set through one transfer method;
- ``rm_transfer/states/<base>`` [rm_transfer_states]: a base model's pooled hidden states for the
  parallel inputs, once per base model, shared by every RM trained from it;
- ``rm_transfer/represent/<rm>`` [rm_transfer_represent]: the RM's states, across languages and
  against its base model's;
- ``rm_transfer/matrix`` and ``rm_transfer/representation``: the reports, written from the
  units above into ``<run folder>/rm-transfer/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from okapi_kit.errors import OkapiError
from okapi_kit.graph import Model, Plan, Scores, Unit, UnitRun, check_name
from okapi_kit.records import atomic_write_text

from .config import RepresentationConfig, TargetsConfig, TransferChoice
from .testsets import formatter, parallel_rows, read_test_rows, test_file

VERSION = 1
SCORE, STATES, REPRESENT = "rm_transfer_score", "rm_transfer_states", "rm_transfer_represent"
MATRIX, REPRESENTATION = "rm_transfer_matrix", "rm_transfer_representation"
PARALLEL = "parallel"
REPORT_DIR = "rm-transfer"
MATRIX_ART = Scores("rm_transfer", "report", "matrix")
REPRESENTATION_ART = Scores("rm_transfer", "report", "representation")


def score_art(method: str, rm: str, target: str) -> Scores:
    return Scores(f"rm_transfer.{method}", rm, target)


def representation_art(rm: str) -> Scores:
    return Scores("rm_transfer.representation", rm, PARALLEL)


def states_art(base: str) -> Scores:
    return Scores("rm_transfer.states", base, PARALLEL)


def row_label(rm: str, method: str) -> str:
    """The RM's name in the matrix and the leaderboard: ``rm-en``, or ``rm-en-<method>`` when
    the transfer method is not ``direct``."""
    return f"rm-{rm}" if method == "direct" else f"rm-{rm}-{method}"


@dataclass(frozen=True)
class RM:
    """A reward model to transfer: ``model`` is the artifact the units consume, ``base`` the
    model it was trained from (None: no comparison with a base)."""

    key: str
    language: str
    model: Model
    base: Model | None = None
    name: str = "-"  # the model column of its leaderboard rows


@dataclass
class Study:
    """What to measure. ``where`` prefixes the config keys of these options in messages and
    component lookups: "" for ``rm-transfer``, ``stages[i].options.`` for the stage."""

    name: str
    rms: list[RM]
    targets: TargetsConfig
    transfer: list[TransferChoice]
    scoring: dict[str, Any]
    representation: RepresentationConfig | None
    prompt_template: str
    trust_remote_code: bool = False
    where: str = ""

    def at(self, key: str) -> str:
        return f"{self.where}{key}"


@dataclass
class StudyPlan:
    """A study's units, in the order they run, and where its reports go."""

    study: Study
    run_dir: Path
    units: list[Unit] = field(default_factory=list)

    @property
    def report_dir(self) -> Path:
        return self.run_dir / REPORT_DIR

    def of_stage(self, stage: str) -> list[Unit]:
        return [u for u in self.units if u.stage == stage]


# ------------------------------------------------------------------ planning


def plan_study(p: Plan, study: Study) -> StudyPlan:
    """The units of ``study``, not yet added to ``p``; problems go to ``p.problems``."""
    sp = StudyPlan(study, p.layout.run_dir)
    scoring = _scoring_reads(p, study)
    methods = _plan_methods(p, study)
    tests = _test_files(p, study)
    if scoring is not None:
        for rm in study.rms:
            for i, choice in methods:
                for lang, path in tests.items():
                    sp.units.append(_score_unit(p, study, scoring, rm, i, choice, lang, path))
    if study.representation is not None:
        sp.units += _representation_units(p, study)
    scores = [u.produces[0] for u in sp.of_stage(SCORE)]
    if scores:
        rows = [[row_label(rm.key, c.key), rm.language, c.key] for rm in study.rms for _, c in methods]
        sp.units.append(Unit("rm_transfer/matrix", MATRIX, VERSION,
                             reads={"rows": rows, "targets": list(tests), "title": study.name},
                             consumes=scores, produces=[MATRIX_ART], run=lambda run: _matrix(run, sp)))
    tables = [u.produces[0] for u in sp.of_stage(REPRESENT)]
    if tables:
        sp.units.append(Unit("rm_transfer/representation", REPRESENTATION, VERSION, reads={},
                             consumes=tables, produces=[REPRESENTATION_ART],
                             run=lambda run: _representation(run, sp)))
    return sp


def _scoring_reads(p: Plan, study: Study) -> dict[str, Any] | None:
    """The scoring options, checked against the reward_model source's, as fingerprint input.

    Checked here rather than kept among the plan's components: the source is made per RM at
    run time, and the run manifest's config has no component entry for ``scoring``."""
    from pydantic import ValidationError

    from okapi_kit.config import pydantic_problems
    from okapi_kit.stages.common import component_inputs

    where = study.at("scoring")
    try:
        entry = p.registry.get("reward_source", "reward_model", where=f"{p.source_name}: {where}")
        config = entry.cls.Config.model_validate({**study.scoring, "path": "<each RM>"},
                                                 context={"base_dir": p.base_dir})
    except OkapiError as exc:
        p.problems.append(exc)
        return None
    except ValidationError as exc:  # named as written: scoring.<option>
        p.problems.extend(pydantic_problems(exc, source=p.source_name, prefix=where, model=entry.cls.Config))
        return None
    return component_inputs(entry.cls(config))[0]["options"]


def _plan_methods(p: Plan, study: Study) -> list[tuple[int, TransferChoice]]:
    out = []
    for i, choice in enumerate(study.transfer):
        where = study.at(f"transfer[{i}]")
        try:
            check_name(choice.key, where=f"{p.source_name}: {where}", reserved=frozenset())
        except OkapiError as exc:
            p.problems.append(exc)
            continue
        method = p.component("transfer", choice, where)
        if method is None:
            continue
        check = getattr(method, "check", None)
        for rm in study.rms:
            try:
                if check is not None:
                    check(rm.language, [t for t in study.targets.languages if t != rm.language])
            except OkapiError as exc:
                p.problems.append(OkapiError(exc.message, where=f"{p.source_name}: {where}", hint=exc.hint))
                break
        else:
            out.append((i, choice))
    return out


def _test_files(p: Plan, study: Study) -> dict[str, Path]:
    """Each target's test file, read once now so that a bad one fails before any work."""
    data_dir = p.resolve_path(study.targets.data_dir)
    tests: dict[str, Path] = {}
    for lang in study.targets.languages:
        try:
            tests[lang] = test_file(data_dir, lang)
            read_test_rows(tests[lang], limit=study.targets.limit, category_column=study.targets.category_column)
        except OkapiError as exc:
            where = study.at("targets") + (f" ({exc.where})" if exc.where else "")
            p.problems.append(OkapiError(exc.message, where=f"{p.source_name}: {where}", hint=exc.hint))
            tests.pop(lang, None)
    return tests


def _score_unit(p: Plan, study: Study, scoring: dict[str, Any], rm: RM, i: int, choice: TransferChoice, lang: str,
                path: Path) -> Unit:
    from okapi_kit.stages.common import component_reads

    reads, files = component_reads(p, study.at(f"transfer[{i}]"))
    return Unit(f"rm_transfer/score/{choice.key}/{rm.key}/{lang}", SCORE, VERSION,
                reads={"transfer": reads, "scoring": scoring,
                       "prompt_template": study.prompt_template, "limit": study.targets.limit,
                       "category_column": study.targets.category_column, "rm_language": rm.language},
                consumes=[rm.model], produces=[score_art(choice.key, rm.key, lang)], files=[path, *files],
                run=lambda run: _score(run, study, rm, i, lang, path))


def _representation_units(p: Plan, study: Study) -> list[Unit]:
    rep = study.representation
    where = study.at("representation")
    data_dir = p.resolve_path(rep.data_dir) if rep.data_dir else p.resolve_path(study.targets.data_dir)
    langs = rep.languages or study.targets.languages
    if len(langs) < 2:
        p.problem("the representation analysis compares two languages or more", where=f"{where}.languages")
        return []
    files = {}
    for lang in langs:
        try:
            files[lang] = test_file(data_dir, lang)
        except OkapiError as exc:
            p.problems.append(OkapiError(exc.message, where=f"{p.source_name}: {where}", hint=exc.hint))
    if len(files) != len(langs):
        return []
    try:
        shared = parallel_rows(files, rep.limit)
    except OkapiError as exc:
        p.problems.append(OkapiError(exc.message, where=f"{p.source_name}: {where}", hint=exc.hint))
        return []
    if len(shared[langs[0]]) < 2:
        p.problem("fewer than two rows share an id in every language", where=where,
                  hint="parallel inputs are rows with the same id in each language's file")
        return []
    reads = {"representation": rep.model_dump(mode="json", exclude={"data_dir", "batch_size", "device"}),
             "languages": langs, "prompt_template": study.prompt_template}
    units: list[Unit] = []
    states_of: dict[Any, Scores] = {}  # one states unit per base model, whatever its artifact
    for rm in study.rms:
        consumes: list[Any] = [rm.model]
        states = None
        if rm.base is not None:
            identity = _identity(p, rm.base)
            if identity not in states_of:
                name = p.layout.model(rm.base).name  # base, sft-en, base-ko: one folder name per model
                states_of[identity] = states_art(name)
                units.append(Unit(f"rm_transfer/states/{name}", STATES, VERSION, reads=reads,
                                  consumes=[rm.base], produces=[states_of[identity]], files=list(files.values()),
                                  run=lambda run, base=rm.base: _states(run, study, base, files)))
            states = states_of[identity]
            consumes.append(states)
        units.append(Unit(f"rm_transfer/represent/{rm.key}", REPRESENT, VERSION, reads=reads,
                          consumes=consumes, produces=[representation_art(rm.key)], files=list(files.values()),
                          run=lambda run, rm=rm, states=states: _represent(run, study, rm, states, files)))
    return units


def _identity(p: Plan, art: Model) -> Any:
    """A supplied model is known by what it points to (two scopes may share one folder); a
    produced one by its artifact."""
    src = p.sources.get(art)
    return ("ref", src.ref) if src is not None and src.producer is None else ("art", art)


# ------------------------------------------------------------------ running


_LOADED: dict[str, Any] = {}  # the reward source of the RM being scored, shared by its units


def _reward_source(run: UnitRun, study: Study, model: str) -> Any:
    """One reward_model source per RM, loaded once for all its score units (they run one
    after another); only the last one is kept in memory."""
    from okapi_kit.registry import create_component

    if model not in _LOADED:
        _LOADED.clear()
        _LOADED[model] = create_component(run.plan.registry, "reward_source", "reward_model",
                                          {**study.scoring, "path": model}, where=study.at("scoring"))
    return _LOADED[model]


def _score(run: UnitRun, study: Study, rm: RM, i: int, target: str, path: Path) -> dict[str, Any]:
    model = run.model(rm.model)
    rows = read_test_rows(path, limit=study.targets.limit, category_column=study.targets.category_column)
    fmt = formatter(study.prompt_template, model, study.trust_remote_code)
    prompts = [fmt(r.prompt) for r in rows]
    method = run.plan.get_component(study.at(f"transfer[{i}]"))
    n = len(rows)
    before = getattr(method, "untranslated", 0)
    values = method.score(_reward_source(run, study, model), prompts + prompts,
                          [r.chosen for r in rows] + [r.rejected for r in rows],
                          rm_language=rm.language, languages=[target] * (2 * n))
    if len(values) != 2 * n:
        raise OkapiError(f"transfer method {method.name!r} returned {len(values)} rewards for {2 * n} responses",
                         where=run.unit.key)
    out = [{"id": r.id, "category": r.category, "chosen": c, "rejected": j, "correct": c > j}
           for r, c, j in zip(rows, values[:n], values[n:])]
    accuracy = sum(o["correct"] for o in out) / n
    atomic_write_text(run.path(run.unit.produces[0]), json.dumps(
        {"rm": rm.key, "model": model, "method": study.transfer[i].key, "rm_language": rm.language,
         "target": target, "test_set": str(path), "accuracy": accuracy, "rows": out}, ensure_ascii=False))
    info = {"accuracy": round(accuracy, 4), "rows": n}
    untranslated = getattr(method, "untranslated", 0) - before  # texts scored as written
    return {**info, "untranslated": untranslated} if untranslated else info


def _pooled(study: Study, model: str, files: dict[str, Path]) -> dict[str, Any]:
    """Per language, the model's pooled states (layers, items, dim) for the parallel inputs."""
    from .representation import pooled_states

    rep = study.representation
    fmt = formatter(study.prompt_template, model, study.trust_remote_code)
    return {lang: pooled_states(model, [(fmt(r.prompt), getattr(r, rep.response)) for r in rs],
                                pooling=rep.pooling, batch_size=rep.batch_size, device=rep.device,
                                trust_remote_code=study.trust_remote_code)
            for lang, rs in parallel_rows(files, rep.limit).items()}


def _states(run: UnitRun, study: Study, base: Model, files: dict[str, Path]) -> dict[str, Any]:
    from .representation import encode_states

    model = run.model(base)
    states = _pooled(study, model, files)
    atomic_write_text(run.path(run.unit.produces[0]), json.dumps(
        {"model": model, "languages": {lang: encode_states(s) for lang, s in states.items()}}))
    first = next(iter(states.values()))
    return {"layers": first.shape[0], "items": first.shape[1]}


def _represent(run: UnitRun, study: Study, rm: RM, states: Scores | None, files: dict[str, Path]) -> dict[str, Any]:
    from .representation import RepresentationTable, decode_states, similarity_rows

    rm_states = _pooled(study, run.model(rm.model), files)
    base_states = None
    if states is not None:
        saved = json.loads(run.path(states).read_text(encoding="utf-8"))["languages"]
        base_states = {lang: decode_states(saved[lang]) for lang in rm_states}
    first = next(iter(rm_states.values()))
    table = RepresentationTable(layers=first.shape[0], pooling=study.representation.pooling, items=first.shape[1])
    similarity_rows(row_label(rm.key, "direct"), rm_states, base_states, table)
    atomic_write_text(run.path(run.unit.produces[0]), json.dumps(table.to_json(), ensure_ascii=False))
    return {"layers": table.layers, "items": table.items}


def _matrix(run: UnitRun, sp: StudyPlan) -> dict[str, Any]:
    from .report import collect_matrix, write_matrix

    matrix = collect_matrix(sp.study, [run.path(a) for a in run.unit.consumes])
    write_matrix(sp, matrix, run.path(MATRIX_ART))
    return {"rms": len(matrix.rows), "targets": len(matrix.targets)}


def _representation(run: UnitRun, sp: StudyPlan) -> dict[str, Any]:
    from .report import collect_representation, write_representation

    table = collect_representation([run.path(a) for a in run.unit.consumes])
    write_representation(sp, table, run.path(REPRESENTATION_ART))
    return {"rows": len(table.rows), "layers": table.layers}
