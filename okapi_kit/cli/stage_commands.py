"""Every stage alone: ``evaluate``, ``train``, ``translate`` and ``rank``.

Each builds the config of a one-stage graph over what the user supplies and runs it
through the same planner and runner as ``okapi-kit run`` (a run folder with a manifest,
resumable, results in the leaderboard). Paths on the command line are taken from the
working directory; paths inside an ``--options`` file from that file's folder.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from ..errors import OkapiError
from .commands import db_option, execute, fresh_option, quiet_option, run_dir_option, set_option

options_option = click.option("--options", "options_file", type=click.Path(path_type=Path),
                              help="YAML file with the component's options (what a config puts "
                                   "under `options:`).")


def _languages(value: str, where: str) -> list[str]:
    langs = [x.strip() for x in value.split(",") if x.strip()]
    if not langs:
        raise OkapiError(f"{where} names no language", hint=f"e.g. {where} vi,bn")
    return langs


def _cli_path(value: str, option: str = "", what: str = "file", folder: bool = False) -> str:
    """A command-line path, absolute (relative to the working directory) when it exists.

    One that does not exist but is plainly a path (``./x``, ``x.json``, ``runs/x`` with ``runs/``
    here) is an error naming ``option``; anything else is passed on as a hub id."""
    from ..graph.planner import looks_like_path

    path = Path(value).expanduser()
    if folder and path.is_file():
        raise OkapiError(f"{value} is a file, not a {what}", where=option)
    if path.exists():
        return str(path.resolve())
    if option and (looks_like_path(value) or path.suffix in (".json", ".jsonl", ".parquet", ".yaml")
                   or (len(path.parts) > 1 and path.parent.is_dir())):
        raise OkapiError(f"{what} not found: {value}", where=option,
                         hint=f"paths on the command line are taken from the working directory ({Path.cwd()})")
    return value


def _source(command: str, options_file: Path | None) -> str:
    """How messages name what they are about: the command, and the options file if any."""
    return f"{command} (options from {options_file})" if options_file else command


def _options(options_file: Path | None) -> tuple[dict[str, Any], Path]:
    """The options mapping and the folder its relative paths start from."""
    from ..yamlfile import load_mapping

    if options_file is None:
        return {}, Path.cwd()
    return load_mapping(options_file.expanduser(), "an options file"), options_file.expanduser().resolve().parent


def _apply(data: dict[str, Any], overrides: tuple[str, ...]) -> dict[str, Any]:
    from ..config import parse_set, set_dotted

    for item in overrides:
        key, value = parse_set(item)
        set_dotted(data, key, value)
    return data


def _lang_from_name(path: str) -> str | None:
    from ..readers import language_from_filename

    return language_from_filename(Path(path))


@click.command("evaluate")
@click.option("--model", "models", multiple=True, required=True, metavar="PATH_OR_ID",
              help="A model folder or hub id (repeatable).")
@click.option("--label", "labels", multiple=True, metavar="NAME",
              help="A name per --model, in the same order (default: the folder's name).")
@click.option("--languages", required=True, metavar="vi,bn", help="Languages to evaluate in.")
@click.option("--evaluator", "evaluators", multiple=True, metavar="NAME",
              help="Evaluator(s) to run (repeatable; default: lm_eval).")
@click.option("--prompts", "prompts", multiple=True, metavar="LANG=FILE",
              help="Held-out prompts for generation-based evaluators such as language_fidelity.")
@click.option("--baseline", default=None, metavar="PATH_OR_ID",
              help="The model that comparing evaluators (win_rate) compare every --model against; "
                   "labelled `baseline`.")
@click.option("--options", "options_file", type=click.Path(path_type=Path),
              help="YAML file with each evaluator's options, keyed by evaluator name.")
@click.option("--name", default="evaluate", show_default=True, help="The run's name in the leaderboard.")
@set_option
@db_option
@run_dir_option
@fresh_option
@quiet_option
def evaluate_cmd(models, labels, languages, evaluators, prompts, baseline, options_file, name, overrides, db,
                 run_dir, fresh, quiet) -> None:
    """Evaluate existing models (local folders or hub ids) with no training stage.

    \b
    Examples:
      okapi-kit evaluate --model runs/demo/models/sft --languages vi,bn \\
          --options eval.yaml            # eval.yaml: {lm_eval: {data_dir: data/eval}}
      okapi-kit evaluate --model a --model b --label sft --label dpo --languages vi \\
          --evaluator language_fidelity --prompts vi=prompts_vi.jsonl
      okapi-kit evaluate --model runs/demo/models/dpo --label dpo --baseline runs/demo/models/sft \\
          --languages vi --evaluator win_rate --prompts vi=prompts_vi.jsonl --options judge.yaml
    """
    if labels and len(labels) != len(models):
        raise OkapiError(f"{len(labels)} --label for {len(models)} --model", hint="give one --label per --model")
    from ..graph import check_name
    from ..stages.supplied import MODEL_LABELS_RESERVED

    for label in labels:
        check_name(label, where="--label", reserved=MODEL_LABELS_RESERVED)
    check_name(name, where="--name", reserved=frozenset())
    names = list(labels) or [_default_label(m, i) for i, m in enumerate(models)]
    if len(set(names)) != len(names):
        raise OkapiError(f"two models get the label {next(n for n in names if names.count(n) > 1)!r}",
                         hint="give each --model its own --label")
    options, base_dir = _options(options_file)
    chosen = list(evaluators) or ["lm_eval"]
    for key, section in options.items():
        if key not in chosen:
            raise OkapiError(f"the options file has a section {key!r}, but that evaluator is not chosen",
                             where=str(options_file), hint=f"chosen evaluators: {', '.join(chosen)}")
        if section is not None and not isinstance(section, dict):
            raise OkapiError(f"the section {key!r} must be a mapping of {key}'s options, not a "
                             f"{type(section).__name__}", where=str(options_file),
                             hint=f"e.g. {key}: {{option: value}}")
    eval_prompts: dict[str, str] = {}
    for item in prompts:
        lang, sep, file = item.partition("=")
        if not sep or not lang or not file:
            raise OkapiError(f"--prompts {item!r} is not LANG=FILE", hint="e.g. --prompts vi=prompts_vi.jsonl")
        eval_prompts[lang] = _cli_path(file, "--prompts")
    langs = _languages(languages, "--languages")
    _need_prompts(chosen, langs, eval_prompts)
    supplied = {label: _cli_path(m, "--model", "model folder", folder=True) for label, m in zip(names, models)}
    chosen_options = {e: dict(options.get(e) or {}) for e in chosen}
    if baseline is not None:
        if BASELINE in names:
            raise OkapiError(f"--label {BASELINE} is taken by the --baseline model", where="--label",
                             hint="give that --model another --label")
        supplied[BASELINE] = _cli_path(baseline, "--baseline", "model folder", folder=True)
        _name_baseline(chosen_options)
    data = {
        "name": name,
        "languages": langs,
        "models": supplied,
        "data": {"eval_prompts": eval_prompts},
        "evaluation": {"models": names, "evaluators": [
            {"name": e, "options": chosen_options[e]} for e in chosen]},
    }
    execute(_apply(data, overrides), source=_source("okapi-kit evaluate", options_file), base_dir=base_dir,
            run_dir=run_dir, db=db, fresh=fresh, quiet=quiet)


def _need_prompts(chosen: list[str], langs: list[str], eval_prompts: dict[str, str]) -> None:
    """Evaluators that score responses to held-out prompts need --prompts in every language."""
    from ..languages import LANGUAGES
    from ..plugins import registry

    langs = [lang for lang in langs if lang in LANGUAGES]  # an unknown code is reported with the config
    reg = registry()
    for name in chosen:
        try:
            cls = reg.get("evaluator", name).cls
        except OkapiError:
            continue  # an unknown name is reported with the rest of the config
        missing = [lang for lang in langs if lang not in eval_prompts]
        if cls.uses_generations and missing:
            raise OkapiError(f"evaluator {name!r} scores responses to held-out prompts, but no prompts are "
                             f"given in {', '.join(map(repr, missing))}", where="--prompts",
                             hint=f"add --prompts {missing[0]}=FILE (instructions in that language, JSON or JSONL)")


BASELINE = "baseline"  # the label of the --baseline model


def _name_baseline(chosen_options: dict[str, dict[str, Any]]) -> None:
    """Point the comparing evaluators (those with a ``baseline`` option) at the --baseline model."""
    from ..plugins import registry

    reg = registry()
    comparing, unknown = [], False
    for name, opts in chosen_options.items():
        try:
            cls = reg.get("evaluator", name).cls
        except OkapiError:
            unknown = True  # an unknown name is reported with the rest of the config
            continue
        if "baseline" not in cls.Config.model_fields:
            continue
        comparing.append(name)
        given = opts.setdefault("baseline", BASELINE)
        if given != BASELINE:
            raise OkapiError(f"--baseline is given, but the options of {name!r} name the baseline {given!r}",
                             where="--baseline", hint=f"drop one of them (--baseline is labelled {BASELINE!r})")
    if not comparing and not unknown:
        raise OkapiError("--baseline is given, but no chosen evaluator compares models against a baseline",
                         where="--baseline", hint="add --evaluator win_rate, or leave --baseline out")


def _default_label(model: str, i: int) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]", "-", Path(model.rstrip("/")).name).strip(".-") or f"model{i + 1}"
    return name if name not in ("base", "models", "records") else f"model{i + 1}"


@click.command("train")
@click.argument("method")
@click.option("--model", required=True, metavar="PATH_OR_ID", help="The model to start from.")
@click.option("--data", "data_files", multiple=True, required=True, metavar="FILE",
              help="Training data: JSONL, JSON, an Okapi-format file or a datasets folder (repeatable).")
@click.option("--output", required=True, type=click.Path(path_type=Path),
              help="Run folder; the model goes to OUTPUT/models/<method>.")
@click.option("--language", default=None, metavar="CODE",
              help="Language of the data (default: from Okapi file names like r_vi.json, else en).")
@click.option("--reward", default=None, metavar="SPEC",
              help="For online-RL trainers: a reward-model path or hub id, or a Python reward function "
                   "module:function (or file.py:function), f(prompts, completions, **kwargs) -> list[float]. "
                   "For copg_offline: scores the pairs in place of their chosen_reward/rejected_reward.")
@options_option
@set_option
@fresh_option
@quiet_option
def train_cmd(method, model, data_files, output, language, reward, options_file, overrides, fresh, quiet) -> None:
    """Train with any registered trainer (sft, reward, dpo, ...) on your own data.

    \b
    Examples:
      okapi-kit train sft --model bigscience/bloom-560m --data vi.json --output runs/sft-vi
      okapi-kit train dpo --model runs/sft-vi/models/sft --data r_vi.json --output runs/dpo-vi \\
          --options dpo.yaml            # dpo.yaml: {beta: 0.1, max_steps: 200}
      okapi-kit train copg_offline --model runs/sft-vi/models/sft --data pairs.jsonl --output runs/copg-vi
                                        # pairs.jsonl: prompt, chosen, rejected, chosen_reward, rejected_reward
    """
    from ..plugins import registry

    entry = registry().get("trainer", method, where="okapi-kit train METHOD")
    options, base_dir = _options(options_file)
    lang = language or _lang_from_name(data_files[0]) or "en"
    files = [_cli_path(f, "--data") for f in data_files]
    trainer = {"name": method, "options": options}
    data: dict[str, Any] = {"name": f"train-{method}", "languages": [lang],
                            "evaluation": {"models": [], "evaluators": []}}
    cls = entry.cls
    if getattr(cls, "produces", "policy") == "reward_model":
        data.update(models={"sft": _cli_path(model, "--model", "model folder", folder=True)}, data={"rankings": {lang: files}},
                    reward_model={"trainer": trainer})
        label = "rm"
    elif cls.data == "sft":
        data.update(base_model=_cli_path(model, "--model", "model folder", folder=True), data={"translations": {lang: files}},
                    sft={"trainer": trainer})
        label = "sft"
    else:
        kind = "prompts" if cls.data == "prompts" else "rankings"
        align: dict[str, Any] = {"method": method, "trainer": trainer}
        if cls.data == "prompts" and reward is None:
            raise OkapiError(f"trainer {method!r} learns from a reward", hint="give --reward PATH_OR_ID (a reward model) or --reward module:function")
        if cls.data in ("prompts", "scored_pairs") and reward is not None:
            align["reward"] = _reward_source(reward)
        data.update(models={"sft": _cli_path(model, "--model", "model folder", folder=True)}, data={kind: {lang: files}},
                    alignment=[align])
        label = method
    if reward is not None and cls.data not in ("prompts", "scored_pairs"):
        raise OkapiError(f"trainer {method!r} takes no reward", where="--reward")
    execute(_apply(data, overrides), source=_source(f"okapi-kit train {method}", options_file), base_dir=base_dir,
            run_dir=output,
            db=None, fresh=fresh, quiet=quiet, leaderboard=False)
    from ..graph.processes import is_main_process

    if is_main_process():  # under accelerate launch, one answer
        click.echo(f"model: {output.expanduser().resolve() / 'models' / label}")


def _reward_source(spec: str) -> dict[str, Any]:
    """``--reward``: ``module:function`` or ``file.py:function`` is a Python reward function (reward
    source ``callable``; a module is also looked for in the working directory); anything else is a
    reward model's path or hub id (reward source ``reward_model``)."""
    module, sep, attr = spec.rpartition(":")
    dotted = r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*"
    if (sep and re.fullmatch(dotted, attr) and (module.endswith(".py") or re.fullmatch(dotted, module))
            and not Path(spec).expanduser().exists()):
        if module.endswith(".py"):  # a file on the command line is relative to the working directory
            module = _cli_path(module, "--reward", "file")
        return {"name": "callable", "options": {"function": f"{module}:{attr}"}}
    return {"name": "reward_model", "options": {"path": _cli_path(spec, "--reward", "model folder", folder=True)}}


