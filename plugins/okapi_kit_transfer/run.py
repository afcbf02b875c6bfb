"""``okapi-kit rm-transfer`` as units of the pipeline's graph: the same planner (every problem
before any work), runner (manifest, lock, skipping what is unchanged) and run-folder layout.

Units: ``base_model`` (when RMs are trained), ``rm_transfer/train/<source>`` (one RM per source
with preference data), ``rm_transfer/score/<method>/<source>/<target>`` (every RM on every
target's test set, through each transfer method) and ``rm_transfer/represent/<source>``. The
matrix, the representation table, their figures and the leaderboard rows are made from the
units' outputs after the run (cheap, and always in step with them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from okapi_kit.config import ComponentChoice, PipelineConfig
from okapi_kit.errors import OkapiError
from okapi_kit.graph import Model, Plan, RunLayout, Scores, Unit, UnitRun, check_name
from okapi_kit.leaderboard import ResultRow
from okapi_kit.prompts import PromptFormatter
from okapi_kit.records import atomic_write_text

from .config import TransferConfig

VERSION = 1
TRAIN, SCORE, REPRESENT = "rm_transfer_train", "rm_transfer_score", "rm_transfer_represent"
TEST_NAMES = ("{lang}.jsonl", "{lang}.json", "{lang}/test.jsonl", "{lang}/test.json")
CATEGORY_COLUMNS = ("category", "subset", "source")
PARALLEL = "parallel"


class TransferLayout(RunLayout):
    """The run folder of ``rm-transfer``: the pipeline's layout, and the report's files."""

    @property
    def report_dir(self) -> Path:
        return self.run_dir / "rm-transfer"

    def report(self, name: str) -> Path:
        return self.report_dir / name

    @staticmethod
    def scores(method: str, source: str, target: str) -> Scores:
        return Scores(f"rm_transfer.{method}", source, target)

    @staticmethod
    def representation(source: str) -> Scores:
        return Scores("rm_transfer.representation", source, PARALLEL)


def row_label(source: str, method: str) -> str:
    """The RM's name in the matrix and the leaderboard: ``rm-en``, or ``rm-en-<method>`` when
    the transfer method is not ``direct``."""
    return f"rm-{source}" if method == "direct" else f"rm-{source}-{method}"


# ------------------------------------------------------------------ test sets


@dataclass(frozen=True)
class TestRow:
    id: str
    prompt: str
    chosen: str
    rejected: str
    category: str


def test_file(data_dir: Path, lang: str) -> Path:
    """``<lang>.jsonl``, ``<lang>.json``, ``<lang>/test.jsonl`` or ``<lang>/test.json``."""
    for name in TEST_NAMES:
        path = data_dir / name.format(lang=lang)
        if path.is_file():
            return path
    raise OkapiError(f"no test set for {lang!r} in {data_dir}", where="targets.data_dir",
                     hint=f"expected {lang}.jsonl or {lang}/test.jsonl: rows of prompt, chosen, rejected "
                     "and a category (Multilingual RewardBench's schema)")


def read_test_rows(path: Path, *, limit: int | None = None, category_column: str | None = None) -> list[TestRow]:
    """The rows of a test set; ids are the rows' ``id`` (or their position when absent or repeated)."""
    from okapi_kit.readers import read_rows

    raw = [obj for _, obj in read_rows(path)]
    raw = raw[:limit] if limit else raw
    for i, obj in enumerate(raw):
        if not isinstance(obj, dict):
            raise OkapiError(f"row {i} is a {type(obj).__name__}, not a JSON object", where=str(path))
        missing = [k for k in ("prompt", "chosen", "rejected") if not isinstance(obj.get(k), str)]
        if missing:
            raise OkapiError(f"row {i} has no text in {', '.join(missing)}", where=str(path),
                             hint="rows need prompt, chosen and rejected (Multilingual RewardBench's schema)")
    if not raw:
        raise OkapiError("the test set has no rows", where=str(path))
    column = category_column
    if column is not None and any(column not in obj for obj in raw):
        raise OkapiError(f"a row has no {column!r} column", where=str(path), hint="check targets.category_column")
    if column is None:
        column = next((c for c in CATEGORY_COLUMNS if all(c in obj for obj in raw)), None)
    ids = [str(obj.get("id", i)) for i, obj in enumerate(raw)]
    if len(set(ids)) != len(ids):
        ids = [str(i) for i in range(len(raw))]
    return [TestRow(i, obj["prompt"], obj["chosen"], obj["rejected"], str(obj[column]) if column else "all")
            for i, obj in zip(ids, raw)]


