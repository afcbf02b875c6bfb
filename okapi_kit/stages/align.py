"""Alignment of the SFT model: preference methods (DPO, IPO) on rankings, online RL on prompts,
offline RL (``copg_offline``) on scored pairs of the rankings."""

from __future__ import annotations

from typing import Any

from ..components import Trainer
from ..errors import OkapiError
from ..graph import Model, Plan, Records, Unit, UnitRun, check_name
from ..records import Instruction, read_jsonl
from . import scored_pairs as scored
from .common import component_reads, prompt_formatter, train_model
from .reward_model import preference_pairs, rankings_of, reformatter

NAME, VERSION = "align", 2
REWARDED = ("prompts", "scored_pairs")  # trainers whose data a reward scores


def plan(p: Plan) -> None:
    for i, a in enumerate(p.cfg.alignment):
        where = f"alignment[{i}]"
        unplanned = [Model(a.method, scope) for scope in p.scopes()]
        try:
            check_name(a.method, where=f"{p.source_name}: {where}.method")
        except OkapiError as exc:
            p.problems.append(exc)
            p.not_planned(*unplanned)
            continue
        trainer = p.component("trainer", a.trainer, f"{where}.trainer")
        if trainer is None:
            p.not_planned(*unplanned)
            continue
        if not isinstance(trainer, Trainer) or getattr(trainer, "produces", "policy") != "policy":
            p.problem(f"trainer {a.trainer.name!r} does not align a policy (it trains a "
                      f"{getattr(trainer, 'produces', '?')})", where=f"{where}.trainer",
                      hint="use a policy trainer such as 'dpo' here, and 'reward' under reward_model")
            p.not_planned(*unplanned)
            continue
        reads, files = component_reads(p, f"{where}.trainer")
        reward_reads: dict[str, Any] | None = None
        if trainer.data in REWARDED and a.reward is not None and a.reward.name is not None:
            if p.component("reward_source", a.reward, f"{where}.reward") is None:
                p.not_planned(*unplanned)
                continue
            reward_reads, reward_files = component_reads(p, f"{where}.reward")
            files = files + reward_files
        elif trainer.data in REWARDED and a.reward is not None:
            reward_reads = _plan_transfer(p, a, where)
            if reward_reads is None:
                p.not_planned(*unplanned)
                continue
            files = files + reward_reads.pop("files")
        for scope in p.scopes():
            if p.has(Model(a.method, scope)) and p.produced_by(Model(a.method, scope)) is None:
                continue  # supplied under models:
            langs = p.langs_of(scope)
            consumes: list[Any] = [Model("sft", scope)]
            if trainer.data in ("preference", "ranking", "scored_pairs"):
                consumes += [Records("rankings", lang) for lang in langs]
                if trainer.data == "scored_pairs":
                    extra = _pair_reward(p, a, scope, langs)
                    if extra is False:
                        p.not_planned(Model(a.method, scope))
                        continue
                    consumes += [extra] if extra is not None else []
            elif trainer.data == "prompts":
                consumes += [Records("prompts", lang) if p.has(Records("prompts", lang))
                             else Records("translations", lang) for lang in langs]
                if a.reward is None:
                    consumes.append(Model("rm", scope))
                elif a.reward.name is None:  # the RM of another language, or one at a path
                    consumes.append(_reward_model(p, a))
            else:
                consumes += [Records("translations", lang) for lang in langs]
            p.add(Unit(f"align/{a.method}" + (f"/{scope}" if scope else ""), NAME, VERSION,
                       reads={"trainer": reads, "pairs": a.pairs, "reward": reward_reads, "seed": p.cfg.seed,
                              "prompt_template": p.cfg.prompt_template},
                       consumes=consumes, produces=[Model(a.method, scope)], files=files,
                       run=lambda run, i=i, scope=scope, langs=langs: _run(run, i, scope, langs)))


def _run(run: UnitRun, i: int, scope: str | None, langs: list[str]) -> dict[str, Any]:
    plan = run.plan
    a = plan.cfg.alignment[i]
    where = f"alignment[{i}]"
    trainer = plan.get_component(f"{where}.trainer")
    sft = run.model(Model("sft", scope))
    reward = None
    if trainer.data == "preference":
        records = preference_pairs(rankings_of(run, langs), a.pairs, reformatter(run, sft))
    elif trainer.data == "scored_pairs":
        records = _scored_records(run, i, scope, langs, sft)
    elif trainer.data == "ranking":
        prompt = reformatter(run, sft)
        records = [{"prompt": prompt(r), "responses": r.ranked()} for r in rankings_of(run, langs)]
    else:
        fmt = prompt_formatter(plan, sft)
        rows = [r for art in run.unit.consumes if isinstance(art, Records)
                for r in read_jsonl(run.path(art), Instruction)]
        if trainer.data == "prompts":
            records = [{"prompt": fmt(r.instruction, r.input), "language": r.lang} for r in rows]
            reward = _reward_source(run, i, scope)
        else:
            records = [{"prompt": fmt(r.instruction, r.input), "completion": r.output} for r in rows
                       if r.output.strip()]
    return train_model(run, trainer, model=sft, records=records, languages=langs, ui=plan.ui,
                       reference_model=sft, reward=reward)