@click.command("translate")
@click.argument("input_path", metavar="INPUT")
@click.option("--to", "targets", required=True, metavar="vi,bn", help="Target languages.")
@click.option("--translator", required=True, metavar="NAME", help="A registered translator.")
@click.option("--source-language", default="en", show_default=True)
@click.option("--output", required=True, type=click.Path(path_type=Path),
              help="Run folder; translations go to OUTPUT/records/translations/<lang>.jsonl.")
@options_option
@set_option
@fresh_option
@quiet_option
def translate_cmd(input_path, targets, translator, source_language, output, options_file, overrides, fresh,
                  quiet) -> None:
    """Translate instructions (JSON, JSONL, Okapi format or a datasets folder) into other languages.

    \b
    Example:
      okapi-kit translate alpaca_en.json --to vi,bn --translator translation_memory \\
          --options tm.yaml --output runs/tr
    """
    options, base_dir = _options(options_file)
    langs = _languages(targets, "--to")
    data = {"name": "translate", "languages": langs, "source_language": source_language,
            "instructions": {"path": _cli_path(input_path, "INPUT")},
            "translation": {"translator": {"name": translator, "options": options}, "train_on_source": False},
            "evaluation": {"models": [], "evaluators": []}}
    execute(_apply(data, overrides), source=_source("okapi-kit translate", options_file), base_dir=base_dir,
            run_dir=output, db=None,
            fresh=fresh, quiet=quiet, leaderboard=False)
    from ..graph.processes import is_main_process

    if is_main_process():  # under accelerate launch, one answer
        for lang in langs:
            click.echo(f"{lang}: {output.expanduser().resolve() / 'records' / 'translations' / f'{lang}.jsonl'}")


