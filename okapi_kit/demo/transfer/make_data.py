"""Write the toy project: ``python -m okapi_kit.demo.transfer DIR`` writes into DIR

- ``transfer.yaml`` (for ``okapi-kit rm-transfer``) and ``align.yaml`` (for ``okapi-kit run``);
- ``base/``: a tiny random Llama (64 wide, 2 layers, byte-level tokenizer) whose chat template
  writes the prompt as it is followed by a newline, so that prompts stay short for the tiny
  model in both commands (``prompt_template: chat``);
- ``data/`` (deterministic, seed 0):

- ``train/<lang>.jsonl``: preference pairs {id, instruction, chosen, rejected}; English has
  many, Vietnamese and Bengali few (preference data is scarce outside English);
- ``test/<lang>.jsonl``: Multilingual RewardBench's schema {id, prompt, chosen, rejected,
  category}, the same pairs in every language (parallel by id); category ``near`` (the wrong
  number is one off) or ``far`` (three or more off);
- ``sft/<lang>.jsonl``: {id, instruction, output} whose answers give the sum in 30% of the
  rows and a random number in the others (the policy learns the answer's form, and the sum
  only a little);
- ``prompts/<lang>.jsonl`` (online RL) and ``eval_prompts/<lang>.jsonl`` (held out): {id, instruction};
- ``memory/source.jsonl`` and ``memory/<lang>.jsonl``: the test sets as a translation memory
  between every two languages (for ``translate_then_score`` with perfect translations).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from .task import ANSWERS, LANGUAGES, MAX_OPERAND, PROMPTS

TRAIN = {"en": 800, "vi": 100, "bn": 100}
TEST, SFT, RL_PROMPTS, EVAL_PROMPTS = 120, 300, 400, 120
SFT_RIGHT = 0.3  # share of SFT answers that give the sum; the rest are random numbers
HERE = Path(__file__).resolve().parent
CHAT_TEMPLATE = "{% for message in messages %}{{ message['content'] }}\n{% endfor %}"


def _wrong(rng: random.Random, right: int, near: bool) -> int:
    choices = [n for n in range(10) if (abs(n - right) == 1 if near else abs(n - right) >= 3)]
    return rng.choice(choices)


def _item(rng: random.Random) -> dict[str, int]:
    a, b = rng.randint(0, MAX_OPERAND), rng.randint(0, MAX_OPERAND)
    near = rng.random() < 0.5
    return {"a": a, "b": b, "wrong": _wrong(rng, a + b, near), "near": near,
            "p": rng.randrange(1000), "r": rng.randrange(1000)}


def _texts(item: dict[str, int], lang: str) -> tuple[str, str, str]:
    prompt = PROMPTS[lang][item["p"] % len(PROMPTS[lang])].format(a=item["a"], b=item["b"])
    template = ANSWERS[lang][item["r"] % len(ANSWERS[lang])]
    return prompt, template.format(n=item["a"] + item["b"]), template.format(n=item["wrong"])


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def write(out: Path, seed: int = 0) -> None:
    """The task's data files under ``out``. Each file has a random stream of its own, so that
    changing one count leaves the other files as they were."""
    def rng(*name: str) -> random.Random:
        return random.Random("/".join([str(seed), *name]))

    for lang in LANGUAGES:
        r = rng("train", lang)
        rows = []
        for i in range(TRAIN[lang]):
            prompt, good, bad = _texts(_item(r), lang)
            rows.append({"id": f"{lang}-train-{i:04d}", "instruction": prompt, "chosen": good, "rejected": bad})
        _write(out / "train" / f"{lang}.jsonl", rows)
    r = rng("test")
    test = [_item(r) for _ in range(TEST)]  # one set of items, written in every language
    for lang in LANGUAGES:
        rows = []
        for i, item in enumerate(test):
            prompt, good, bad = _texts(item, lang)
            rows.append({"id": f"test-{i:04d}", "prompt": prompt, "chosen": good, "rejected": bad,
                         "category": "near" if item["near"] else "far"})
        _write(out / "test" / f"{lang}.jsonl", rows)
    _memory(out, test)
    for lang in LANGUAGES:
        r, sft = rng("sft", lang), []
        for i in range(SFT):
            item = _item(r)
            template = ANSWERS[lang][item["r"] % len(ANSWERS[lang])]
            n = item["a"] + item["b"] if r.random() < SFT_RIGHT else r.randint(0, 9)
            sft.append({"id": f"{lang}-sft-{i:04d}", "instruction": _texts(item, lang)[0],
                        "output": template.format(n=n)})
        _write(out / "sft" / f"{lang}.jsonl", sft)
        for kind, n in (("prompts", RL_PROMPTS), ("eval_prompts", EVAL_PROMPTS)):
            r = rng(kind, lang)
            _write(out / kind / f"{lang}.jsonl", [{"id": f"{lang}-{kind}-{i:04d}", "instruction":
                                                   _texts(_item(r), lang)[0]} for i in range(n)])


def _memory(out: Path, test: list[dict]) -> None:
    """Row ``<from>-<i>`` of ``source.jsonl`` holds test item i in language <from>; the same row
    of ``<lang>.jsonl`` holds it in <lang>: translation_memory then maps any language to <lang>."""
    def rows(lang_of_text):
        return [dict(zip(("prompt", "chosen", "rejected"), _texts(item, lang_of_text(src))), id=f"{src}-{i:04d}")
                for src in LANGUAGES for i, item in enumerate(test)]

    _write(out / "memory" / "source.jsonl", rows(lambda src: src))
    for lang in LANGUAGES:
        _write(out / "memory" / f"{lang}.jsonl", rows(lambda src, lang=lang: lang))


def write_base(out: Path, seed: int = 0) -> Path:
    """The tiny base model with a plain chat template (the prompt, then a newline)."""
    from transformers import AutoTokenizer, set_seed

    from ...errors import OkapiError
    from ...plugins import plugin_manager

    set_seed(seed)
    # built through the plugin hook, as the pipeline does: the core imports no plugin
    if not plugin_manager().hook.okapi_build_model(spec="tiny:llama:64x2", out_dir=Path(out)):
        raise OkapiError("no plugin builds tiny:llama models", hint="install okapi-kit with its plugins")
    tokenizer = AutoTokenizer.from_pretrained(out)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(out)
    return out


def write_project(out: Path) -> list[Path]:
    """The whole project: configs, base model and data."""
    import shutil

    out.mkdir(parents=True, exist_ok=True)
    write(out / "data")
    write_base(out / "base")
    configs = [out / name for name in ("transfer.yaml", "align.yaml")]
    for config in configs:
        shutil.copyfile(HERE / config.name, config)
    return configs


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        sys.exit("usage: python -m okapi_kit.demo.transfer DIR")
    configs = write_project(Path(argv[0]))
    print(f"wrote {', '.join(map(str, configs))}, {Path(argv[0]) / 'base'} and {Path(argv[0]) / 'data'}\n"
          f"next: okapi-kit rm-transfer {configs[0]}\n      okapi-kit run {configs[1]}")


if __name__ == "__main__":
    main(sys.argv[1:])