def formatter(style: str, model: str, trust_remote_code: bool = False):
    """``fmt(instruction, input)``: the prompt as the RMs see it, in training and testing alike."""
    if style == "raw":
        return lambda instruction, input="": f"{instruction}\n\n{input}" if input.strip() else instruction
    return PromptFormatter(style, model, trust_remote_code=trust_remote_code)


# ------------------------------------------------------------------ planning


class TransferPlan:
    """The planned units of an ``rm-transfer`` config, and where their outputs are."""

    def __init__(self, cfg: TransferConfig, plan: Plan):
        self.cfg = cfg
        self.plan = plan
        self.layout = TransferLayout(plan.layout.run_dir)
        self.matrix: Any = None  # set by write_report

    @property
    def units(self) -> list[Unit]:
        return self.plan.units


def build_transfer_plan(cfg: TransferConfig, *, base_dir: Path, run_dir: Path, registry: Any, ui: Any = None,
                        source: str = "config") -> TransferPlan:
    """Plan every unit; raise every problem found at once (nothing is run or written)."""
    from okapi_kit.stages import base_model

    pcfg = PipelineConfig(name=cfg.name, seed=cfg.seed, base_model=cfg.base_model, languages=cfg.languages(),
                          trust_remote_code=cfg.trust_remote_code,
                          prompt_template="alpaca" if cfg.prompt_template == "raw" else cfg.prompt_template)
    p = Plan(pcfg, base_dir=base_dir, run_dir=run_dir, registry=registry, source=source)
    p.ui = ui
    try:
        check_name(cfg.name, where=f"{source}: name", reserved=frozenset())
    except OkapiError as exc:
        p.problems.append(exc)
    base_model.plan(p)
    _plan_sources(p, cfg)
    scoring = p.component("reward_source", ComponentChoice(name="reward_model",
                                                           options={**cfg.scoring, "path": "<each RM>"}), "scoring")
    methods = _plan_methods(p, cfg)
    data_dir = p.resolve_path(cfg.targets.data_dir)
    tests: dict[str, Path] = {}
    for lang in cfg.targets.languages:
        try:
            tests[lang] = test_file(data_dir, lang)
            read_test_rows(tests[lang], limit=cfg.targets.limit, category_column=cfg.targets.category_column)
        except OkapiError as exc:
            where = f"targets ({exc.where})" if exc.where else "targets"
            p.problems.append(OkapiError(exc.message, where=f"{source}: {where}", hint=exc.hint))
    if scoring is not None:
        for key in cfg.sources:
            for i, m in methods:
                for lang, path in tests.items():
                    _add_score_unit(p, cfg, key, i, m, lang, path)
    if cfg.representation is not None:
        _plan_representation(p, cfg, data_dir)
    p.check()
    return TransferPlan(cfg, p)


def _plan_sources(p: Plan, cfg: TransferConfig) -> None:
    trained = [k for k, s in cfg.sources.items() if s.data is not None]
    trainer = p.component("trainer", cfg.trainer, "trainer") if trained else None
    if trainer is not None and getattr(trainer, "produces", "") != "reward_model":
        p.problem(f"trainer {cfg.trainer.name!r} does not train a reward model", where="trainer",
                  hint="use a reward-model trainer such as 'reward'")
        trainer = None
    from okapi_kit.stages.common import component_reads

    reads, trainer_files = component_reads(p, "trainer") if trainer is not None else ({}, [])
    for key, src in cfg.sources.items():
        where = f"sources.{key}"
        try:
            check_name(key, where=f"{p.source_name}: {where}")
        except OkapiError as exc:
            p.problems.append(exc)
            p.not_planned(Model("rm", key))
            continue
        if src.model is not None:
            p.supply_model(Model("rm", key), src.model, f"{where}.model")
            if src.base is not None:
                p.supply_model(Model("base", key), src.base, f"{where}.base")
            continue
        files = _data_files(p, src.data, f"{where}.data", cfg.language_of(key))
        if trainer is None or files is None:
            p.not_planned(Model("rm", key))
            continue
        p.add(Unit(f"rm_transfer/train/{key}", TRAIN, VERSION,
                   reads={"trainer": reads, "pairs": cfg.pairs, "seed": cfg.seed,
                          "prompt_template": cfg.prompt_template, "language": cfg.language_of(key)},
                   consumes=[Model("base")], produces=[Model("rm", key)], files=[*files, *trainer_files],
                   run=lambda run, key=key, files=files: _train(run, cfg, key, files)))


