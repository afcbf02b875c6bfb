"""The pipeline runner: the stage graph, the run directory, the manifest and resume.

Every unit of work (``translate/vi``, ``sft``, ``evaluate/dpo/hi`` ...) has a fingerprint:
a hash of its own config section, its input files and the fingerprints of the units it
depends on. A unit whose manifest entry is ``done`` with the same fingerprint and whose
outputs exist is skipped; changing one stage's options therefore re-runs that stage and
everything downstream of it, and nothing upstream.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .components import Component, EvalTarget, Sampler, Trainer, TrainJob
from .config import ComponentChoice, PipelineConfig
from .errors import OkapiError
from .leaderboard import ResultRow, ResultsStore
from .plugins import plugin_manager, registry
from .prompts import PromptFormatter
from .readers import read_instructions
from .records import (
    Instruction,
    JsonlAppender,
    Ranking,
    RunInfo,
    SampleSet,
    atomic_write_text,
    read_jsonl,
    write_jsonl,
)
from .registry import create_component
from .ui import UI

MANIFEST = "manifest.json"


@dataclass
class Unit:
    key: str
    deps: list[str]
    config: str
    outputs: list[Path]
    run: Callable[[str], dict[str, Any]]  # receives its fingerprint, returns info for the manifest
    inputs: list[Path] = field(default_factory=list)


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _hash_inputs(path: Path) -> str:
    if path.is_dir():
        parts = [f"{p.relative_to(path)}:{_hash_file(p)}" for p in sorted(path.rglob("*")) if p.is_file()]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()
    return _hash_file(path) if path.exists() else "missing"


class Manifest:
    """``manifest.json`` in the run directory, rewritten atomically on every change."""

    def __init__(self, path: Path):
        self.path = path
        self.data: dict[str, Any] = {"units": {}}
        if path.exists():
            try:
                self.data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                raise OkapiError("the run manifest is corrupt", where=str(path),
                                 hint="rerun with --fresh to start this run over") from None

    @property
    def units(self) -> dict[str, dict[str, Any]]:
        return self.data.setdefault("units", {})

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data, indent=2, sort_keys=True))


class Pipeline:
    def __init__(self, cfg: PipelineConfig, *, base_dir: Path, run_dir: Path, db_path: Path | None = None,
                 ui: UI | None = None, config_text: str = ""):
        self.cfg = cfg
        self.base_dir = base_dir
        self.run_dir = run_dir
        self.db_path = db_path or run_dir.parent / "leaderboard.sqlite"
        self.ui = ui or UI()
        self.pm = plugin_manager()
        self.reg = registry()
        self.info = RunInfo(run_dir=run_dir, config_name=cfg.name, languages=list(cfg.languages))
        self.config_fingerprint = hashlib.sha256(cfg.model_dump_json().encode()).hexdigest()
        self._components: dict[str, Component] = {}
        self._fingerprints: dict[str, str] = {}
        self.summary: list[dict[str, Any]] = []
        self.validate()

    # ------------------------------------------------------------ components

    def component(self, kind: str, choice: ComponentChoice, where: str) -> Component:
        key = f"{kind}:{where}"
        if key not in self._components:
            self._components[key] = create_component(self.reg, kind, choice.name, choice.options,
                                                     where=where, base_dir=self.base_dir)
        return self._components[key]

    def validate(self) -> None:
        """Resolve every component and check every option, before any work is done."""
        c = self.cfg
        if c.instructions.generator is not None:
            self.component("generator", c.instructions.generator, "instructions.generator")
        if c.instructions.path is not None:
            path = self._local(c.instructions.path)
            if path is None and c.instructions.format != "hf" and _looks_like_path(c.instructions.path):
                raise OkapiError(f"instructions file not found: {c.instructions.path}",
                                 where="config: instructions.path",
                                 hint=f"paths are relative to the config's folder ({self.base_dir})")
        self.component("translator", c.translation.translator, "translation.translator")
        sft = self.component("trainer", c.sft.trainer, "sft.trainer")
        if not isinstance(sft, Trainer) or sft.data != "sft":
            raise OkapiError(f"trainer {c.sft.trainer.name!r} does not train on SFT data",
                             where="config: sft.trainer", hint="use a supervised trainer such as 'sft'")
        self.component("sampler", c.sampling.sampler, "sampling.sampler")
        self.component("ranker", c.ranking.ranker, "ranking.ranker")
        if c.reward_model is not None:
            rm = self.component("trainer", c.reward_model.trainer, "reward_model.trainer")
            if getattr(rm, "produces", "") != "reward_model":
                raise OkapiError(f"trainer {c.reward_model.trainer.name!r} does not train a reward model",
                                 where="config: reward_model.trainer", hint="use 'reward'")
        for i, a in enumerate(c.alignment):
            t = self.component("trainer", a.trainer, f"alignment[{i}].trainer")
            if t.data == "prompts" and a.reward is None and c.reward_model is None:
                raise OkapiError(f"alignment method {a.method!r} needs a reward",
                                 where=f"config: alignment[{i}]",
                                 hint="add a reward_model stage or give alignment[i].reward")
            if a.reward is not None:
                self.component("reward_source", a.reward, f"alignment[{i}].reward")
        for i, e in enumerate(c.evaluation.evaluators):
            self.component("evaluator", e, f"evaluation.evaluators[{i}]")
        if c.evaluation.sampler is not None:
            self.component("sampler", c.evaluation.sampler, "evaluation.sampler")
        if not _is_built(c.base_model) and _looks_like_path(c.base_model) and self._local(c.base_model) is None:
            raise OkapiError(f"model path does not exist: {c.base_model}", where="config: base_model",
                             hint="give a local folder, a hub id, or tiny:llama for a tiny test model")

    def _local(self, name: str) -> Path | None:
        for p in (Path(name).expanduser(), self.base_dir / name):
            if p.exists():
                return p.resolve()
        return None

    # ------------------------------------------------------------ paths

    def rec(self, *parts: str) -> Path:
        return self.run_dir.joinpath("records", *parts)

    def model_dir(self, label: str, lang: str | None = None) -> Path:
        if label == "base":
            return self.run_dir / "models" / "base"
        scoped = self.cfg.model_scope == "per_language" and lang is not None
        return self.run_dir / "models" / (f"{label}-{lang}" if scoped else label)

    def model_path(self, label: str, lang: str | None = None) -> str:
        if label == "base" and not _is_built(self.cfg.base_model):
            local = self._local(self.cfg.base_model)
            return str(local) if local else self.cfg.base_model
        return str(self.model_dir(label, lang))

    def scope(self, stage: str, lang: str) -> str:
        return f"{stage}/{lang}" if self.cfg.model_scope == "per_language" else stage

    def scopes(self) -> list[str | None]:
        return list(self.cfg.languages) if self.cfg.model_scope == "per_language" else [None]

    def work_dir(self, key: str, fingerprint: str) -> Path:
        return self.run_dir / "work" / f"{key.replace('/', '-')}-{fingerprint[:12]}"

    # ------------------------------------------------------------ plan

    def plan(self) -> list[Unit]:
        c = self.cfg
        units: list[Unit] = []
        add = units.append
        base_deps = []
        if _is_built(c.base_model):
            add(Unit("base_model", [], json.dumps([c.base_model, c.seed]), [self.model_dir("base")],
                     self._build_base_model))
            base_deps = ["base_model"]
        inputs = [p for p in [self._local(c.instructions.path or "")] if p and c.instructions.path]
        add(Unit("instructions", [], c.fingerprint_of("instructions", "source_language", "seed"),
                 [self.rec("instructions.jsonl"), self.rec("heldout.jsonl")], self._instructions, inputs))
        for lang in c.languages:
            add(Unit(f"translate/{lang}", ["instructions"], c.fingerprint_of("translation"),
                     [self.rec("translations", f"{lang}.jsonl")],
                     lambda fp, lang=lang: self._translate(lang, fp)))
        fmt = c.fingerprint_of("prompt_template", "base_model", "seed", "model_scope")
        for scope in self.scopes():
            langs = [scope] if scope else list(c.languages)
            deps = base_deps + [f"translate/{lang}" for lang in langs]
            key = f"sft/{scope}" if scope else "sft"
            add(Unit(key, deps, fmt + c.fingerprint_of("sft", "translation"), [self.model_dir("sft", scope)],
                     lambda fp, langs=langs, scope=scope, key=key: self._train_sft(key, langs, scope, fp)))
        for lang in c.languages:
            add(Unit(f"sample/{lang}", [self.scope("sft", lang), f"translate/{lang}"],
                     c.fingerprint_of("sampling", "prompt_template"), [self.rec("samples", f"{lang}.jsonl")],
                     lambda fp, lang=lang: self._sample(lang, fp)))
            add(Unit(f"rank/{lang}", [f"sample/{lang}"], c.fingerprint_of("ranking"),
                     [self.rec("rankings", f"{lang}.jsonl")], lambda fp, lang=lang: self._rank(lang, fp)))
        if c.reward_model is not None:
            for scope in self.scopes():
                langs = [scope] if scope else list(c.languages)
                key = f"reward_model/{scope}" if scope else "reward_model"
                add(Unit(key, [self.scope("sft", langs[0])] + [f"rank/{lang}" for lang in langs],
                         c.fingerprint_of("reward_model"), [self.model_dir("rm", scope)],
                         lambda fp, langs=langs, scope=scope, key=key: self._train_rm(key, langs, scope, fp)))
        for i, a in enumerate(c.alignment):
            for scope in self.scopes():
                langs = [scope] if scope else list(c.languages)
                key = f"align/{a.method}/{scope}" if scope else f"align/{a.method}"
                deps = [self.scope("sft", langs[0])] + [f"rank/{lang}" for lang in langs]
                if c.reward_model is not None and a.reward is None:
                    deps.append(self.scope("reward_model", langs[0]))
                add(Unit(key, deps, json.dumps(c.model_dump(mode="json")["alignment"][i], sort_keys=True),
                         [self.model_dir(a.method, scope)],
                         lambda fp, i=i, langs=langs, scope=scope, key=key: self._align(i, key, langs, scope, fp)))
        for label in c.evaluation.models:
            for lang in c.languages:
                if label == "base":
                    model_dep = base_deps
                elif label == "sft":
                    model_dep = [self.scope("sft", lang)]
                else:
                    model_dep = [self.scope(f"align/{label}", lang)]
                add(Unit(f"evaluate/{label}/{lang}", model_dep + ["translate/" + lang],
                         c.fingerprint_of("evaluation", "prompt_template"),
                         [self.rec("eval", label, f"{lang}.json")],
                         lambda fp, label=label, lang=lang: self._evaluate(label, lang, fp)))
        return units

    # ------------------------------------------------------------ running

    def fingerprint(self, unit: Unit) -> str:
        h = hashlib.sha256(unit.key.encode() + b"\0" + unit.config.encode())
        for dep in unit.deps:
            h.update(self._fingerprints[dep].encode())
        for path in unit.inputs:
            h.update(_hash_inputs(path).encode())
        return h.hexdigest()

    def run(self) -> list[dict[str, Any]]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        manifest = Manifest(self.run_dir / MANIFEST)
        manifest.data.update(config_name=self.cfg.name, config_fingerprint=self.config_fingerprint,
                             config=self.cfg.model_dump(mode="json"))
        manifest.save()
        for unit in self.plan():
            fp = self._fingerprints[unit.key] = self.fingerprint(unit)
            entry = manifest.units.get(unit.key, {})
            if entry.get("status") == "done" and entry.get("fingerprint") == fp and all(p.exists() for p in unit.outputs):
                self.summary.append({"stage": unit.key, "status": "skipped", "seconds": 0.0,
                                     "info": entry.get("info", {})})
                self.pm.hook.okapi_stage_finished(stage=unit.key, run=self.info,
                                                  outcome={"status": "skipped", "seconds": 0.0})
                continue
            manifest.units[unit.key] = {"status": "running", "fingerprint": fp, "started": time.time(),
                                        "deps": {d: self._fingerprints[d] for d in unit.deps},
                                        "inputs": {str(p): _hash_inputs(p) for p in unit.inputs}}
            manifest.save()
            self.pm.hook.okapi_stage_started(stage=unit.key, run=self.info)
            self.ui.log(f"[bold cyan]>[/] {unit.key}")
            t0 = time.perf_counter()
            try:
                info = unit.run(fp) or {}
            except BaseException as exc:
                seconds = time.perf_counter() - t0
                manifest.units[unit.key].update(status="failed", seconds=seconds,
                                                error=f"{type(exc).__name__}: {exc}"[:2000])
                manifest.save()
                self.pm.hook.okapi_stage_finished(stage=unit.key, run=self.info,
                                                  outcome={"status": "failed", "seconds": seconds})
                raise
            seconds = time.perf_counter() - t0
            manifest.units[unit.key].update(status="done", seconds=round(seconds, 3), info=info,
                                            finished=time.time())
            manifest.save()
            self.summary.append({"stage": unit.key, "status": "done", "seconds": seconds, "info": info})
            self.pm.hook.okapi_stage_finished(stage=unit.key, run=self.info,
                                              outcome={"status": "done", "seconds": seconds, "info": info})
        self.store_results()
        return self.summary

    # ------------------------------------------------------------ stages

    def _build_base_model(self, fp: str) -> dict[str, Any]:
        final = self.model_dir("base")
        tmp = final.with_name(".base.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        if not self.pm.hook.okapi_build_model(spec=self.cfg.base_model, out_dir=tmp):
            raise OkapiError(f"no installed plugin builds {self.cfg.base_model!r}", where="config: base_model",
                             hint="tiny:<arch> needs the okapi_kit_transformers plugin; other schemes need "
                                 "a plugin that implements okapi_build_model")
        _replace_dir(tmp, final)
        return {"path": str(final)}

    def _instructions(self, fp: str) -> dict[str, Any]:
        c = self.cfg.instructions
        records: list[Instruction] = []
        if c.path is not None:
            local = self._local(c.path)
            records = read_instructions(local or c.path, fmt=c.format, split=c.split,
                                        lang=self.cfg.source_language)
        if c.generator is not None and c.generate_count:
            gen = self.component("generator", c.generator, "instructions.generator")
            records += gen.generate(records, c.generate_count, self.cfg.source_language)
        if c.limit:
            records = records[: c.limit]
        if c.holdout >= len(records):
            raise OkapiError(f"instructions.holdout ({c.holdout}) leaves no training instruction "
                             f"out of {len(records)}", where="config: instructions.holdout")
        cut = len(records) - c.holdout
        write_jsonl(self.rec("heldout.jsonl"), records[cut:])
        write_jsonl(self.rec("instructions.jsonl"), records[:cut])
        return {"train": cut, "heldout": c.holdout}

    def _all_instructions(self) -> list[Instruction]:
        return read_jsonl(self.rec("instructions.jsonl"), Instruction) + read_jsonl(self.rec("heldout.jsonl"), Instruction)

    def _heldout_ids(self) -> set[str]:
        return {r.id for r in read_jsonl(self.rec("heldout.jsonl"), Instruction)}

    def _translate(self, lang: str, fp: str) -> dict[str, Any]:
        translator = self.component("translator", self.cfg.translation.translator, "translation.translator")
        source = self._all_instructions()
        src_lang = self.cfg.source_language
        misses: list[str] = []

        def work(chunk: list[Instruction]) -> list[dict[str, Any]]:
            texts, slots = [], []
            for r_i, r in enumerate(chunk):
                for f in ("instruction", "input", "output"):
                    if getattr(r, f).strip():
                        texts.append(getattr(r, f))
                        slots.append((r_i, f))
            out = translator.translate(texts, src_lang, lang) if texts else []
            if len(out) != len(texts):
                raise OkapiError(f"translator {translator.name!r} returned {len(out)} texts for {len(texts)}")
            rows = [Instruction(id=r.id, instruction="", input="", output="", lang=lang, source_id=r.id)
                    for r in chunk]
            failed: set[int] = set()
            for (r_i, f), text in zip(slots, out):
                if text is None:
                    failed.add(r_i)
                    misses.append(f"{chunk[r_i].id}.{f}")
                else:
                    setattr(rows[r_i], f, text)
            return [{"id": r.id, "ok": i not in failed, "record": r.to_dict()} for i, r in enumerate(rows)]

        done = self._chunked(f"translate/{lang}", fp, source, 16, work)
        if misses:
            raise OkapiError(
                f"translator {translator.name!r} has no {lang} translation for {len(misses)} text(s), "
                f"e.g. {', '.join(misses[:5])}",
                where=f"translate/{lang}",
                hint="add them to the translation files, or choose a translator that covers them")
        rows = [Instruction.from_dict(done[r.id]["record"]) for r in source]
        write_jsonl(self.rec("translations", f"{lang}.jsonl"), rows)
        return {"records": len(rows)}

    def _chunked(self, key: str, fp: str, items: list[Any], size: int,
                 work: Callable[[list[Any]], list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
        """Run ``work`` over chunks, appending results as they come; a rerun skips finished chunks.

        Results live in a partial file named by the fingerprint, so a changed config never
        picks up stale results, and paid calls are not repeated after a crash.
        """
        partial = self.run_dir / "partial" / f"{key.replace('/', '-')}-{fp[:12]}.jsonl"
        with JsonlAppender(partial) as app, self.ui.progress(key, len(items)) as update:
            for start in range(0, len(items), size):
                chunk = items[start:start + size]
                if all(str(_item_id(x)) in app.done for x in chunk):
                    continue
                for row in work(chunk):
                    app.append(row)
                update(min(start + size, len(items)), len(items))
            return dict(app.done)

    def _prompt_formatter(self, model: str) -> PromptFormatter:
        return PromptFormatter(self.cfg.prompt_template, model, trust_remote_code=self.cfg.trust_remote_code)

    def _translated(self, lang: str, *, heldout: bool) -> list[Instruction]:
        rows = read_jsonl(self.rec("translations", f"{lang}.jsonl"), Instruction)
        held = self._heldout_ids()
        return [r for r in rows if (r.source_id or r.id) in held] if heldout else \
            [r for r in rows if (r.source_id or r.id) not in held]

    def _train(self, key: str, trainer: Trainer, job_model: str, label: str, scope: str | None,
               records: list[dict[str, Any]], fp: str, *, langs: list[str], **extra: Any) -> dict[str, Any]:
        final = self.model_dir(label, scope)
        tmp = final.with_name(f".{final.name}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        job = TrainJob(model=job_model, output_dir=tmp, work_dir=self.work_dir(key, fp), records=records,
                       seed=self.cfg.seed, languages=langs, trust_remote_code=self.cfg.trust_remote_code, **extra)
        job.work_dir.mkdir(parents=True, exist_ok=True)
        with self.ui.progress(f"{key} ({trainer.name})", None) as update:
            job.progress = update
            result = trainer.train(job)
        _replace_dir(tmp, final)
        shutil.rmtree(job.work_dir, ignore_errors=True)
        return {"records": len(records), **{k: round(v, 6) for k, v in result.metrics.items()
                                            if isinstance(v, int | float)}}

    def _train_sft(self, key: str, langs: list[str], scope: str | None, fp: str) -> dict[str, Any]:
        trainer = self.component("trainer", self.cfg.sft.trainer, "sft.trainer")
        base = self.model_path("base")
        fmt = self._prompt_formatter(base)
        rows: list[Instruction] = []
        if self.cfg.translation.train_on_source:
            rows += read_jsonl(self.rec("instructions.jsonl"), Instruction)
        for lang in langs:
            rows += self._translated(lang, heldout=False)
        records = [{"prompt": fmt(r.instruction, r.input), "completion": r.output}
                   for r in rows if r.output.strip()]
        return self._train(key, trainer, base, "sft", scope, records, fp, langs=langs)

    def _sample(self, lang: str, fp: str) -> dict[str, Any]:
        sampler = self.component("sampler", self.cfg.sampling.sampler, "sampling.sampler")
        assert isinstance(sampler, Sampler)
        model = self.model_path("sft", lang)
        fmt = self._prompt_formatter(model)
        items = self._translated(lang, heldout=False)
        k = self.cfg.sampling.k
        chunk_no = {r.id: i // self.cfg.sampling.chunk_size for i, r in enumerate(items)}

        def work(chunk: list[Instruction]) -> list[dict[str, Any]]:
            prompts = [fmt(r.instruction, r.input) for r in chunk]
            seed = self.cfg.seed * 100_003 + chunk_no[chunk[0].id]
            outs = sampler.sample(model, prompts, k, seed=seed)
            return [SampleSet(id=r.id, lang=lang, prompt=p, responses=o, reference=r.output or None,
                              model="sft").to_dict() for r, p, o in zip(chunk, prompts, outs)]

        done = self._chunked(f"sample/{lang}", fp, items, self.cfg.sampling.chunk_size, work)
        write_jsonl(self.rec("samples", f"{lang}.jsonl"), [done[r.id] for r in items])
        return {"prompts": len(items), "k": k}

    def _rank(self, lang: str, fp: str) -> dict[str, Any]:
        ranker = self.component("ranker", self.cfg.ranking.ranker, "ranking.ranker")
        items = read_jsonl(self.rec("samples", f"{lang}.jsonl"), SampleSet)

        def work(chunk: list[SampleSet]) -> list[dict[str, Any]]:
            orders = ranker.rank(chunk)
            rows = []
            for s, order in zip(chunk, orders):
                if sorted(order) != list(range(len(s.responses))):
                    raise OkapiError(f"ranker {ranker.name!r} returned {order} for {len(s.responses)} "
                                     f"responses of {s.id!r}: not a permutation")
                rows.append(Ranking(id=s.id, lang=lang, prompt=s.prompt, responses=s.responses,
                                    order=list(order), ranker=ranker.name).to_dict())
            return rows

        done = self._chunked(f"rank/{lang}", fp, items, 16, work)
        write_jsonl(self.rec("rankings", f"{lang}.jsonl"), [done[s.id] for s in items])
        return {"rankings": len(items)}

    def _pairs(self, langs: list[str], selection: str = "all") -> list[dict[str, Any]]:
        rows = []
        for lang in langs:
            for r in read_jsonl(self.rec("rankings", f"{lang}.jsonl"), Ranking):
                pairs = r.pairs()
                if selection == "best_worst":  # the first response against the last
                    pairs = [p for p in pairs if p.id.endswith(f":0>{len(r.responses) - 1}")]
                rows += [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}
                         for p in pairs if p.chosen != p.rejected]
        return rows

    def _train_rm(self, key: str, langs: list[str], scope: str | None, fp: str) -> dict[str, Any]:
        assert self.cfg.reward_model is not None
        trainer = self.component("trainer", self.cfg.reward_model.trainer, "reward_model.trainer")
        return self._train(key, trainer, self.model_path("sft", langs[0]), "rm", scope,
                           self._pairs(langs, self.cfg.reward_model.pairs), fp, langs=langs)

    def _align(self, i: int, key: str, langs: list[str], scope: str | None, fp: str) -> dict[str, Any]:
        a = self.cfg.alignment[i]
        trainer = self.component("trainer", a.trainer, f"alignment[{i}].trainer")
        assert isinstance(trainer, Trainer)
        sft = self.model_path("sft", langs[0])
        reward = None
        if trainer.data == "prompts":
            choice = a.reward or ComponentChoice(name="reward_model",
                                                 options={"path": self.model_path("rm", langs[0])})
            reward = self.component("reward_source", choice, f"alignment[{i}].reward")
        if trainer.data == "preference":
            records = self._pairs(langs, a.pairs)
        elif trainer.data == "ranking":
            records = [{"prompt": r.prompt, "responses": r.ranked()}
                       for lang in langs for r in read_jsonl(self.rec("rankings", f"{lang}.jsonl"), Ranking)]
        elif trainer.data == "prompts":
            records = [{"prompt": r.prompt} for lang in langs
                       for r in read_jsonl(self.rec("samples", f"{lang}.jsonl"), SampleSet)]
        else:
            fmt = self._prompt_formatter(sft)
            records = [{"prompt": fmt(r.instruction, r.input), "completion": r.output}
                       for lang in langs for r in self._translated(lang, heldout=False)]
        return self._train(key, trainer, sft, a.method, scope, records, fp, langs=langs,
                           reference_model=sft, reward=reward)

    def _evaluate(self, label: str, lang: str, fp: str) -> dict[str, Any]:
        model = self.model_path(label, lang)
        ev = self.cfg.evaluation
        sampler_choice = ev.sampler or self.cfg.sampling.sampler
        fmt = self._prompt_formatter(model)
        prompts = [fmt(r.instruction, r.input) for r in self._translated(lang, heldout=True)]
        sampler = self.component("sampler", sampler_choice,
                                 "evaluation.sampler" if ev.sampler else "sampling.sampler")

        def generate(batch: list[str]) -> list[str]:
            return [outs[0] for outs in sampler.sample(model, batch, 1, seed=self.cfg.seed)]

        work_dir = self.work_dir(f"evaluate/{label}/{lang}", fp)
        work_dir.mkdir(parents=True, exist_ok=True)
        target = EvalTarget(model=model, label=label, language=lang, work_dir=work_dir, prompts=prompts,
                            generate=generate, seed=self.cfg.seed, trust_remote_code=self.cfg.trust_remote_code)
        scores = []
        for i, choice in enumerate(ev.evaluators):
            evaluator = self.component("evaluator", choice, f"evaluation.evaluators[{i}]")
            scores += [dict(s.__dict__, evaluator=evaluator.name) for s in evaluator.evaluate(target)]
        atomic_write_text(self.rec("eval", label, f"{lang}.json"),
                          json.dumps({"model": model, "label": label, "language": lang, "scores": scores},
                                     indent=2, ensure_ascii=False))
        return {"scores": len(scores)}

    # ------------------------------------------------------------ results

    def store_results(self) -> None:
        """Copy every evaluation result of this run into the results database (idempotent)."""
        rows = []
        for label in self.cfg.evaluation.models:
            for lang in self.cfg.languages:
                path = self.rec("eval", label, f"{lang}.json")
                if not path.exists():
                    continue
                for s in json.loads(path.read_text(encoding="utf-8"))["scores"]:
                    rows.append(ResultRow(run=self.run_dir.name, model=self.cfg.base_model, method=label,
                                          language=lang, task=s["task"], metric=s["metric"],
                                          value=float(s["value"]), stderr=s.get("stderr"), n=int(s["n"]),
                                          protocol=s.get("protocol", "")))
        ResultsStore(self.db_path).add(rows)


def _is_built(spec: str) -> bool:
    """``scheme:...`` names (``tiny:llama``) are built by an ``okapi_build_model`` plugin."""
    return bool(re.match(r"^[a-z][a-z0-9_+-]*:", spec)) and not Path(spec).exists()


def _item_id(x: Any) -> str:
    return x.id if hasattr(x, "id") else str(x)


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or name.endswith((".json", ".jsonl", ".parquet")) or name.count("/") > 1


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished folder into place; a stale one from an older fingerprint goes first."""
    if final.exists():
        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(final)