def _reward_source(run: UnitRun, i: int, scope: str | None) -> Any:
    """The reward an alignment's ``reward:`` names; without one, the run's reward model when this
    unit reads it (None when it does not)."""
    plan = run.plan
    a = plan.cfg.alignment[i]
    where = f"alignment[{i}]"
    if a.reward is not None and a.reward.name is not None:
        return plan.get_component(f"{where}.reward")
    rm = Model("rm", scope) if a.reward is None else _reward_model(plan, a)
    if rm not in run.unit.consumes:
        return None
    from ..registry import create_component

    reward = create_component(plan.registry, "reward_source", "reward_model", {"path": run.model(rm)},
                              where=f"{where}.reward")
    if a.reward is not None:
        from ..transfer import TransferredReward

        reward = TransferredReward(reward, plan.get_component(f"{where}.reward.transfer"),
                                   a.reward.from_ or a.reward.language or plan.cfg.source_language)
    return reward


def _pair_reward(p: Plan, a: Any, scope: str | None, langs: list[str]) -> Any:
    """What else a ``scored_pairs`` unit reads to score its pairs: the RM that ``reward: {from | path}``
    names; without ``reward:``, the run's RM when some ranking may lack scores. None for nothing
    more; False after reporting supplied rankings without scores that nothing could score."""
    if a.reward is not None:
        return _reward_model(p, a) if a.reward.name is None else None
    found = {lang: _unscored_supplied(p, lang) for lang in langs}
    if all(v == "" for v in found.values()):  # supplied, every record with its rewards
        return None
    if p.has(Model("rm", scope)):
        return Model("rm", scope)
    bad = [v for v in found.values() if v]
    for at in bad:
        p.problems.append(OkapiError(
            f"this record has no rewards, but trainer {a.trainer.name!r} learns from a reward per response",
            where=at, hint=scored.UNSCORED_HINT))
    return False if bad else None


def _unscored_supplied(p: Plan, lang: str) -> str | None:
    """For ``data.rankings.<lang>``: where (file:line) its first record without rewards is, or ""
    when every record has them. None for rankings this run makes (known only once ranked: their
    check is at run time) or a file the supplied stage could not read (it reports that)."""
    from ..readers import read_rows

    if p.produced_by(Records("rankings", lang)) != f"supplied/rankings/{lang}":
        return None
    given = p.cfg.data.rankings[lang]
    for source in [given] if isinstance(given, str) else given:
        path = p.resolve_path(source)
        try:
            rows = read_rows(path if path.exists() else source, fmt=p.cfg.data.format, split=p.cfg.data.split)
        except OkapiError:
            return None
        for row_where, obj in rows:
            if isinstance(obj, dict) and not scored.has_rewards(obj):
                return row_where
    return ""


def _scored_records(run: UnitRun, i: int, scope: str | None, langs: list[str], sft: str) -> list[dict[str, Any]]:
    """The scored pairs of the rankings: rewarded by the alignment's ``reward:`` if set, else by the
    rankings' own scores, else by the run's reward model."""
    a = run.plan.cfg.alignment[i]
    rankings = rankings_of(run, langs)
    prompt = reformatter(run, sft)
    rewards = None if a.reward is not None else scored.own_scores(rankings, run.unit.key)
    if rewards is None:
        reward = _reward_source(run, i, scope)
        if reward is None:
            first = next(r for r in rankings if r.scores is None)
            raise OkapiError(f"ranking {first.id!r} ({first.lang}) has no per-response scores, and trainer "
                             f"{a.trainer.name!r} learns from a reward per response", where=run.unit.key,
                             hint=scored.UNSCORED_HINT)
        rewards = scored.scored_by(reward, rankings, prompt, run.unit.key)
        del reward  # a reward model loaded here is freed before the policy trains
    return scored.scored_pairs(rankings, rewards, a.pairs, prompt)


def _reward_model(p: Plan, a: Any) -> Model:
    """The reward model an alignment's ``reward: {from: LANG}`` or ``{path: ...}`` names: the RM of
    LANG's scope (the multilingual RM when models are not per language), or a supplied one."""
    return Model("rm", p.scope(a.reward.from_)) if a.reward.from_ is not None else Model("reward", a.method)


def _plan_transfer(p: Plan, a: Any, where: str) -> dict[str, Any] | None:
    """Check ``reward: {from | path, transfer}``; its fingerprint input (with ``files``), or None
    after reporting a problem."""
    from ..config import ComponentChoice
    from ..languages import get_language

    r = a.reward
    rm_language = r.from_ or r.language or p.cfg.source_language
    try:
        get_language(rm_language, where=f"{p.source_name}: {where}.reward")
    except OkapiError as exc:
        p.problems.append(exc)
        return None
    if r.from_ is not None and p.cfg.model_scope == "per_language" and r.from_ not in p.cfg.languages:
        p.problem(f"reward: from {r.from_!r} names a language without a reward model of its own",
                  where=f"{where}.reward", hint=f"with model_scope: per_language, add {r.from_!r} to languages "
                  "(with its rankings or models.rm)")
        return None
    method = p.component("transfer", r.transfer or ComponentChoice(name="direct"), f"{where}.reward.transfer")
    if method is None:
        return None
    check = getattr(method, "check", None)
    if check is not None:
        try:
            check(rm_language, [lang for lang in p.cfg.languages if lang != rm_language])
        except OkapiError as exc:
            p.problems.append(OkapiError(exc.message, where=f"{p.source_name}: {where}.reward.transfer",
                                         hint=exc.hint))
            return None
    if r.path is not None:
        p.supply_model(Model("reward", a.method), r.path, f"{where}.reward.path")
    reads, files = component_reads(p, f"{where}.reward.transfer")
    return {"transfer": reads, "rm_language": rm_language, "from": r.from_, "files": files}