def _data_files(p: Plan, given: str | list[str], where: str, lang: str) -> list[Path] | None:
    """The preference files of a source, read once now so that a bad file fails before any work."""
    from okapi_kit.readers import read_rankings

    paths = [p.resolve_path(x) for x in ([given] if isinstance(given, str) else given)]
    for path in paths:
        if not path.exists():
            p.problem(f"data file not found: {path}", where=where,
                      hint=f"relative paths are taken from the config's folder ({p.base_dir})")
            return None
    try:
        if not read_rankings([str(x) for x in paths], lang=lang):
            raise OkapiError("no preference pairs", where=str(paths[0]))
    except OkapiError as exc:
        p.problems.append(OkapiError(exc.message, where=f"{p.source_name}: {where} ({exc.where})", hint=exc.hint))
        return None
    return paths


def _plan_methods(p: Plan, cfg: TransferConfig) -> list[tuple[int, Any]]:
    out = []
    for i, choice in enumerate(cfg.transfer):
        where = f"transfer[{i}]"
        try:
            check_name(choice.key, where=f"{p.source_name}: {where}", reserved=frozenset())
        except OkapiError as exc:
            p.problems.append(exc)
            continue
        method = p.component("transfer", choice, where)
        if method is None:
            continue
        check = getattr(method, "check", None)
        for key in cfg.sources:
            try:
                if check is not None:
                    check(cfg.language_of(key), [t for t in cfg.targets.languages if t != cfg.language_of(key)])
            except OkapiError as exc:
                p.problems.append(OkapiError(exc.message, where=f"{p.source_name}: {where}", hint=exc.hint))
                break
        else:
            out.append((i, choice))
    return out


def _add_score_unit(p: Plan, cfg: TransferConfig, key: str, i: int, choice: Any, lang: str, path: Path) -> None:
    from okapi_kit.stages.common import component_reads

    reads, files = component_reads(p, f"transfer[{i}]")
    p.add(Unit(f"rm_transfer/score/{choice.key}/{key}/{lang}", SCORE, VERSION,
               reads={"transfer": reads, "scoring": component_reads(p, "scoring")[0]["options"],
                      "prompt_template": cfg.prompt_template, "limit": cfg.targets.limit,
                      "category_column": cfg.targets.category_column, "rm_language": cfg.language_of(key)},
               consumes=[Model("rm", key)], produces=[TransferLayout.scores(choice.key, key, lang)],
               files=[path, *files],
               run=lambda run: _score(run, cfg, key, i, lang, path)))


def _plan_representation(p: Plan, cfg: TransferConfig, default_dir: Path) -> None:
    rep = cfg.representation
    data_dir = p.resolve_path(rep.data_dir) if rep.data_dir else default_dir
    langs = rep.languages or cfg.targets.languages
    if len(langs) < 2:
        p.problem("the representation analysis compares two languages or more", where="representation.languages")
        return
    files = {}
    for lang in langs:
        try:
            files[lang] = test_file(data_dir, lang)
        except OkapiError as exc:
            p.problems.append(OkapiError(exc.message, where=f"{p.source_name}: representation", hint=exc.hint))
    if len(files) != len(langs):
        return
    try:
        shared = parallel_rows(files, rep.limit)
    except OkapiError as exc:
        p.problems.append(OkapiError(exc.message, where=f"{p.source_name}: representation", hint=exc.hint))
        return
    if len(shared[langs[0]]) < 2:
        p.problem("fewer than two rows share an id in every language", where="representation",
                  hint="parallel inputs are rows with the same id in each language's file")
        return
    for key, src in cfg.sources.items():
        # the RM against the model it was trained from: base_model for a trained RM, the given
        # base for a given one (none given: no such comparison)
        base = Model("base") if src.data is not None else Model("base", key) if src.base is not None else None
        consumes = [Model("rm", key)] + ([base] if base is not None else [])
        p.add(Unit(f"rm_transfer/represent/{key}", REPRESENT, VERSION,
                   reads={"representation": rep.model_dump(mode="json", exclude={"data_dir", "batch_size", "device"}),
                          "languages": langs, "prompt_template": cfg.prompt_template},
                   consumes=consumes, produces=[TransferLayout.representation(key)], files=list(files.values()),
                   run=lambda run, key=key, files=files: _represent(run, cfg, key, files)))


def parallel_rows(files: dict[str, Path], limit: int) -> dict[str, list[TestRow]]:
    """The first ``limit`` rows whose id is in every language's file, in the first file's order."""
    rows = {lang: read_test_rows(path) for lang, path in files.items()}
    by_id = {lang: {r.id: r for r in rs} for lang, rs in rows.items()}
    first = next(iter(rows))
    shared = [r.id for r in rows[first] if all(r.id in ids for ids in by_id.values())][:limit]
    return {lang: [by_id[lang][i] for i in shared] for lang in rows}


