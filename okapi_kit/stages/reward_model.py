"""Reward-model training on the rankings (all C(K,2) pairs, or best against worst)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..graph import Model, Plan, Records, Unit, UnitRun
from ..records import Ranking, read_jsonl
from .common import component_reads, prompt_formatter, train_model

NAME, VERSION = "reward_model", 3
WHERE = "reward_model.trainer"


def plan(p: Plan) -> None:
    c = p.cfg.reward_model
    scopes = [s for s in p.scopes() if not p.has(Model("rm", s))]
    if c is None or not scopes:
        return
    trainer = p.component("trainer", c.trainer, WHERE)
    if trainer is not None and getattr(trainer, "produces", "") != "reward_model":
        p.problem(f"trainer {c.trainer.name!r} does not train a reward model", where=WHERE,
                  hint="use a reward-model trainer such as 'reward'")
        trainer = None
    if trainer is None:
        p.not_planned(*[Model("rm", s) for s in scopes])
        return
    reads, files = component_reads(p, WHERE)
    for scope in scopes:
        langs = p.langs_of(scope)
        p.add(Unit("reward_model" if scope is None else f"reward_model/{scope}", NAME, VERSION,
                   reads={"trainer": reads, "pairs": c.pairs, "seed": p.cfg.seed,
                          "prompt_template": p.cfg.prompt_template},
                   consumes=[Model("sft", scope), *[Records("rankings", lang) for lang in langs]],
                   produces=[Model("rm", scope)], files=files,
                   run=lambda run, scope=scope, langs=langs: _run(run, scope, langs)))


def rankings_of(run: UnitRun, langs: list[str]) -> list[Ranking]:
    out: list[Ranking] = []
    for lang in langs:
        out += read_jsonl(run.path(Records("rankings", lang)), Ranking)
    return out


def reformatter(run: UnitRun, model: str) -> Callable[[Ranking], str]:
    """The prompt of a ranking as the model sees it: supplied rankings that carry their
    instruction and input are formatted with this run's prompt template."""
    fmt = prompt_formatter(run.plan, model)

    def prompt(r: Ranking) -> str:
        instruction = getattr(r, "instruction", None)
        return fmt(instruction, getattr(r, "input", None) or "") if instruction else r.prompt

    return prompt


def preference_pairs(rankings: list[Ranking], selection: str, prompt: Callable[[Ranking], str]) -> list[dict[str, Any]]:
    """``{prompt, chosen, rejected}`` from rankings; ``best_worst`` keeps the first against the last."""
    rows = []
    for r in rankings:
        best_first = r.ranked()
        pairs = [(best_first[0], best_first[-1])] if selection == "best_worst" else \
            [(best_first[i], best_first[j]) for i in range(len(best_first)) for j in range(i + 1, len(best_first))]
        text = prompt(r)
        rows += [{"prompt": text, "chosen": a, "rejected": b} for a, b in pairs if a != b]
    return rows


def kwise_rankings(rankings: list[Ranking], selection: str, prompt: Callable[[Ranking], str]) -> list[dict[str, Any]]:
    """``{prompt, responses}`` (best first) for a K-wise reward-model trainer: the whole ranking
    (all C(K,2) pairs enter its loss), or ``best_worst``: K = 2, the first against the last.
    A ranking of identical responses is left out."""
    rows = []
    for r in rankings:
        best_first = r.ranked()
        responses = best_first if selection != "best_worst" else [best_first[0], best_first[-1]]
        if len(set(responses)) > 1:  # as with pairs: identical responses teach nothing
            rows.append({"prompt": prompt(r), "responses": responses})
    return rows


def _run(run: UnitRun, scope: str | None, langs: list[str]) -> dict[str, Any]:
    plan = run.plan
    sft = run.model(Model("sft", scope))
    trainer = plan.get_component(WHERE)
    pick = kwise_rankings if getattr(trainer, "data", "") == "ranking" else preference_pairs
    records = pick(rankings_of(run, langs), plan.cfg.reward_model.pairs, reformatter(run, sft))
    return train_model(run, trainer, model=sft, records=records, languages=langs, ui=plan.ui)


