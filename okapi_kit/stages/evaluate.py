"""Evaluation: one unit per (evaluator, model, language), so adding a model or an evaluator
runs only what is new; results go to the leaderboard store."""

from __future__ import annotations

import json
from typing import Any

from ..components import EvalTarget
from ..errors import OkapiError
from ..graph import Model, Plan, Records, Scores, Unit, UnitRun, check_name
from ..leaderboard import ResultRow, check_row
from ..records import SampleSet, atomic_write_text, read_jsonl
from .common import component_reads, report_failures, usage_of
from .generate import model_of

NAME, VERSION = "evaluate", 2


def plan(p: Plan) -> None:
    ev = p.cfg.evaluation
    for i, choice in enumerate(ev.evaluators):
        where = f"evaluation.evaluators[{i}]"
        if choice.label is not None:  # it names the folder of the scores
            try:
                check_name(choice.label, where=f"{p.source_name}: {where}.label", reserved=frozenset())
            except OkapiError as exc:
                p.problems.append(exc)
                continue
        evaluator = p.component("evaluator", choice, where)
        if evaluator is None:
            continue
        reads, files = component_reads(p, where)
        # a comparing evaluator (a win rate) reads its baseline's responses too, and scores
        # every model but the baseline itself
        baseline = evaluator.baseline_label() if evaluator.uses_generations else None
        if baseline is not None and ev.models and set(ev.models) <= {baseline}:
            p.problem(f"evaluator {choice.key!r} compares models against {baseline!r}, but evaluation.models "
                      "lists no other model", where="evaluation.models",
                      hint=f"list the models to compare with {baseline!r}")
            continue
        for lang in p.cfg.languages:
            try:
                evaluator.check(lang)
            except OkapiError as exc:
                p.problems.append(OkapiError(exc.message, where=f"{p.source_name}: {where}", hint=exc.hint))
                continue
            # an evaluator of reward models (rm_accuracy) scores the run's RM when there is one;
            # else the models listed are reward models (`okapi-kit evaluate --model RM`)
            run_rm = evaluator.target_kind == "reward_model" and p.has(Model("rm", p.scope(lang)))
            labels = ["rm"] if run_rm else ev.models
            for label in labels:
                if label == baseline:
                    continue
                consumes: list[Any] = [model_of(p, label, lang)]
                if evaluator.uses_generations:
                    consumes += [Records("eval_prompts", lang), Records("generations", lang, label)]
                if baseline is not None:
                    consumes.append(Records("generations", lang, baseline))
                if evaluator.uses_reward_model:
                    consumes.append(Model("rm", p.scope(lang)))
                p.add(Unit(f"evaluate/{choice.key}/{label}/{lang}", NAME, VERSION,
                           reads={"evaluator": reads, "seed": p.cfg.seed,
                                  "trust_remote_code": p.cfg.trust_remote_code},
                           consumes=consumes, produces=[Scores(choice.key, label, lang)], files=files,
                           run=lambda run, where=where, label=label, lang=lang: _run(run, where, label, lang)))


def _run(run: UnitRun, where: str, label: str, lang: str) -> dict[str, Any]:
    plan = run.plan
    evaluator = plan.get_component(where)
    model = run.model(model_of(plan, label, lang))
    prompts: list[str] = []
    responses = baseline_responses = None
    baseline = evaluator.baseline_label() if evaluator.uses_generations else None
    if evaluator.uses_generations:
        gens = read_jsonl(run.path(Records("generations", lang, label)), SampleSet)
        prompts, responses = [g.prompt for g in gens], [g.responses for g in gens]
        if baseline is not None:
            baseline_responses = _baseline_responses(run, gens, baseline, lang)
    work_dir = run.work_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    reward_model = run.model(Model("rm", plan.scope(lang))) if evaluator.uses_reward_model else None
    target = EvalTarget(model=model, label=label, language=lang, work_dir=work_dir, prompts=prompts,
                        responses=responses, reward_model=reward_model, seed=plan.cfg.seed,
                        trust_remote_code=plan.cfg.trust_remote_code, baseline=baseline,
                        baseline_responses=baseline_responses)
    results = evaluator.evaluate(target)
    # items the evaluator could not score (a judge's failed requests): the unit fails with
    # their reasons; what was answered stays in the request cache, so a rerun asks only these
    report_failures(run, target.failures, f"item(s) of {evaluator.name!r} on {label}/{lang}")
    scores = [dict(s.__dict__, evaluator=evaluator.name) for s in results]
    for s in scores:  # a NaN fails this unit now, not the results store after the whole run
        check_row(ResultRow(run=plan.cfg.name, model=model, method=label, language=lang, task=s["task"],
                            metric=s["metric"], value=float(s["value"]), stderr=s.get("stderr"),
                            n=int(s["n"]), protocol=s.get("protocol", ""), items=s.get("items") or None))
    out = run.path(run.unit.produces[0])
    atomic_write_text(out, json.dumps({"model": model, "label": label, "language": lang, "scores": scores},
                                      indent=2, ensure_ascii=False))
    return {"scores": len(scores), **usage_of(evaluator)}


def _baseline_responses(run: UnitRun, gens: list[SampleSet], baseline: str, lang: str) -> list[list[str]]:
    """The baseline's responses in the order of the model's prompts, matched by prompt id."""
    by_id = {g.id: g.responses for g in read_jsonl(run.path(Records("generations", lang, baseline)), SampleSet)}
    missing = [g.id for g in gens if g.id not in by_id]
    if missing:
        raise OkapiError(f"the baseline {baseline!r} has no responses to {len(missing)} of the prompts, "
                         f"e.g. {missing[0]!r}", where=run.unit.key,
                         hint="both are made from the same evaluation prompts; rerun to make them again")
    return [by_id[g.id] for g in gens]


def result_rows(plan: Plan) -> list[ResultRow]:
    """Every score file of this plan's evaluation units, as leaderboard rows (with the per-item
    values of scores that have them)."""
    rows = []
    model_name = plan.cfg.base_model or "-"
    for unit in plan.units:
        if unit.stage != NAME:
            continue
        art = unit.produces[0]
        path = plan.outputs[unit.key][art].path
        if not path.exists():
            continue
        for s in json.loads(path.read_text(encoding="utf-8"))["scores"]:
            rows.append(ResultRow(run=plan.cfg.name, model=model_name, method=art.model, language=art.lang,
                                  task=s["task"], metric=s["metric"], value=float(s["value"]),
                                  stderr=s.get("stderr"), n=int(s["n"]), protocol=s.get("protocol", ""),
                                  items=s.get("items") or None))
    return rows