# ------------------------------------------------------------------ running


def _train(run: UnitRun, cfg: TransferConfig, key: str, files: list[Path]) -> dict[str, Any]:
    from okapi_kit.readers import read_rankings
    from okapi_kit.stages.common import train_model
    from okapi_kit.stages.reward_model import kwise_rankings, preference_pairs

    plan = run.plan
    base = run.model(Model("base"))
    fmt = formatter(cfg.prompt_template, base, cfg.trust_remote_code)
    trainer = plan.get_component("trainer")
    rankings = read_rankings([str(f) for f in files], lang=cfg.language_of(key))

    def prompt(r: Any) -> str:
        return fmt(r.instruction, r.input or "") if r.instruction is not None else fmt(r.prompt)

    pick = kwise_rankings if getattr(trainer, "data", "") == "ranking" else preference_pairs
    records = pick(rankings, cfg.pairs, prompt)
    return train_model(run, trainer, model=base, records=records, languages=[cfg.language_of(key)], ui=plan.ui)


_LOADED: dict[str, Any] = {}  # the reward source of the RM being scored, shared by its units


def _reward_source(plan: Plan, cfg: TransferConfig, model: str) -> Any:
    """One reward_model source per RM, loaded once for all its score units (they run one
    after another); only the last one is kept in memory."""
    from okapi_kit.registry import create_component

    if model not in _LOADED:
        _LOADED.clear()
        _LOADED[model] = create_component(plan.registry, "reward_source", "reward_model",
                                          {**cfg.scoring, "path": model}, where="scoring")
    return _LOADED[model]


def _score(run: UnitRun, cfg: TransferConfig, key: str, i: int, target: str, path: Path) -> dict[str, Any]:
    plan = run.plan
    rm = run.model(Model("rm", key))
    rows = read_test_rows(path, limit=cfg.targets.limit, category_column=cfg.targets.category_column)
    fmt = formatter(cfg.prompt_template, rm, cfg.trust_remote_code)
    prompts = [fmt(r.prompt) for r in rows]
    method = plan.get_component(f"transfer[{i}]")
    n = len(rows)
    before = getattr(method, "untranslated", 0)
    values = method.score(_reward_source(plan, cfg, rm), prompts + prompts, [r.chosen for r in rows] +
                          [r.rejected for r in rows], rm_language=cfg.language_of(key), languages=[target] * (2 * n))
    if len(values) != 2 * n:
        raise OkapiError(f"transfer method {method.name!r} returned {len(values)} rewards for {2 * n} responses",
                         where=run.unit.key)
    out = [{"id": r.id, "category": r.category, "chosen": c, "rejected": j, "correct": c > j}
           for r, c, j in zip(rows, values[:n], values[n:])]
    accuracy = sum(o["correct"] for o in out) / n
    atomic_write_text(run.path(run.unit.produces[0]), json.dumps(
        {"rm": key, "model": rm, "method": cfg.transfer[i].key, "rm_language": cfg.language_of(key),
         "target": target, "test_set": str(path), "accuracy": accuracy, "rows": out}, ensure_ascii=False))
    info = {"accuracy": round(accuracy, 4), "rows": n}
    untranslated = getattr(method, "untranslated", 0) - before  # texts scored as written
    return {**info, "untranslated": untranslated} if untranslated else info


def _represent(run: UnitRun, cfg: TransferConfig, key: str, files: dict[str, Path]) -> dict[str, Any]:
    from .representation import RepresentationTable, pooled_states, similarity_rows

    rep = cfg.representation
    rm = run.model(Model("rm", key))
    base_art = next((a for a in run.unit.consumes if isinstance(a, Model) and a.label == "base"), None)
    base = run.model(base_art) if base_art is not None else None
    fmt = formatter(cfg.prompt_template, rm, cfg.trust_remote_code)
    rows = parallel_rows(files, rep.limit)

    def states(model: str) -> dict[str, Any]:
        return {lang: pooled_states(model, [(fmt(r.prompt), getattr(r, rep.response)) for r in rs],
                                    pooling=rep.pooling, batch_size=rep.batch_size, device=rep.device,
                                    trust_remote_code=cfg.trust_remote_code) for lang, rs in rows.items()}

    rm_states = states(rm)
    first = next(iter(rm_states.values()))
    table = RepresentationTable(layers=first.shape[0], pooling=rep.pooling, items=first.shape[1])
    similarity_rows(row_label(key, "direct"), rm_states, states(base) if base is not None else None, table)
    atomic_write_text(run.path(run.unit.produces[0]), json.dumps(table.to_json(), ensure_ascii=False))
    return {"layers": table.layers, "items": table.items}


