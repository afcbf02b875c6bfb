"""First-party plugin: local Hugging Face models (tiny test models, sampling, reward models,
seq2seq MT, and causal LMs as translator, judge and instruction generator)."""

from __future__ import annotations

from pathlib import Path

import click

from okapi_kit import hookimpl
from okapi_kit.plugins import lazy_exports


@hookimpl
def okapi_register_samplers(register):
    from .sampler import TransformersSampler

    register(TransformersSampler)


@hookimpl
def okapi_register_reward_sources(register):
    from .reward import RewardModelSource

    register(RewardModelSource)


@hookimpl
def okapi_register_translators(register):
    from .llm_components import TransformersTranslator
    from .mt import TransformersMTTranslator

    register(TransformersMTTranslator)
    register(TransformersTranslator)


@hookimpl
def okapi_register_rankers(register):
    from .llm_components import TransformersJudgeRanker
    from .rm_ranker import RewardModelRanker

    register(RewardModelRanker)
    register(TransformersJudgeRanker)


@hookimpl
def okapi_register_generators(register):
    from .llm_components import TransformersSelfInstructGenerator

    register(TransformersSelfInstructGenerator)


@hookimpl
def okapi_register_evaluators(register):
    from .rm_accuracy import RmAccuracyEvaluator
    from .rm_reward import RmRewardEvaluator

    register(RmAccuracyEvaluator)
    register(RmRewardEvaluator)


@hookimpl
def okapi_register_chat_models(register):
    from .llm_components import TransformersChatProvider

    register(TransformersChatProvider)


@hookimpl
def okapi_build_model(spec: str, out_dir: Path):
    """``tiny:<arch>`` or ``tiny:<arch>:<hidden>x<layers>`` builds a random tiny model."""
    if not spec.startswith("tiny:"):
        return None
    from .tiny import parse_tiny_spec, write_tiny_model

    write_tiny_model(out_dir, **parse_tiny_spec(spec))
    return True


@hookimpl
def okapi_check_model(spec: str):
    """``tiny:`` specs are checked (sizes, architecture) without importing torch."""
    if not spec.startswith("tiny:"):
        return None
    from .tiny import validate_tiny_spec

    validate_tiny_spec(spec)
    return True


@hookimpl
def okapi_register_commands(cli: click.Group):
    cli.add_command(tiny_model_cmd)


@click.command("tiny-model")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--arch", type=click.Choice(["llama", "bloom", "qwen2"]), default="llama", show_default=True)
@click.option("--hidden", default=64, show_default=True, help="Hidden size.")
@click.option("--layers", default=2, show_default=True, help="Number of layers.")
@click.option("--seed", default=0, show_default=True)
def tiny_model_cmd(out_dir: Path, arch: str, hidden: int, layers: int, seed: int) -> None:
    """Write a tiny random model with a byte-level tokenizer (no download).

    \b
    Example:
      okapi-kit tiny-model models/tiny --arch qwen2
    """
    from .tiny import write_tiny_model

    write_tiny_model(out_dir, arch=arch, hidden=hidden, layers=layers, seed=seed)
    click.echo(f"wrote a tiny {arch} model to {out_dir}")


# Imported on first use (okapi_kit.plugins.lazy_exports).
_EXPORTS = {
    "RewardModelRanker": "rm_ranker",
    "RewardModelSource": "reward",
    "RmAccuracyEvaluator": "rm_accuracy",
    "RmRewardEvaluator": "rm_reward",
    "TransformersChatProvider": "llm_components",
    "TransformersJudgeRanker": "llm_components",
    "TransformersMTTranslator": "mt",
    "TransformersSampler": "sampler",
    "TransformersSelfInstructGenerator": "llm_components",
    "TransformersTranslator": "llm_components",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
