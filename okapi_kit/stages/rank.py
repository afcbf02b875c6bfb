"""Ranking the K sampled responses of each prompt, best first."""

from __future__ import annotations

from typing import Any

from ..components import Failed, RankResult
from ..errors import OkapiError
from ..graph import Plan, Records, Unit, UnitRun
from ..records import Ranking, SampleSet, read_jsonl, write_jsonl
from .common import chunk_size, chunked, component_reads, report_failures, usage_of

NAME, VERSION = "rank", 2
WHERE = "ranking.ranker"


def plan(p: Plan) -> None:
    c = p.cfg.ranking
    todo = [lang for lang in p.cfg.languages if not p.has(Records("rankings", lang))]
    if c is None or not todo:
        return
    if p.component("ranker", c.ranker, WHERE) is None:
        p.not_planned(*[Records("rankings", lang) for lang in todo])
        return
    reads, files = component_reads(p, WHERE)
    for lang in todo:
        p.add(Unit(f"rank/{lang}", NAME, VERSION, reads={"ranker": reads},
                   consumes=[Records("samples", lang)], produces=[Records("rankings", lang)], files=files,
                   run=lambda run, lang=lang: _run(run, lang)))


def _run(run: UnitRun, lang: str) -> dict[str, Any]:
    ranker = run.plan.get_component(WHERE)
    items = read_jsonl(run.path(Records("samples", lang)), SampleSet)
    failures: list[dict[str, Any]] = []

    def work(chunk: list[SampleSet]) -> list[dict[str, Any]]:
        orders = ranker.rank(chunk)
        if len(orders) != len(chunk):
            raise OkapiError(f"ranker {ranker.name!r} returned {len(orders)} rankings for {len(chunk)} items",
                             where=f"rank/{lang}")
        rows = []
        for s, order in zip(chunk, orders):
            if isinstance(order, Failed):
                failures.append({"id": s.id, "reason": order.reason})
                continue
            scores = details = None
            if isinstance(order, RankResult):  # a judge's scores and permutation are kept
                order, scores, details = order.order, order.scores, order.details
            if sorted(order) != list(range(len(s.responses))):
                raise OkapiError(f"ranker {ranker.name!r} returned {order} for {len(s.responses)} "
                                 f"responses of {s.id!r}: not a permutation", where=f"rank/{lang}")
            rows.append(Ranking(id=s.id, lang=lang, prompt=s.prompt, responses=s.responses,
                                order=list(order), ranker=ranker.name,
                                scores=list(scores) if scores is not None else None, details=details).to_dict())
        return rows

    done = chunked(run, items, chunk_size(ranker), lambda s: s.id, work, ui=run.plan.ui)
    report_failures(run, failures, f"{lang} ranking(s) by {ranker.name!r}")
    write_jsonl(run.path(Records("rankings", lang)), [done[s.id] for s in items])
    return {"rankings": len(items), **usage_of(ranker)}
