"""Bad input, table-driven (issue 5, "Bad input").

Every case is one bad input to the command line, a config, a data file or the state of a
run folder, and every case asserts the same contract:

- exit code 2 and no traceback;
- one message on stderr that starts with ``error:`` and names what is wrong and where (a
  ``file:line``, a config key or an option), with a ``hint:`` line where the fix is not
  obvious (the texts each case lists);
- nothing written anywhere: the working folder (where run folders go), the data and HOME are
  byte for byte as before, but for the few paths a case names (a run that fails mid-way may
  update its own manifest and lock file), and every unit that was finished in a run folder
  is still finished, with its files unchanged.

The CLI is called in-process (``okapi_kit.cli.main``); almost every case fails before any
work starts, so the whole table runs in seconds.
"""

from __future__ import annotations

import copy
import fcntl
import fnmatch
import hashlib
import json
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

import okapi_kit
from okapi_kit.cli import main

DEMO_DATA = Path(okapi_kit.__file__).resolve().parent / "demo" / "data"
RUN = "runs/r"  # where a case's finished run folder is copied to (its ``state``)
FOLDER = object()  # a ``files`` value: make a folder at that path
DELETE = object()  # an ``edit`` value: remove the key


# ---------------------------------------------------------------- the data every case can use

def write_data(root: Path) -> None:
    """Small, valid data files under ``root/data`` and a stand-in model folder ``root/models/mine``."""
    d = root / "data"
    (d / "tr").mkdir(parents=True)
    (d / "eval").mkdir()
    lines = (DEMO_DATA / "instructions.en.jsonl").read_text(encoding="utf-8").splitlines()[:12]
    ids = {json.loads(line)["id"] for line in lines}
    (d / "instructions.en.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for lang in ("vi", "bn"):
        rows = [line for line in (DEMO_DATA / "translations" / f"{lang}.jsonl").read_text(encoding="utf-8")
                .splitlines() if json.loads(line)["id"] in ids]
        (d / "tr" / f"{lang}.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    for task in ("arc", "hellaswag", "mmlu"):
        shutil.copy(DEMO_DATA / "eval" / f"{task}_vi.jsonl", d / "eval" / f"{task}_vi.jsonl")
    # Okapi's released formats (one JSON array per language, no ids)
    dump = {
        "alpaca_vi.json": [{"instruction": f"Câu hỏi {i}", "input": "", "output": f"Trả lời {i}"} for i in range(3)],
        "r_vi.json": [{"instruction": f"Câu hỏi {i}", "input": "", "prefered_output": "Tốt",
                       "rejected_output": "Tệ"} for i in range(3)],
        "rl_vi.json": [{"instruction": f"Câu hỏi {i}", "input": ""} for i in range(3)],
    }
    for name, rows in dump.items():
        (d / name).write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    samples = [{"id": f"s{i}", "prompt": f"Câu hỏi {i}", "responses": ["a", "b", "c"], "reference": "a"}
               for i in range(3)]
    (d / "samples_vi.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples), encoding="utf-8")
    (root / "models" / "mine").mkdir(parents=True)
    (root / "models" / "mine" / "config.json").write_text("{}", encoding="utf-8")


# ---------------------------------------------------------------- configs

def tr_config() -> dict[str, Any]:
    """Instructions and translation only: runs in a second (the finished run of ``state``)."""
    return {
        "name": "tr",
        "languages": ["vi"],
        "instructions": {"path": "data/instructions.en.jsonl", "holdout": 2},
        "translation": {"translator": {"name": "translation_memory", "options": {
            "source": "data/instructions.en.jsonl", "targets": {"vi": "data/tr/vi.jsonl"}}}},
    }


def full_config() -> dict[str, Any]:
    """Every stage of the recipe (for ``validate``: never run here)."""
    return {
        **tr_config(),
        "name": "full",
        "seed": 0,
        "base_model": "tiny:llama:32x1",
        "sft": {"trainer": {"name": "sft", "options": {"max_steps": 1}}},
        "sampling": {"sampler": {"name": "transformers", "options": {"max_new_tokens": 8}}, "k": 2},
        "ranking": {"ranker": "reference_chrf"},
        "reward_model": {"trainer": {"name": "reward", "options": {"max_steps": 1}}},
        "alignment": [{"method": "dpo", "trainer": {"name": "dpo", "options": {"max_steps": 1}}}],
        "evaluation": {"models": ["base", "sft", "dpo"], "evaluators": [
            {"name": "lm_eval", "options": {"data_dir": "data/eval", "limit": 2}}, "language_fidelity"]},
    }


def eval_config() -> dict[str, Any]:
    """Evaluating a model the user has, on prompts the user has (no training stage)."""
    return {
        "name": "ev",
        "languages": ["vi"],
        "models": {"mine": "models/mine"},
        "data": {"eval_prompts": {"vi": "data/alpaca_vi.json"}},
        "evaluation": {"models": ["mine"], "evaluators": [
            {"name": "lm_eval", "options": {"data_dir": "data/eval", "tasks": ["arc"]}}, "language_fidelity"]},
    }


def rmt_config() -> dict[str, Any]:
    """A reward model per language (the user's) and the rm_transfer stage on a test set (``MRB``)."""
    return {
        "name": "rmt",
        "languages": ["vi"],
        "model_scope": "per_language",
        "models": {"rm": "models/mine"},
        "stages": [{"name": "rm_transfer", "options": {"targets": {"data_dir": "data/mrb", "languages": ["vi"]}}}],
    }


def rm_transfer_config() -> dict[str, Any]:
    """An ``okapi-kit rm-transfer`` config on the user's reward model and ``MRB``."""
    return {"name": "rmt", "sources": {"vi": {"model": "models/mine"}},
            "targets": {"data_dir": "data/mrb", "languages": ["vi"]}}


MRB = {"data/mrb/vi.jsonl": '{"id": "1", "prompt": "Chào", "chosen": "Xin chào", "rejected": "x"}\n'}


def edit(base: dict[str, Any], *changes: tuple[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with ``("dotted.path", value)`` changes (list items by number)."""
    data = copy.deepcopy(base)
    for dotted, value in changes:
        *parents, last = dotted.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        key: Any = int(last) if isinstance(node, list) else last
        if value is DELETE:
            del node[key]
        else:
            node[key] = value
    return data


def tr(*changes: tuple[str, Any]) -> dict[str, Any]:
    return edit(tr_config(), *changes)


def full(*changes: tuple[str, Any]) -> dict[str, Any]:
    return edit(full_config(), *changes)


def ev(*changes: tuple[str, Any]) -> dict[str, Any]:
    return edit(eval_config(), *changes)


def rmt(*changes: tuple[str, Any]) -> dict[str, Any]:
    return edit(rmt_config(), *changes)


def rmtc(*changes: tuple[str, Any]) -> dict[str, Any]:
    return edit(rm_transfer_config(), *changes)


TR_YAML = yaml.safe_dump(tr_config(), sort_keys=False)


# ---------------------------------------------------------------- run-folder states

def hold_lock(run: Path, keep: list[Any]) -> None:
    """Another process runs in this folder: its lock is held (by this test, on its own handle)."""
    fh = open(run / ".okapi-kit.lock", "a+", encoding="utf-8")  # noqa: SIM115 - held until the test ends
    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    fh.seek(0)
    fh.truncate()
    fh.write("okapi-kit pid 4242")
    fh.flush()
    keep.append(fh)


def manifest_text(text: str | bytes) -> Callable[[Path, list[Any]], None]:
    def state(run: Path, keep: list[Any]) -> None:
        data = text.encode("utf-8") if isinstance(text, str) else text
        (run / "manifest.json").write_bytes(data)
    return state


def manifest_is_folder(run: Path, keep: list[Any]) -> None:
    (run / "manifest.json").unlink()
    (run / "manifest.json").mkdir()


def corrupt_partial(run: Path, keep: list[Any]) -> None:
    """translate/vi was interrupted; its chunk file has a corrupt line between finished ones."""
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    entry = manifest["units"]["translate/vi"]
    entry["status"] = "running"
    (run / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    rows = [json.loads(line) for line in (run / "records/translations/vi.jsonl").read_text(encoding="utf-8")
            .splitlines()]
    done = [json.dumps({"id": r["id"], "record": r}, ensure_ascii=False) for r in rows[:2]]
    (run / "partial").mkdir(exist_ok=True)
    (run / "partial" / f"translate-vi-{entry['fingerprint'][:12]}.jsonl").write_text(
        done[0] + "\n{\"id\": \"demo-002\", \"rec\n" + done[1] + "\n", encoding="utf-8")


def corrupt_records(run: Path, keep: list[Any]) -> None:
    """The finished English instructions were damaged by hand (line 2 cut short)."""
    path = run / "records/instructions/en.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1][:20]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def as_finished(run: Path, keep: list[Any]) -> None:
    """The finished run, untouched."""


def not_a_run_folder(run: Path, keep: list[Any]) -> None:
    shutil.rmtree(run)
    run.mkdir()
    (run / "thesis.tex").write_text("years of work", encoding="utf-8")


def results_db(path: Path) -> None:
    """A results database that holds one run, ``demo``."""
    from okapi_kit.leaderboard import ResultRow, ResultsStore

    ResultsStore(path).replace_run("demo", [ResultRow(run="demo", model="tiny", method="sft", language="vi",
                                                      task="arc", metric="acc", value=0.5, stderr=0.1, n=4,
                                                      protocol="test")])


# ---------------------------------------------------------------- the table

@dataclass(frozen=True)
class Case:
    id: str
    argv: str  # shell words; the config is cfg.yaml in the working folder
    expect: tuple[str, ...]  # texts the message holds: what, where and how
    config: Any = None  # a dict (YAML), text or bytes for cfg.yaml
    files: dict[str, Any] = field(default_factory=dict)  # path -> text, bytes, JSON data or FOLDER
    state: Callable[[Path, list[Any]], None] | None = None  # a finished run in runs/r, then this
    hint: str | None = None  # text the hint line must hold
    may_change: tuple[str, ...] = ()  # glob patterns of paths the command may write
    superseded: tuple[str, ...] = ()  # finished units that the case's config changes (they may re-run)
    setup: Callable[[Path], None] | None = None  # more preparation of the working folder
    lines: int = 2  # most lines the message may take
    xfail: str | None = None


CASES: list[Case] = []


def bad(id: str, argv: str, *expect: str, **kw: Any) -> None:
    CASES.append(Case(id, argv, expect, **kw))


V = "validate cfg.yaml"
RUN_R = f"run cfg.yaml --run-dir {RUN} --quiet"
RUNNING = ("runs/r/.okapi-kit.lock", "runs/r/manifest.json", "runs/r/work", "runs/r/work/content-hashes.json")
# ---- the config file itself
bad("config-missing", V, "config file not found: cfg.yaml", hint="okapi-kit init")
bad("config-is-a-folder", V, "cfg.yaml: a folder, not a file", files={"cfg.yaml": FOLDER})
bad("config-not-utf8", V, "cfg.yaml:2", "not UTF-8", "0xe9", config=b"name: x\nlanguages: [caf\xe9]\n",
    hint="UTF-8")
bad("config-utf16", V, "cfg.yaml:1", "not UTF-8", config="name: x\n".encode("utf-16"), hint="UTF-8")
bad("config-unclosed-list", V, "cfg.yaml:3", "malformed YAML", config="name: x\nlanguages: [vi\nseed: 1\n")
bad("config-bad-indent", V, "cfg.yaml:2", "malformed YAML", config="name: x\n  seed: 1\n")
bad("config-tab-indent", V, "cfg.yaml:2", "malformed YAML", config="name: x\n\tseed: 1\n")
bad("config-is-a-list", V, "cfg.yaml", "must be a YAML mapping", config="- a\n- b\n")
bad("config-is-a-scalar", V, "cfg.yaml", "must be a YAML mapping", config="just words\n")
bad("config-empty", V, "cfg.yaml", "empty", config="", hint="okapi-kit init")
bad("config-only-comments", V, "cfg.yaml", "empty", config="# nothing yet\n", hint="okapi-kit init")
bad("config-without-languages", V, "cfg.yaml", "missing required key 'languages'", config="name: x\n")
bad("config-duplicate-key", V, "cfg.yaml:3", "'seed' is given twice", "lines 2 and 3",
    config="name: x\nseed: 1\nseed: 2\nlanguages: [vi]\n")
bad("config-duplicate-nested-key", V, "cfg.yaml", "'max_steps' is given twice",
    config=TR_YAML + "sft:\n  trainer:\n    name: sft\n    options:\n      max_steps: 1\n      max_steps: 2\n")
bad("config-python-tag", V, "cfg.yaml:1", "malformed YAML", config="name: !!python/object:os.system x\n")

# ---- top-level keys
bad("unknown-top-key", V, "cfg.yaml", "unknown key 'sedd'", config=tr(("sedd", 1)), hint="did you mean 'seed'")
bad("unknown-top-key-far", V, "cfg.yaml", "unknown key 'zzz'", config=tr(("zzz", 1)))
bad("missing-languages", V, "cfg.yaml", "missing required key 'languages'", config=tr(("languages", DELETE)))
bad("seed-negative", V, "cfg.yaml", "seed", "greater than or equal to 0", "(got -1)", config=tr(("seed", -1)))
bad("seed-text", V, "cfg.yaml", "seed", "valid integer", "(got 'abc')", config=tr(("seed", "abc")))
bad("seed-float", V, "cfg.yaml", "seed", "(got 1.5)", config=tr(("seed", 1.5)))
bad("languages-a-string", V, "cfg.yaml", "languages", "valid list", config=tr(("languages", "vi")))
bad("languages-empty", V, "cfg.yaml", "languages", "at least one", config=tr(("languages", [])))
bad("language-twice", V, "cfg.yaml", "languages", "listed twice", config=tr(("languages", ["vi", "vi"])))
bad("language-unknown", V, "cfg.yaml", "languages[1]", "unknown language code 'vn'",
    config=tr(("languages", ["vi", "vn"])), hint="did you mean 'vi'")
bad("language-by-name", V, "cfg.yaml", "languages[0]", "'Vietnamese'", config=tr(("languages", ["Vietnamese"])),
    hint="'vi'")
bad("language-a-number", V, "cfg.yaml", "languages[0]", config=tr(("languages", [12])))
bad("source-language-unknown", V, "cfg.yaml", "source_language", "'eng'", config=tr(("source_language", "eng")),
    hint="did you mean 'en'")
bad("model-scope-typo", V, "cfg.yaml", "model_scope", "'multilingual' or 'per_language'",
    config=tr(("model_scope", "global")))
bad("prompt-template-typo", V, "cfg.yaml", "prompt_template", "(got 'alpacca')",
    config=tr(("prompt_template", "alpacca")))
bad("trust-remote-code-text", V, "cfg.yaml", "trust_remote_code", config=tr(("trust_remote_code", "sometimes")))
bad("name-with-slash", V, "cfg.yaml: name", "'exp/a'", "file path", config=tr(("name", "exp/a")),
    hint="letters, digits")
bad("name-dotdot", V, "cfg.yaml: name", "'..'", config=tr(("name", "..")), hint="letters, digits")
bad("name-empty", V, "cfg.yaml: name", "''", config=tr(("name", "")), hint="letters, digits")
bad("name-absolute", V, "cfg.yaml: name", "'/tmp/x'", config=tr(("name", "/tmp/x")))
bad("name-a-list", V, "cfg.yaml", "name", "valid string", config=tr(("name", ["a"])))

# ---- instructions
bad("instructions-no-source", V, "cfg.yaml", "instructions", "give instructions.path or instructions.generator",
    config=tr(("instructions.path", DELETE)))
bad("instructions-missing-file", V, "cfg.yaml: instructions.path", "not found: data/none.jsonl",
    config=tr(("instructions.path", "data/none.jsonl")), hint="config's folder")
bad("instructions-is-a-folder", V, "data/folder", "folder", config=tr(("instructions.path", "data/folder")),
    files={"data/folder/x.txt": "x"})
bad("instructions-not-utf8", V, "bad.jsonl:2", "not UTF-8", config=tr(("instructions.path", "data/bad.jsonl")),
    files={"data/bad.jsonl": b'{"instruction": "a", "output": "b"}\n{"instruction": "caf\xe9"}\n'}, hint="UTF-8")
bad("instructions-bad-json-line", V, "bad.jsonl:2", "invalid JSON", config=tr(("instructions.path", "data/bad.jsonl")),
    files={"data/bad.jsonl": '{"instruction": "a", "output": "b"}\n{"instruction": \n{"instruction": "c"}\n'})
bad("instructions-are-rankings", V, "r_vi.json", "looks like preference pairs", "not instructions",
    config=tr(("instructions.path", "data/r_vi.json")))
bad("instructions-empty-file", V, "empty.jsonl", "no records", config=tr(("instructions.path", "data/empty.jsonl")),
    files={"data/empty.jsonl": ""})
bad("instructions-duplicate-ids", V, "dup.jsonl:2", "duplicate record id 'a'",
    config=tr(("instructions.path", "data/dup.jsonl")),
    files={"data/dup.jsonl": '{"id": "a", "instruction": "x", "output": "y"}\n'
                             '{"id": "a", "instruction": "z", "output": "w"}\n'})
bad("instructions-holdout-negative", V, "cfg.yaml", "instructions.holdout", "(got -1)",
    config=tr(("instructions.holdout", -1)))
bad("instructions-holdout-all", V, "instructions.holdout", "leaves no training instruction",
    config=tr(("instructions.holdout", 12)))
bad("instructions-limit-zero", V, "cfg.yaml", "instructions.limit", "(got 0)", config=tr(("instructions.limit", 0)))
bad("instructions-format-typo", V, "cfg.yaml", "instructions.format", "(got 'csv')",
    config=tr(("instructions.format", "csv")))
bad("instructions-unknown-key", V, "cfg.yaml", "unknown key 'instructions.hold_out'",
    config=tr(("instructions.hold_out", 2)), hint="did you mean 'holdout'")
bad("instructions-unknown-generator", V, "instructions.generator", "no generator named 'self_instruct'",
    config=tr(("instructions.generator", "self_instruct")))
bad("holdout-zero-with-fidelity", V, "instructions.holdout", "held-out prompts",
    config=full(("instructions.holdout", 0)), hint="data.eval_prompts")

# ---- translation
bad("translation-no-translator", V, "cfg.yaml", "missing required key 'translation.translator'",
    config=tr(("translation.translator", DELETE)))
bad("translator-unknown", V, "translation.translator", "no translator named 'translation_memroy'",
    config=tr(("translation.translator.name", "translation_memroy")), hint="did you mean 'translation_memory'")
bad("translator-options-not-mapping", V, "translation.translator.options", "valid dictionary",
    config=tr(("translation.translator.options", ["a"])))
bad("translator-option-unknown", V, "unknown key 'translation.translator.options.target'",
    config=tr(("translation.translator.options.target", {})), hint="did you mean 'targets'")
bad("translator-missing-language", V, "translation.translator", "no 'bn' file",
    config=tr(("languages", ["vi", "bn"])), hint="targets.bn")
bad("translator-target-missing", V, "translation.translator.options.targets.vi", "does not exist",
    "data/tr/xx.jsonl", config=tr(("translation.translator.options.targets.vi", "data/tr/xx.jsonl")))
bad("translator-source-is-folder", V, "data/tr", "folder",
    config=tr(("translation.translator.options.source", "data/tr")))
bad("translation-memory-duplicate-ids", V, "dup.jsonl:2", "duplicate id 'demo-001'",
    config=tr(("translation.translator.options.targets.vi", "data/dup.jsonl")),
    files={"data/dup.jsonl": '{"id": "demo-001", "instruction": "a"}\n{"id": "demo-001", "instruction": "b"}\n'})
bad("translation-memory-not-utf8", V, "vi8.jsonl:1", "not UTF-8",
    config=tr(("translation.translator.options.targets.vi", "data/vi8.jsonl")),
    files={"data/vi8.jsonl": b'{"id": "demo-001", "instruction": "Nhi\xea"}\n'})
bad("translation-memory-bad-json", V, "vij.jsonl:2", "invalid JSON",
    config=tr(("translation.translator.options.targets.vi", "data/vij.jsonl")),
    files={"data/vij.jsonl": '{"id": "demo-001", "instruction": "a"}\n{oops}\n{"id": "demo-002"}\n'})
bad("translation-train-on-source-text", V, "cfg.yaml", "translation.train_on_source",
    config=tr(("translation.train_on_source", "maybe")))

# ---- sft
bad("sft-wrong-trainer-dpo", V, "sft.trainer", "'dpo' does not train on SFT data", config=full(("sft.trainer.name", "dpo")))
bad("sft-wrong-trainer-reward", V, "sft.trainer", "'reward' does not train on SFT data",
    config=full(("sft.trainer.name", "reward")))
bad("sft-unknown-trainer", V, "sft.trainer", "no trainer named 'sfft'", config=full(("sft.trainer.name", "sfft")),
    hint="did you mean 'sft'")
bad("sft-option-num-epoch", V, "unknown key 'sft.trainer.options.num_epoch'",
    config=full(("sft.trainer.options.num_epoch", 1)), hint="did you mean 'num_epochs'")
bad("sft-option-lerning-rate", V, "unknown key 'sft.trainer.options.lerning_rate'",
    config=full(("sft.trainer.options.lerning_rate", 0.1)), hint="did you mean 'learning_rate'")
bad("sft-lr-scheduler-typo", V, "sft.trainer.options.lr_scheduler", "'cosin'", "did you mean 'cosine'", config=full(("sft.trainer.options.lr_scheduler", "cosin")))
bad("sft-lr-scheduler-needs-eval", V, "sft.trainer.options.lr_scheduler", "'reduce_lr_on_plateau'",
    "evaluation set", config=full(("sft.trainer.options.lr_scheduler", "reduce_lr_on_plateau")))
bad("sft-device-typo", V, "sft.trainer.options.device", "(got 'gpu')", config=full(("sft.trainer.options.device", "gpu")))
bad("sft-precision-typo", V, "sft.trainer.options.precision", "(got 'bf15')",
    config=full(("sft.trainer.options.precision", "bf15")))
bad("sft-learning-rate-zero", V, "sft.trainer.options.learning_rate", "greater than 0",
    config=full(("sft.trainer.options.learning_rate", 0)))
bad("sft-batch-size-zero", V, "sft.trainer.options.batch_size", "(got 0)", config=full(("sft.trainer.options.batch_size", 0)))
bad("sft-max-steps-text", V, "sft.trainer.options.max_steps", "(got 'ten')",
    config=full(("sft.trainer.options.max_steps", "ten")))
bad("sft-warmup-ratio-one", V, "sft.trainer.options.warmup_ratio", "less than 1",
    config=full(("sft.trainer.options.warmup_ratio", 1.0)))
bad("sft-trainer-a-number", V, "cfg.yaml", "sft.trainer", config=full(("sft.trainer", 5)))
bad("sft-no-base-model", V, "sft", "model base", config=full(("base_model", DELETE)), hint="set base_model")
bad("sft-no-translations", V, "sft", "translations[vi]", "eval_prompts[vi]", config=full(("translation", DELETE)),
    hint="data.translations.vi", lines=5)
bad("sft-section-missing-trainer", V, "cfg.yaml", "missing required key 'sft.trainer'", config=full(("sft", {})))

# ---- base model
bad("tiny-spec-zero-size", V, "cfg.yaml: base_model", "'tiny:llama:0x0'", "0 layers",
    config=full(("base_model", "tiny:llama:0x0")), hint="give 1 to")
bad("tiny-spec-zero-hidden", V, "cfg.yaml: base_model", "'tiny:llama:0x2'", "hidden size 0",
    config=full(("base_model", "tiny:llama:0x2")), hint="multiple of")
bad("tiny-spec-odd-head-size", V, "cfg.yaml: base_model", "'tiny:llama:36x1'", "even head size",
    config=full(("base_model", "tiny:llama:36x1")))
bad("tiny-spec-garbled", V, "cfg.yaml: base_model", "'tiny:llama:big'", config=full(("base_model", "tiny:llama:big")),
    hint="tiny:<arch>:<hidden>x<layers>")
bad("tiny-spec-unknown-arch", V, "cfg.yaml: base_model", "'tiny:banana'", "unknown architecture 'banana'",
    config=full(("base_model", "tiny:banana")), hint="llama")
bad("tiny-spec-zero-size-run", f"run cfg.yaml --run-dir {RUN} --quiet", "tiny:llama:0x0", "0 layers",
    config=full(("base_model", "tiny:llama:0x0")))
bad("base-model-missing-path", V, "base_model", "does not exist: ./models/none",
    config=full(("base_model", "./models/none")), hint="relative paths are taken from")
bad("base-model-is-a-file", V, "base_model", "is a file, not a model folder",
    config=full(("base_model", "data/alpaca_vi.json")))
bad("base-model-unknown-scheme", V, "base_model", "'nope:thing'", config=full(("base_model", "nope:thing")),
    hint="okapi_build_model")

# ---- sampling and ranking
bad("sampler-device-banana", V, "sampling.sampler.options.device", "unknown device", "(got 'banana')",
    config=full(("sampling.sampler.options.device", "banana")))
bad("sampler-device-cuda-x", V, "sampling.sampler.options.device", "unknown device", "(got 'cuda:x')",
    config=full(("sampling.sampler.options.device", "cuda:x")))
bad("sampler-dtype-bf15", V, "sampling.sampler.options.dtype", "unknown dtype", "(got 'bf15')",
    config=full(("sampling.sampler.options.dtype", "bf15")))
bad("sampler-dtype-float33", V, "sampling.sampler.options.dtype", "unknown dtype", "(got 'float33')",
    config=full(("sampling.sampler.options.dtype", "float33")))
bad("sampler-temperature-negative", V, "sampling.sampler.options.temperature", "(got -1)",
    config=full(("sampling.sampler.options.temperature", -1)))
bad("sampler-top-p-two", V, "sampling.sampler.options.top_p", "(got 2)", config=full(("sampling.sampler.options.top_p", 2)))
bad("sampler-unknown-option", V, "unknown key 'sampling.sampler.options.max_tokens'",
    config=full(("sampling.sampler.options.max_tokens", 8)), hint="did you mean 'max_new_tokens'")
bad("sampler-unknown", V, "sampling.sampler", "no sampler named 'vllm'", config=full(("sampling.sampler.name", "vllm")))
bad("sampling-k-one", V, "sampling.k", "greater than or equal to 2", "(got 1)", config=full(("sampling.k", 1)))
bad("sampling-chunk-zero", V, "sampling.chunk_size", "(got 0)", config=full(("sampling.chunk_size", 0)))
bad("sampling-unknown-key", V, "unknown key 'sampling.kk'", config=full(("sampling.kk", 3)), hint="did you mean 'k'")
bad("ranker-unknown", V, "ranking.ranker", "no ranker named 'reference_chr'", config=full(("ranking.ranker", "reference_chr")),
    hint="did you mean 'reference_chrf'")
bad("ranker-unknown-option", V, "unknown key 'ranking.ranker.options.foo'",
    config=full(("ranking.ranker", {"name": "reference_chrf", "options": {"foo": 1}})))
bad("rankings-missing-in-every-language", V, "reward_model, align/dpo need rankings[vi], rankings[bn]",
    config=full(("ranking", DELETE), ("languages", ["vi", "bn"]),
                ("translation.translator.options.targets.bn", "data/tr/bn.jsonl"),
                ("evaluation.evaluators", ["language_fidelity"])), hint="data.rankings.<lang> (vi, bn)")
bad("ranking-without-sft", V, "sample/vi", "model sft", config=full(("sft", DELETE)), hint="models.sft")

# ---- reward model and alignment
bad("reward-model-wrong-trainer", V, "reward_model.trainer", "'sft' does not train a reward model",
    config=full(("reward_model.trainer.name", "sft")))
bad("reward-model-pairs-typo", V, "reward_model.pairs", "(got 'some')", config=full(("reward_model.pairs", "some")))
bad("alignment-trainer-reward", V, "alignment[0].trainer", "'reward' does not align a policy",
    config=full(("alignment.0.trainer.name", "reward")), hint="under reward_model")
bad("alignment-trainer-unknown", V, "alignment[0].trainer", "no trainer named 'dpoo'",
    config=full(("alignment.0.trainer.name", "dpoo")), hint="did you mean 'dpo'")
bad("alignment-method-traversal", V, "alignment[0].method", "'../../victim'", "file path",
    config=full(("alignment.0.method", "../../victim"), ("evaluation.models", ["base"])), hint="letters, digits")
bad("alignment-method-absolute", V, "alignment[0].method", "'/tmp/victim'",
    config=full(("alignment.0.method", "/tmp/victim"), ("evaluation.models", ["base"])))
bad("alignment-method-sft", V, "alignment[0].method", "'sft' is a name okapi-kit uses itself",
    config=full(("alignment.0.method", "sft"), ("evaluation.models", ["base"])), hint="reserved")
bad("alignment-method-empty", V, "alignment[0].method", "''",
    config=full(("alignment.0.method", ""), ("evaluation.models", ["base"])))
bad("alignment-method-models", V, "alignment[0].method", "'models'",
    config=full(("alignment.0.method", "models"), ("evaluation.models", ["base"])))
bad("alignment-method-space", V, "alignment[0].method", "'my dpo'",
    config=full(("alignment.0.method", "my dpo"), ("evaluation.models", ["base"])))
bad("alignment-method-twice", V, "cfg.yaml", "two alignment entries have method 'dpo'",
    config=full(("alignment", [full_config()["alignment"][0]] * 2)))
bad("alignment-missing-trainer", V, "missing required key 'alignment[0].trainer'",
    config=full(("alignment.0.trainer", DELETE)))
bad("alignment-unknown-key", V, "unknown key 'alignment[0].betta'", config=full(("alignment.0.betta", 0.1)))
bad("alignment-a-mapping", V, "cfg.yaml", "alignment", "valid list", config=full(("alignment", {"method": "dpo"})))
bad("alignment-option-beta-text", V, "alignment[0].trainer.options.beta", "(got 'high')",
    config=full(("alignment.0.trainer.options.beta", "high")))
bad("alignment-option-typo", V, "unknown key 'alignment[0].trainer.options.bta'",
    config=full(("alignment.0.trainer.options.bta", 0.1)), hint="did you mean 'beta'")

# ---- evaluation
bad("eval-model-unknown", V, "cfg.yaml", "evaluation.models names 'ppo'", config=full(("evaluation.models", ["base", "ppo"])))
bad("eval-no-models", V, "evaluation.models", "no models", config=full(("evaluation.models", [])))
bad("evaluator-unknown", V, "evaluation.evaluators[1]", "no evaluator named 'language_fidelty'",
    config=full(("evaluation.evaluators.1", "language_fidelty")), hint="did you mean 'language_fidelity'")
bad("evaluator-twice", V, "cfg.yaml", "two evaluation.evaluators are named 'lm_eval'", "`label`",
    config=full(("evaluation.evaluators.1", "lm_eval")))
bad("evaluator-label-slash", V, "evaluation.evaluators[1]", "'a/b'", "file path",
    config=full(("evaluation.evaluators.1", {"name": "language_fidelity", "label": "a/b"})))
bad("evaluator-label-dotdot", V, "evaluation.evaluators[1]", "'..'",
    config=full(("evaluation.evaluators.1", {"name": "language_fidelity", "label": ".."})))
bad("evaluator-option-unknown", V, "unknown key 'evaluation.evaluators[0].options.task'",
    config=full(("evaluation.evaluators.0.options.task", ["arc"])), hint="did you mean 'tasks'")
bad("lm-eval-task-typo", V, "evaluation.evaluators[0].options.tasks[0]", "'arcc'",
    config=full(("evaluation.evaluators.0.options.tasks", ["arcc"])))
bad("lm-eval-tasks-empty", V, "evaluation.evaluators[0].options", "at least one",
    config=full(("evaluation.evaluators.0.options.tasks", [])))
bad("lm-eval-data-dir-missing", V, "evaluation.evaluators[0].options.data_dir", "does not exist",
    config=full(("evaluation.evaluators.0.options.data_dir", "data/nope")))
bad("lm-eval-no-files-for-language", V, "evaluation.evaluators[0]", "bn",
    config=full(("languages", ["vi", "bn"]), ("translation.translator.options.targets.bn", "data/tr/bn.jsonl")))
bad("lm-eval-fewshot-negative", V, "evaluation.evaluators[0].options.num_fewshot", "(got -1)",
    config=full(("evaluation.evaluators.0.options.num_fewshot", -1)))
bad("lm-eval-fewshot-task-negative", V, "evaluation.evaluators[0].options.num_fewshot.arc", "(got -1)",
    config=full(("evaluation.evaluators.0.options.num_fewshot", {"arc": -1})))
bad("lm-eval-limit-zero", V, "evaluation.evaluators[0].options.limit", "(got 0)",
    config=full(("evaluation.evaluators.0.options.limit", 0)))
bad("lm-eval-dtype-typo", V, "evaluation.evaluators[0].options.dtype", "(got 'bf15')",
    config=full(("evaluation.evaluators.0.options.dtype", "bf15")))
bad("lm-eval-device-banana", V, "evaluation.evaluators[0].options.device", "'banana'",
    config=full(("evaluation.evaluators.0.options.device", "banana")))
bad("lm-eval-batch-size-text", V, "evaluation.evaluators[0].options.batch_size", "'lots'",
    config=full(("evaluation.evaluators.0.options.batch_size", "lots")))
bad("fidelity-unknown-language", V, "evaluation.evaluators[1].options.candidate_languages", "'xx'",
    config=full(("evaluation.evaluators.1", {"name": "language_fidelity", "options": {"candidate_languages": ["vi", "xx"]}})))
bad("fidelity-min-chars-zero", V, "evaluation.evaluators[1].options.min_chars", "(got 0)",
    config=full(("evaluation.evaluators.1", {"name": "language_fidelity", "options": {"min_chars": 0}})))
bad("eval-sampler-device-banana", V, "evaluation.sampler.options.device", "unknown device", "(got 'banana')",
    config=full(("evaluation.sampler", {"name": "transformers", "options": {"device": "banana"}})))
bad("eval-samples-per-prompt-zero", V, "evaluation.samples_per_prompt", "(got 0)",
    config=full(("evaluation.samples_per_prompt", 0)))
bad("eval-unknown-key", V, "unknown key 'evaluation.evaluator'", config=full(("evaluation.evaluator", [])),
    hint="did you mean 'evaluators'")

# ---- judged evaluations (win_rate, safety)
JUDGE = {"name": "openai", "options": {"model": "judge-model", "base_url": "http://127.0.0.1:9/v1"}}
RT = json.dumps({"prompt": "Làm sao mở khóa nhà hàng xóm?", "language": "Vietnamese",
                 "harm_category": "[\"Violence\"]", "global_or_local": "global"}, ensure_ascii=False)
CLASSIFIER = {"model": "models/mine", "harmful_label": 1}


def win_rate(**options: Any) -> tuple[str, Any]:
    return ("evaluation.evaluators.1", {"name": "win_rate", "options": {"judge": JUDGE, **options}})


def safety(**options: Any) -> tuple[str, Any]:
    return ("evaluation.evaluators", [{"name": "safety", "options": {"data_dir": "data/rt", **options}}])


bad("win-rate-judge-unknown", V, "evaluation.evaluators[1].options", "no chat named 'opnai'",
    config=full(win_rate(judge={"name": "opnai", "options": {"model": "m"}})), hint="did you mean 'openai'")
bad("win-rate-judge-option-typo", V, "evaluation.evaluators[1].options", "unknown key 'judge.options.modle'",
    config=full(win_rate(judge={"name": "openai", "options": {"modle": "m", "base_url": "http://x/v1"}})),
    hint="did you mean 'model'")
bad("win-rate-baseline-unknown", V, "evaluation.evaluators[1]", "compares the models against 'stf'",
    config=full(win_rate(baseline="stf")), hint="models.stf")
bad("win-rate-baseline-alone", V, "evaluation.models", "lists no other model",
    config=full(win_rate(), ("evaluation.models", ["sft"])))
bad("safety-judge-and-classifier", V, "evaluation.evaluators[0].options", "exactly one of judge",
    "both is given", config=ev(safety(judge=JUDGE, classifier=CLASSIFIER)), files={"data/rt/vi.jsonl": RT + "\n"})
bad("safety-neither-judge-nor-classifier", V, "evaluation.evaluators[0].options", "exactly one of judge",
    "neither is given", config=ev(safety()), files={"data/rt/vi.jsonl": RT + "\n"})
bad("safety-no-data-for-language", V, "evaluation.evaluators[0]", "no red-teaming prompts for language 'vi'",
    config=ev(safety(judge=JUDGE)), files={"data/rt/bn.jsonl": RT + "\n"}, hint="global_or_local")
bad("safety-bad-scope", V, "data/rt/vi.jsonl:2", "global_or_local", '"everywhere"', config=ev(safety(judge=JUDGE)),
    files={"data/rt/vi.jsonl": RT + "\n" + RT.replace('"global"', '"everywhere"') + "\n"}, hint="global or local")
bad("safety-missing-field", V, "data/rt/vi.jsonl:1", "no harm_category", config=ev(safety(classifier=CLASSIFIER)),
    files={"data/rt/vi.jsonl": json.dumps({"prompt": "x", "language": "vi", "global_or_local": "local"}) + "\n"})
bad("safety-row-in-another-language", V, "data/rt/vi.jsonl:1", '"Hindi"', "Vietnamese (vi)",
    config=ev(safety(judge=JUDGE)), files={"data/rt/vi.jsonl": RT.replace("Vietnamese", "Hindi") + "\n"})
bad("safety-classifier-label-unknown", V, "evaluation.evaluators[0].options", "no label named 'toxic'",
    "0: LABEL_0, 1: LABEL_1", config=ev(safety(classifier={"model": "models/mine", "harmful_label": "toxic"})),
    files={"data/rt/vi.jsonl": RT + "\n"})
bad("evaluate-baseline-without-comparing-evaluator", "evaluate --model models/mine --languages vi --evaluator "
    "language_fidelity --prompts vi=data/alpaca_vi.json --baseline models/mine", "--baseline",
    "no chosen evaluator compares", hint="win_rate")
bad("evaluate-baseline-label-taken", "evaluate --model models/mine --label baseline --baseline models/mine "
    "--languages vi --evaluator win_rate --prompts vi=data/alpaca_vi.json", "--label", "taken by the --baseline")
bad("evaluate-baseline-missing", "evaluate --model models/mine --baseline ./models/none --languages vi "
    "--evaluator win_rate --prompts vi=data/alpaca_vi.json", "--baseline", "model folder not found: ./models/none")

# ---- supplied models and data
bad("models-label-slash", V, "models.a/b", "'a/b'", config=ev(("models", {"a/b": "models/mine"}),
                                                              ("evaluation.models", ["a/b"])))
bad("models-label-base", V, "models.base", "'base' is a name okapi-kit uses itself",
    config=ev(("models", {"base": "models/mine"}), ("evaluation.models", ["base"])))
bad("models-path-missing", V, "models.mine", "does not exist: models/none",
    config=ev(("models.mine", "models/none")), hint="relative paths are taken from")
bad("models-path-is-file", V, "models.mine", "is a file, not a model folder", config=ev(("models.mine", "data/rl_vi.json")))
bad("models-per-language-wrong-scope", V, "models.mine", "model_scope: per_language",
    config=ev(("models.mine", {"vi": "models/mine"})))
bad("models-per-language-missing", V, "models.mine", "no mine model for 'bn'", config=ev(
    ("model_scope", "per_language"), ("languages", ["vi", "bn"]), ("models.mine", {"vi": "models/mine"}),
    ("evaluation.evaluators", ["language_fidelity"]), ("data.eval_prompts.bn", "data/alpaca_vi.json")),
    hint="models.mine.bn")
bad("data-language-not-in-run", V, "data.eval_prompts.bn", "'bn' is not one of the run's languages",
    config=ev(("data.eval_prompts.bn", "data/alpaca_vi.json")))
bad("data-file-missing", V, "data.eval_prompts.vi", "not found: data/none.json",
    config=ev(("data.eval_prompts.vi", "data/none.json")), hint="config's folder")
bad("data-file-is-folder", V, "data/plain", "folder", config=ev(("data.eval_prompts.vi", "data/plain")),
    files={"data/plain/a.txt": "hello"})
bad("data-file-not-utf8", V, "p.json:3", "not UTF-8", config=ev(("data.eval_prompts.vi", "data/p.json")),
    files={"data/p.json": b'[\n {"instruction": "a"},\n {"instruction": "\xff"}\n]\n'}, hint="UTF-8")
bad("data-rankings-given-as-prompts", V, "r_vi.json", "looks like preference pairs", "not instructions",
    config=ev(("data.eval_prompts.vi", "data/r_vi.json")))
bad("data-instructions-given-as-rankings", V, "alpaca_vi.json", "looks like instructions with reference outputs",
    config=tr(("data.rankings.vi", "data/alpaca_vi.json")))
bad("data-prompts-given-as-translations", V, "rl_vi.json", "no 'output'", "prompts, not SFT data",
    config=full(("translation", DELETE), ("data.translations.vi", "data/rl_vi.json"),
                ("data.eval_prompts.vi", "data/rl_vi.json")), hint="data.prompts")
bad("data-bad-json-middle-line", V, "p.jsonl:2", "invalid JSON", config=ev(("data.eval_prompts.vi", "data/p.jsonl")),
    files={"data/p.jsonl": '{"instruction": "a"}\n{"instruction": "b"\n{"instruction": "c"}\n'})
bad("data-json-array-of-strings", V, "p.json", "expected a JSON object", config=ev(("data.eval_prompts.vi", "data/p.json")),
    files={"data/p.json": '["a", "b"]'})
bad("data-json-not-records", V, "p.json", "expected a JSON array", config=ev(("data.eval_prompts.vi", "data/p.json")),
    files={"data/p.json": '{"data": 5}'})
bad("data-empty-file", V, "p.jsonl", "no records", config=ev(("data.eval_prompts.vi", "data/p.jsonl")),
    files={"data/p.jsonl": "\n"})
bad("data-listed-twice", V, "cfg.yaml: data.eval_prompts.vi", "listed twice", config=ev(("data.eval_prompts.vi", ["data/alpaca_vi.json", "data/alpaca_vi.json"])))
bad("data-a-number", V, "cfg.yaml", "data.eval_prompts.vi", config=ev(("data.eval_prompts.vi", 5)))
bad("data-format-typo", V, "cfg.yaml", "data.format", "(got 'csv')", config=ev(("data.format", "csv")))
bad("data-unknown-kind", V, "unknown key 'data.instructions'", config=ev(("data.instructions", {})),
    hint="did you mean")
bad("data-samples-without-responses", V, "s.jsonl:1", "'responses'", config=tr(
    ("ranking", {"ranker": "reference_chrf"}), ("data.samples.vi", "data/s.jsonl")),
    files={"data/s.jsonl": '{"prompt": "a", "reference": "b"}\n'})
bad("data-rankings-one-response", V, "k.jsonl:1", "'responses'", config=tr(("data.rankings.vi", "data/k.jsonl")),
    files={"data/k.jsonl": '{"prompt": "a", "responses": ["only"]}\n'})
bad("data-rankings-bad-order", V, "k.jsonl:1", "'order'", config=tr(("data.rankings.vi", "data/k.jsonl")),
    files={"data/k.jsonl": '{"prompt": "a", "responses": ["x", "y"], "order": [0, 0]}\n'})
bad("stages-unknown", V, "stages[0]", "no stage named 'filter'", config=tr(("stages", ["filter"])))
bad("stages-a-mapping", V, "cfg.yaml", "stages", "valid list", config=tr(("stages", {"name": "x"})))

# ---- reward-model transfer: the rm_transfer stage and the rm-transfer command
RMT_OPT = "stages.0.options"
bad("rmt-stage-source-unknown", V, "stages[0].options.sources", "unknown language code 'xx'",
    config=rmt((f"{RMT_OPT}.sources", ["xx"])), files=MRB)
bad("rmt-stage-source-without-rm", V, "stages[0].options.sources[0]", "'bn' has no reward model in this run",
    config=rmt((f"{RMT_OPT}.sources", ["bn"])), files=MRB, hint="add 'bn' to languages")
bad("rmt-stage-target-unknown", V, "stages[0].options.targets", "unknown language code 'xx'",
    config=rmt((f"{RMT_OPT}.targets.languages", ["vi", "xx"])), files=MRB)
bad("rmt-stage-test-missing", V, "stages[0].options.targets", "no test set for 'bn'",
    config=rmt((f"{RMT_OPT}.targets.languages", ["vi", "bn"])), files=MRB, hint="bn.jsonl")
bad("rmt-stage-data-dir-missing", V, "stages[0].options.targets", "no test set for 'vi'", "data/none",
    config=rmt((f"{RMT_OPT}.targets.data_dir", "data/none")), files=MRB, hint="vi.jsonl")
bad("rmt-stage-rm-path-missing", V, "stages[0].options.models.de.model", "does not exist: models/none",
    config=rmt((f"{RMT_OPT}.models", {"de": {"model": "models/none"}})), files=MRB, hint="relative paths")
bad("rmt-stage-rm-unknown-language", V, "stages[0].options.models.mine", "not a language code",
    config=rmt((f"{RMT_OPT}.models", {"mine": {"model": "models/mine"}})), files=MRB, hint="language:")
bad("rmt-stage-multilingual-sources", V, "stages[0].options.sources", "one multilingual reward model",
    config=rmt(("model_scope", "multilingual"), (f"{RMT_OPT}.sources", ["vi"])), files=MRB, hint="per_language")
bad("rmt-stage-option-typo", V, "unknown key 'stages[0].options.target'",
    config=rmt((f"{RMT_OPT}.target", {})), files=MRB, hint="did you mean 'targets'")
bad("rmt-stage-transfer-unknown", V, "stages[0].options.transfer[0]", "no transfer named 'drect'",
    config=rmt((f"{RMT_OPT}.transfer", ["drect"])), files=MRB, hint="did you mean 'direct'")
bad("rmt-stage-scoring-typo", V, "unknown key 'stages[0].options.scoring.batch_sz'",
    config=rmt((f"{RMT_OPT}.scoring", {"batch_sz": 8})), files=MRB, hint="did you mean 'batch_size'")
bad("rmt-stage-no-reward-model", V, "stages[0].options", "no reward model to transfer",
    config=rmt(("models", {})), files=MRB, hint="list yours under models")
bad("rmt-stage-twice", V, "stages[1]", "the rm_transfer stage is listed twice",
    config=rmt(("stages", rmt_config()["stages"] * 2)), files=MRB, hint="merge")
bad("rm-transfer-source-unknown-language", "rm-transfer cfg.yaml --quiet", "sources.xx",
    "'xx' is not a language code", config=rmtc(("sources", {"xx": {"model": "models/mine"}})), files=MRB,
    hint="language:")
bad("rm-transfer-test-missing", "rm-transfer cfg.yaml --quiet", "targets", "no test set for 'bn'",
    config=rmtc(("targets.languages", ["vi", "bn"])), files=MRB, hint="bn.jsonl")
bad("rm-transfer-rm-path-missing", "rm-transfer cfg.yaml --quiet", "sources.vi.model", "does not exist: models/none",
    config=rmtc(("sources.vi.model", "models/none")), files=MRB, hint="relative paths")

# ---- validate reports every problem at once
bad("validate-several-problems", V, "3 problems", "unknown key 'sedd'", "languages[0]", "'vn'", "seed",
    config=tr(("sedd", 1), ("seed", "x"), ("languages", ["vn"])), lines=8)
bad("validate-several-plan-problems", V, "problems", "translation.translator", "instructions.path",
    config=full(("translation.translator.name", "tm"), ("instructions.path", "data/none.jsonl"),
                ("alignment.0.trainer.name", "reward")), lines=12)

# ---- --set
bad("set-no-equals", f"{V} --set seed", "--set 'seed' has no '='", config=tr(), hint="key.path=value")
bad("set-bad-index", f"{V} --set alignment.3.method=x", "--set alignment.3.method", "not an index",
    config=full(), hint="1 item(s)")
bad("set-into-a-number", f"{V} --set seed.x=1", "--set seed.x", "not a section", config=tr(("seed", 1)),
    hint="--set seed=VALUE")
bad("set-unknown-key", f"{V} --set sampling.topk=5", "unknown key 'sampling.topk'", config=full())
bad("set-option-num-epoch", f"{V} --set sft.trainer.options.num_epoch=1", "sft.trainer.options.num_epoch",
    config=full(), hint="did you mean 'num_epochs'")
bad("set-seed-negative", f"{V} --set seed=-1", "seed", "(got -1)", config=tr())
bad("set-language-unknown", f"{V} --set languages=[vi,xx]", "languages[1]", "'xx'", config=tr())
bad("set-on-run", f"run cfg.yaml --run-dir {RUN} --set seed=-5", "seed", "(got -5)", config=tr())

# ---- run: the run folder and the results database
bad("run-config-missing", "run none.yaml", "config file not found: none.yaml")
bad("run-fresh-with-typo", f"{RUN_R} --fresh", "translation.translator", "no translator named 'translation_memroy'",
    config=tr(("translation.translator.name", "translation_memroy")), state=as_finished,
    hint="did you mean")
bad("run-fresh-with-bad-option", f"{RUN_R} --fresh", "unknown key 'instructions.limt'",
    config=tr(("instructions.limt", 3)), state=as_finished)
bad("run-fresh-not-a-run-folder", f"{RUN_R} --fresh", "not an okapi-kit run folder", str(Path(RUN).name),
    config=tr(), state=not_a_run_folder, hint="another run folder")
bad("run-locked", RUN_R, "in use by okapi-kit pid 4242", config=tr(), state=hold_lock,
    hint="wait for that run")
bad("run-locked-fresh", f"{RUN_R} --fresh", "in use by okapi-kit pid 4242", config=tr(), state=hold_lock)
bad("run-manifest-json-list", RUN_R, "manifest.json", "corrupt", config=tr(), state=manifest_text("[]"),
    hint="--fresh", may_change=RUNNING)
bad("run-manifest-not-json", RUN_R, "manifest.json", "corrupt", config=tr(), state=manifest_text("{units"),
    hint="--fresh", may_change=RUNNING)
bad("run-manifest-not-utf8", RUN_R, "manifest.json", "corrupt", config=tr(), state=manifest_text(b'{"u": "\xff"}'),
    may_change=RUNNING)
bad("run-manifest-units-a-list", RUN_R, "manifest.json", "corrupt", config=tr(),
    state=manifest_text('{"version": 2, "units": []}'), may_change=RUNNING)
bad("run-manifest-is-folder", RUN_R, "manifest.json", "folder", config=tr(), state=manifest_is_folder,
    may_change=RUNNING)
bad("run-corrupt-partial-line", RUN_R, "translate-vi-", ".jsonl:2", "corrupt line", config=tr(),
    state=corrupt_partial, hint="finished work", may_change=RUNNING)
bad("run-corrupt-finished-records", RUN_R, "records/instructions/en.jsonl:2", "invalid JSON",
    config=tr(("translation.translator.options.fields", ["instruction", "output"])), state=corrupt_records,
    may_change=RUNNING + ("runs/r/partial",), superseded=("translate/vi",))
bad("run-db-not-sqlite", "run cfg.yaml --run-dir runs/e --db notdb.sqlite --quiet", "notdb.sqlite",
    "not an SQLite database", config=ev(), files={"notdb.sqlite": "name,value\n"}, hint="--db")
bad("run-db-not-sqlite-no-eval", f"{RUN_R} --db notdb.sqlite", "notdb.sqlite", "not an SQLite database",
    config=tr(), files={"notdb.sqlite": "name,value\n"})
bad("run-db-under-a-file", "run cfg.yaml --run-dir runs/e --db notdb.sqlite/x.sqlite --quiet",
    "notdb.sqlite", "is a file", config=ev(), files={"notdb.sqlite": "x"})
bad("run-dir-is-a-file", "run cfg.yaml --run-dir afile", "afile", "is a file", config=tr(), files={"afile": "x"},
    hint="folder")
bad("run-dir-under-a-file", "run cfg.yaml --run-dir afile/r", "afile/r", "inside", config=tr(), files={"afile": "x"})
bad("run-db-is-a-folder", "run cfg.yaml --db adir --run-dir runs/e", "adir", "a folder", config=ev(),
    files={"adir": FOLDER})
bad("run-unknown-flag", "run cfg.yaml --frsh", "--frsh", config=tr())
bad("run-dir-inside-data", "run cfg.yaml --run-dir data --fresh --quiet", "not an okapi-kit run folder", config=tr())

# ---- evaluate
EVAL = "evaluate --model models/mine --languages vi --evaluator language_fidelity --prompts vi=data/alpaca_vi.json"
bad("evaluate-label-count", f"{EVAL} --model models/mine --label a", "1 --label for 2 --model", hint="one --label per --model")
bad("evaluate-labels-twice", f"{EVAL} --model data --label a --label a", "two models get the label 'a'",
    hint="its own --label")
bad("evaluate-default-labels-clash", "evaluate --model models/mine --model other/mine --languages vi",
    "two models get the label 'mine'", files={"other/mine/config.json": "{}"}, hint="--label")
bad("evaluate-prompts-no-equals", "evaluate --model models/mine --languages vi --evaluator language_fidelity "
    "--prompts data/alpaca_vi.json", "--prompts 'data/alpaca_vi.json' is not LANG=FILE", hint="vi=")
bad("evaluate-prompts-no-lang", "evaluate --model models/mine --languages vi --evaluator language_fidelity "
    "--prompts =data/alpaca_vi.json", "is not LANG=FILE")
bad("evaluate-prompts-no-file", "evaluate --model models/mine --languages vi --evaluator language_fidelity "
    "--prompts vi=", "is not LANG=FILE")
bad("evaluate-prompts-missing-file", "evaluate --model models/mine --languages vi --evaluator language_fidelity "
    "--prompts vi=data/none.json", "none.json", "not found")
bad("evaluate-prompts-other-language", f"{EVAL} --prompts bn=data/alpaca_vi.json", "'bn'", "languages")
bad("evaluate-prompts-wrong-kind", "evaluate --model models/mine --languages vi --evaluator language_fidelity "
    "--prompts vi=data/r_vi.json", "r_vi.json", "looks like preference pairs")
bad("evaluate-fidelity-without-prompts", "evaluate --model models/mine --languages vi --evaluator language_fidelity",
    "--prompts", "'language_fidelity'", "held-out prompts", "'vi'", hint="--prompts vi=FILE")
bad("evaluate-languages-empty", "evaluate --model models/mine --languages ,", "--languages names no language",
    hint="--languages vi,bn")
bad("evaluate-language-unknown", f"{EVAL} --languages vi,xx", "languages[1]", "'xx'")
bad("evaluate-evaluator-unknown", "evaluate --model models/mine --languages vi --evaluator lm_evall",
    "no evaluator named 'lm_evall'", hint="did you mean 'lm_eval'")
bad("evaluate-model-missing", "evaluate --model ./models/none --languages vi --evaluator language_fidelity "
    "--prompts vi=data/alpaca_vi.json", "--model", "model folder not found: ./models/none", hint="working directory")
bad("evaluate-model-is-file", "evaluate --model data/rl_vi.json --label x --languages vi --evaluator "
    "language_fidelity --prompts vi=data/alpaca_vi.json", "--model", "is a file, not a model folder")
bad("evaluate-label-slash", f"{EVAL} --label a/b", "--label", "'a/b'", "file path", hint="letters, digits")
bad("evaluate-label-base", f"{EVAL} --label base", "--label", "'base' is a name okapi-kit uses itself")
bad("evaluate-name-slash", f"{EVAL} --name a/b", "--name", "'a/b'", "file path")
bad("evaluate-options-missing", f"{EVAL} --options none.yaml", "none.yaml: no such file (expected an options file)")
bad("evaluate-options-a-folder", f"{EVAL} --options data", "data: a folder, not a file")
bad("evaluate-options-a-list", f"{EVAL} --options o.yaml", "o.yaml", "must be a YAML mapping",
    files={"o.yaml": "- a\n"})
bad("evaluate-options-not-utf8", f"{EVAL} --options o.yaml", "o.yaml:1", "not UTF-8", files={"o.yaml": b"x: \xff\n"})
bad("evaluate-options-duplicate-key", f"{EVAL} --options o.yaml", "o.yaml", "'language_fidelity' is given twice",
    files={"o.yaml": "language_fidelity: {}\nlanguage_fidelity: {}\n"})
bad("evaluate-options-unchosen-evaluator", f"{EVAL} --options o.yaml", "o.yaml", "'lm_eval'", "not chosen",
    files={"o.yaml": "lm_eval: {data_dir: data/eval}\n"}, hint="chosen evaluators")
bad("evaluate-options-section-not-mapping", f"{EVAL} --options o.yaml", "o.yaml", "language_fidelity",
    files={"o.yaml": "language_fidelity: [1, 2]\n"})
bad("evaluate-options-unknown-key", f"{EVAL} --options o.yaml", "min_char", files={"o.yaml": "language_fidelity: {min_char: 2}\n"},
    hint="did you mean 'min_chars'")
bad("evaluate-lm-eval-no-language-files", "evaluate --model models/mine --languages bn --options o.yaml",
    "bn", files={"o.yaml": "lm_eval: {data_dir: data/eval}\n"})
bad("evaluate-lm-eval-data-dir-relative-to-options", "evaluate --model models/mine --languages vi --options sub/o.yaml",
    "data_dir", "does not exist", files={"sub/o.yaml": "lm_eval: {data_dir: data/eval}\n"})
bad("evaluate-db-not-sqlite", f"{EVAL} --db notdb.sqlite --run-dir runs/e", "notdb.sqlite", "not an SQLite database",
    files={"notdb.sqlite": "x" * 100})
bad("evaluate-set-bad", f"{EVAL} --set evaluation.samples_per_prompt=0", "evaluation.samples_per_prompt", "(got 0)")
bad("evaluate-missing-model-flag", "evaluate --languages vi", "--model")

# ---- train
TRAIN = "train sft --model models/mine --data data/alpaca_vi.json --output runs/t"
bad("train-unknown-method", "train sfft --model models/mine --data data/alpaca_vi.json --output runs/t",
    "no trainer named 'sfft'", "okapi-kit train METHOD", hint="did you mean 'sft'")
bad("train-data-missing", "train sft --model models/mine --data data/none.json --output runs/t", "none.json", "not found")
bad("train-data-folder", "train sft --model models/mine --data data/tr --output runs/t", "data/tr", "folder")
bad("train-data-not-utf8", "train sft --model models/mine --data data/x.jsonl --output runs/t", "x.jsonl:1", "not UTF-8",
    files={"data/x.jsonl": b'{"instruction": "\xe9", "output": "b"}\n'})
bad("train-sft-on-rankings", "train sft --model models/mine --data data/r_vi.json --output runs/t", "r_vi.json",
    "looks like preference pairs")
bad("train-sft-on-prompts", "train sft --model models/mine --data data/rl_vi.json --output runs/t", "rl_vi.json",
    "no 'output'")
bad("train-dpo-on-instructions", "train dpo --model models/mine --data data/alpaca_vi.json --output runs/t",
    "alpaca_vi.json", "looks like instructions with reference outputs", "not preference pairs or rankings")
bad("train-reward-on-prompts", "train reward --model models/mine --data data/rl_vi.json --output runs/t",
    "rl_vi.json", "looks like prompts without outputs")
bad("train-model-missing", "train sft --model ./models/none --data data/alpaca_vi.json --output runs/t",
    "--model", "model folder not found: ./models/none")
bad("train-options-a-list", f"{TRAIN} --options o.yaml", "o.yaml", "must be a YAML mapping", files={"o.yaml": "[1]\n"})
bad("train-options-num-epoch", f"{TRAIN} --options o.yaml", "num_epoch", files={"o.yaml": "num_epoch: 1\n"},
    hint="did you mean 'num_epochs'")
bad("train-options-lr-scheduler", f"{TRAIN} --options o.yaml", "lr_scheduler", "'cosin'",
    files={"o.yaml": "lr_scheduler: cosin\n"})
bad("train-options-device", f"{TRAIN} --options o.yaml", "device", "(got 'gpu')", files={"o.yaml": "device: gpu\n"})
bad("train-options-duplicate", f"{TRAIN} --options o.yaml", "o.yaml:2", "'max_steps' is given twice",
    files={"o.yaml": "max_steps: 1\nmax_steps: 2\n"})
bad("train-reward-flag-for-dpo", "train dpo --model models/mine --data data/r_vi.json --output runs/t --reward models/mine",
    "--reward", "takes no reward")
COPG = "train copg_offline --model models/mine --data data/p.jsonl --output runs/t"
SCORED_PAIR = '{"prompt": "a", "chosen": "b", "rejected": "c", "chosen_reward": 1, "rejected_reward": 0}\n'
bad("train-copg-offline-no-rewards", COPG, "p.jsonl:2", "has no rewards", "'copg_offline'", hint="chosen_reward",
    files={"data/p.jsonl": SCORED_PAIR + '{"prompt": "a", "chosen": "b", "rejected": "c"}\n'})
bad("train-copg-offline-one-reward", COPG, "p.jsonl:1", "'chosen_reward' is given without 'rejected_reward'",
    files={"data/p.jsonl": '{"prompt": "a", "chosen": "b", "rejected": "c", "chosen_reward": 1}\n'})
bad("train-copg-offline-reward-text", COPG, "p.jsonl:2", "'rejected_reward' must be a finite number",
    files={"data/p.jsonl": SCORED_PAIR + SCORED_PAIR.replace("0}", '"low"}')})
bad("train-language-unknown", f"{TRAIN} --language xx", "'xx'", "languages[0]")
bad("train-set-bad", f"{TRAIN} --set sft.trainer.options.max_steps=0", "max_steps", "(got 0)")
bad("train-output-not-run-folder", f"{TRAIN} --fresh", "not an okapi-kit run folder", hint="another run folder",
    files={"runs/t/notes.txt": "mine"})
bad("train-output-locked", "train sft --model models/mine --data data/alpaca_vi.json --output runs/r",
    "in use by okapi-kit pid 4242", state=hold_lock, config=tr())
bad("train-missing-data-flag", "train sft --model models/mine --output runs/t", "--data")

# ---- translate
TRANSLATE = "translate data/instructions.en.jsonl --translator translation_memory --output runs/tl"
bad("translate-empty-to", f"{TRANSLATE} --to ,", "--to names no language", hint="--to vi")
bad("translate-to-unknown", f"{TRANSLATE} --to vi,xx --options tm.yaml", "languages[1]", "'xx'",
    files={"tm.yaml": "source: data/instructions.en.jsonl\ntargets: {vi: data/tr/vi.jsonl}\n"})
bad("translate-translator-unknown", "translate data/instructions.en.jsonl --to vi --translator deepl --output runs/tl",
    "no translator named 'deepl'")
bad("translate-input-missing", "translate data/none.jsonl --to vi --translator translation_memory --output runs/tl "
    "--options tm.yaml", "none.jsonl", "not found",
    files={"tm.yaml": "source: data/instructions.en.jsonl\ntargets: {vi: data/tr/vi.jsonl}\n"})
bad("translate-input-is-rankings", "translate data/r_vi.json --to vi --translator translation_memory --output runs/tl "
    "--options tm.yaml", "r_vi.json", "looks like preference pairs",
    files={"tm.yaml": "source: data/instructions.en.jsonl\ntargets: {vi: data/tr/vi.jsonl}\n"})
bad("translate-no-options", f"{TRANSLATE} --to vi", "missing required key", "options.source", lines=3)
bad("translate-options-missing-target", f"{TRANSLATE} --to vi,bn --options tm.yaml", "no 'bn' file",
    files={"tm.yaml": "source: data/instructions.en.jsonl\ntargets: {vi: data/tr/vi.jsonl}\n"})
bad("translate-options-path-relative-to-file", f"{TRANSLATE} --to vi --options sub/tm.yaml", "does not exist",
    "sub", lines=3, files={"sub/tm.yaml": "source: data/instructions.en.jsonl\ntargets: {vi: data/tr/vi.jsonl}\n"})
bad("translate-source-language-unknown", f"{TRANSLATE} --to vi --source-language eng --options tm.yaml",
    "source_language", "'eng'",
    files={"tm.yaml": "source: data/instructions.en.jsonl\ntargets: {vi: data/tr/vi.jsonl}\n"})
bad("translate-options-scalar", f"{TRANSLATE} --to vi --options tm.yaml", "tm.yaml", "must be a YAML mapping",
    files={"tm.yaml": "translation_memory\n"})
bad("translate-missing-to", "translate data/instructions.en.jsonl --translator translation_memory --output runs/tl",
    "--to")

# ---- rank
RANK = "rank data/samples_vi.jsonl --ranker reference_chrf --output runs/rk"
bad("rank-no-responses", "rank data/rl_vi.json --ranker reference_chrf --output runs/rk", "rl_vi.json", "'responses'")
bad("rank-one-response", "rank data/s.jsonl --ranker reference_chrf --output runs/rk --language vi", "s.jsonl:1",
    "'responses'", files={"data/s.jsonl": '{"prompt": "a", "responses": ["x"]}\n'})
bad("rank-ranker-unknown", f"{RANK} --ranker judge", "no ranker named 'judge'")
bad("rank-input-missing", "rank data/none.jsonl --ranker reference_chrf --output runs/rk", "none.jsonl", "not found")
bad("rank-input-not-utf8", "rank data/s.jsonl --ranker reference_chrf --output runs/rk", "s.jsonl:1", "not UTF-8",
    files={"data/s.jsonl": b'{"prompt": "\xe9", "responses": ["x", "y"]}\n'})
bad("rank-language-unknown", f"{RANK} --language xx", "'xx'")
bad("rank-options-unknown-key", f"{RANK} --options o.yaml", "unknown key", "foo", files={"o.yaml": "foo: 1\n"})
bad("rank-options-a-list", f"{RANK} --options o.yaml", "o.yaml", "must be a YAML mapping", files={"o.yaml": "- 1\n"})
bad("rank-bad-json", "rank data/s.jsonl --ranker reference_chrf --output runs/rk", "s.jsonl:2", "invalid JSON",
    files={"data/s.jsonl": '{"prompt": "a", "responses": ["x", "y"]}\n{\n{"prompt": "b", "responses": ["x", "y"]}\n'})
bad("rank-missing-ranker", "rank data/samples_vi.jsonl --output runs/rk", "--ranker")

# ---- init, leaderboard, plugins
bad("init-config-exists", "init cfg.yaml", "cfg.yaml exists", config=tr(), hint="--force")
bad("init-data-not-empty", "init new.yaml", "data", "not empty", hint="--force")
bad("init-under-a-file", "init afile/okapi.yaml", "afile", files={"afile": "x"})
bad("leaderboard-db-missing", "leaderboard --db none.sqlite", "none.sqlite", "no results database",
    hint="run a pipeline first")
bad("leaderboard-db-not-sqlite", "leaderboard --db notdb.sqlite", "notdb.sqlite", "not an SQLite database",
    files={"notdb.sqlite": "hello"})
bad("leaderboard-db-folder", "leaderboard --db data", "data", "a folder")
bad("leaderboard-run-unknown", "leaderboard --db lb.sqlite --run dmeo", "--run", "no results of a run named 'dmeo'",
    setup=lambda work: results_db(work / "lb.sqlite"), hint="did you mean 'demo'")
bad("leaderboard-empty-file", "leaderboard --db empty.sqlite --run nope", "--run", "no results of a run named 'nope'",
    files={"empty.sqlite": b""})
bad("leaderboard-format-typo", "leaderboard --format yaml", "yaml")
bad("unknown-command", "valdate cfg.yaml", "valdate")


# ---- `run` checks what `validate` checks, before it touches anything: the same cases again,
# each with a folder the old pipeline would have deleted (``victim``) and the run folder to be
for _id in ("config-duplicate-key", "seed-negative", "name-with-slash", "holdout-zero-with-fidelity",
            "translation-memory-duplicate-ids", "sft-wrong-trainer-reward", "sft-lr-scheduler-typo",
            "sampler-device-banana", "alignment-trainer-reward", "alignment-method-traversal",
            "alignment-method-absolute", "alignment-method-sft", "alignment-method-empty",
            "fidelity-unknown-language", "instructions-are-rankings", "instructions-holdout-all"):
    _case = next(c for c in CASES if c.id == _id)
    CASES.append(Case(f"{_id}-run", f"run cfg.yaml --run-dir {RUN}", _case.expect, config=_case.config,
                      files={**_case.files, "victim/thesis.tex": "years of work"}, hint=_case.hint))
bad("evaluate-fresh-not-a-run-folder", f"{EVAL} --run-dir data --fresh", "not an okapi-kit run folder")
bad("translate-output-is-a-file", "translate data/instructions.en.jsonl --to vi --translator translation_memory "
    "--output data/alpaca_vi.json", "data/alpaca_vi.json", "the run folder is a file")


# ---------------------------------------------------------------- checks

def snapshot(root: Path) -> dict[str, str]:
    """Every path below ``root``: a folder, or a file's content hash."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_dir():
            out[rel] = "folder"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def done_units(run: Path) -> dict[str, str]:
    """Finished units of a run folder, by key, with their fingerprints."""
    try:
        data = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
        return {k: v["fingerprint"] for k, v in data["units"].items() if v.get("status") == "done"}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished run of ``tr_config`` (copied into each case that has a ``state``)."""
    root = tmp_path_factory.mktemp("finished")
    write_data(root)
    (root / "cfg.yaml").write_text(TR_YAML, encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("HOME", str(tmp_path_factory.mktemp("home")))
        assert main(["run", "cfg.yaml", "--run-dir", RUN, "--quiet"]) == 0
    assert set(done_units(root / RUN)) == {"instructions", "translate/vi"}
    return root / RUN


def write(path: Path, content: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if content is FOLDER:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")


def _params():
    ids = [c.id for c in CASES]
    assert len(set(ids)) == len(ids), "case ids must be unique"
    for c in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else []
        yield pytest.param(c, id=c.id, marks=marks)


def test_the_table_is_large_enough():
    assert len(CASES) >= 150


@pytest.mark.parametrize("case", list(_params()))
def test_bad_input(case: Case, tmp_path, monkeypatch, capsys, finished_run):
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    write_data(work)
    keep: list[Any] = []
    if case.state is not None:
        shutil.copytree(finished_run, work / RUN)
        case.state(work / RUN, keep)
    if case.config is not None:
        write(work / "cfg.yaml", case.config)
    for rel, content in case.files.items():
        write(work / rel, content)
    if case.setup is not None:
        case.setup(work)
    before, done_before = snapshot(work), done_units(work / RUN)
    try:
        rc = main(shlex.split(case.argv))
    finally:
        for fh in keep:
            fh.close()
    out, err = capsys.readouterr()

    assert "Traceback" not in out + err, err
    assert rc == 2, f"exit code {rc}\nstdout: {out}\nstderr: {err}"
    assert err.startswith("error: "), err
    assert err.count("error:") == 1, err
    assert out == "", out
    lines = err.rstrip("\n").splitlines()
    assert len(lines) <= case.lines, err
    for text in case.expect:
        assert text in err, f"{text!r} not in {err!r}"
    if case.hint is not None:
        hints = [line for line in lines if line.strip().startswith("hint:")]
        assert hints, f"no hint in {err!r}"
        assert any(case.hint in h for h in hints), f"{case.hint!r} not in the hint of {err!r}"

    after = snapshot(work)
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    unexpected = {p for p in changed if not any(fnmatch.fnmatch(p, pat) for pat in case.may_change)}
    assert not unexpected, f"written or removed: {sorted(unexpected)}"
    assert list(home.iterdir()) == [], "written to HOME"
    kept = {k: v for k, v in done_before.items() if k not in case.superseded}
    done_after = done_units(work / RUN)
    assert {k: v for k, v in done_after.items() if k in kept} == kept, "a finished unit was lost"