@click.command("rank")
@click.argument("input_path", metavar="INPUT")
@click.option("--ranker", required=True, metavar="NAME", help="A registered ranker.")
@click.option("--language", default=None, metavar="CODE",
              help="Language of the samples (default: from the file name, else en).")
@click.option("--output", required=True, type=click.Path(path_type=Path),
              help="Run folder; rankings go to OUTPUT/records/rankings/<lang>.jsonl.")
@options_option
@set_option
@fresh_option
@quiet_option
def rank_cmd(input_path, ranker, language, output, options_file, overrides, fresh, quiet) -> None:
    """Rank K responses per prompt (records with prompt or instruction, and responses).

    \b
    Example:
      okapi-kit rank samples_vi.jsonl --language vi --ranker reference_chrf --output runs/rank-vi
    """
    options, base_dir = _options(options_file)
    lang = language or _lang_from_name(input_path) or "en"
    data = {"name": "rank", "languages": [lang], "data": {"samples": {lang: _cli_path(input_path, "INPUT")}},
            "ranking": {"ranker": {"name": ranker, "options": options}},
            "evaluation": {"models": [], "evaluators": []}}
    execute(_apply(data, overrides), source=_source("okapi-kit rank", options_file), base_dir=base_dir,
            run_dir=output, db=None,
            fresh=fresh, quiet=quiet, leaderboard=False)
    from ..graph.processes import is_main_process

    if is_main_process():  # under accelerate launch, one answer
        click.echo(f"{lang}: {output.expanduser().resolve() / 'records' / 'rankings' / f'{lang}.jsonl'}")