# ------------------------------------------------------------------ the report


def collect_matrix(tp: TransferPlan) -> Any:
    """The transfer matrix from the score units' files."""
    from .matrix import RMRow, transfer_matrix

    cfg = tp.cfg
    rows, outcomes, categories = [], {}, {}
    for key in cfg.sources:
        for choice in cfg.transfer:
            rows.append(RMRow(row_label(key, choice.key), cfg.language_of(key), choice.key))
    for unit in tp.units:
        if unit.stage != SCORE:
            continue
        data = json.loads(tp.plan.outputs[unit.key][unit.produces[0]].path.read_text(encoding="utf-8"))
        label = row_label(data["rm"], data["method"])
        outcomes[(label, data["target"])] = {r["id"]: r["correct"] for r in data["rows"]}
        categories.setdefault(data["target"], {r["id"]: r["category"] for r in data["rows"]})
    return transfer_matrix(rows, list(cfg.targets.languages), outcomes, categories)


def collect_representation(tp: TransferPlan) -> Any:
    from .representation import RepresentationTable

    table = None
    for unit in tp.units:
        if unit.stage == REPRESENT:
            path = tp.plan.outputs[unit.key][unit.produces[0]].path
            part = RepresentationTable.from_json(json.loads(path.read_text(encoding="utf-8")))
            table = part if table is None else table.merged(part)
    return table


def result_rows(tp: TransferPlan, matrix: Any) -> list[ResultRow]:
    """Leaderboard rows: task ``rm_accuracy`` (and ``rm_accuracy.<category>``), method the RM's
    label, language the target; per-row items for paired comparisons."""
    cfg = tp.cfg
    models = {}
    for key, src in cfg.sources.items():
        models[key] = src.model if src.model is not None else (cfg.base_model or "-")
    outcomes: dict[tuple[str, str], dict[str, bool]] = {}
    for unit in tp.units:
        if unit.stage == SCORE:
            data = json.loads(tp.plan.outputs[unit.key][unit.produces[0]].path.read_text(encoding="utf-8"))
            outcomes[(row_label(data["rm"], data["method"]), data["target"])] = \
                {r["id"]: (r["correct"], r["category"]) for r in data["rows"]}
    protocol = (f"rm-transfer; r(chosen) > r(rejected), ties wrong; {cfg.prompt_template} prompt")
    out = []
    sources = {row_label(k, c.key): k for k in cfg.sources for c in cfg.transfer}
    for c in matrix.cells.values():
        got = outcomes[(c.row, c.target)]
        items = {i: float(ok) for i, (ok, cat) in got.items() if c.category in ("all", cat)}
        p = c.accuracy
        out.append(ResultRow(run=cfg.name, model=models[sources[c.row]], method=c.row, language=c.target,
                             task="rm_accuracy" if c.category == "all" else f"rm_accuracy.{c.category}",
                             metric="accuracy", value=p, stderr=(p * (1 - p) / c.n) ** 0.5, n=c.n,
                             protocol=protocol, items=items))
    return out


def write_report(tp: TransferPlan) -> dict[str, Path]:
    """The matrix (JSON, markdown, PNG) and the representation table (JSON, markdown, PNG)."""
    from .matrix import plot_png, to_markdown

    layout = tp.layout
    layout.report_dir.mkdir(parents=True, exist_ok=True)
    matrix = collect_matrix(tp)
    written = {
        "matrix_json": layout.report("matrix.json"), "matrix_md": layout.report("matrix.md"),
        "matrix_png": layout.report("matrix.png")}
    atomic_write_text(written["matrix_json"], json.dumps(matrix.to_json(), indent=2, ensure_ascii=False))
    atomic_write_text(written["matrix_md"], to_markdown(matrix, title=f"Reward-model transfer: {tp.cfg.name}"))
    written["matrix_png"].write_bytes(plot_png(matrix))
    table = collect_representation(tp)
    if table is not None:
        from .representation import plot_png as rep_png

        rep = {"representation_json": layout.report("representation.json"),
               "representation_md": layout.report("representation.md"),
               "representation_png": layout.report("representation.png")}
        atomic_write_text(rep["representation_json"], json.dumps(table.to_json(), indent=2, ensure_ascii=False))
        atomic_write_text(rep["representation_md"], "# Representation shift\n\n"
                          f"Mean cosine similarity of {table.pooling}-token hidden states over {table.items} "
                          "parallel items, per layer (L0: embeddings).\n\n" + table.to_markdown() + "\n")
        rep["representation_png"].write_bytes(rep_png(table))
        written.update(rep)
    tp.matrix = matrix
    return written
