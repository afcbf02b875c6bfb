"""Every hook a plugin may implement.

Register hooks receive a ``register`` callable; call it once per component class::

    from okapi_kit import hookimpl, Translator

    class Upper(Translator):
        '''Upper-cases text (an example).'''
        name = "upper"
        def translate(self, texts, source, target):
            return [t.upper() for t in texts]

    @hookimpl
    def okapi_register_translators(register):
        register(Upper)

Hooks only grow: new arguments may be added, none is renamed or removed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from .components import Component
    from .records import RunInfo

PROJECT = "okapi_kit"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[[type["Component"]], None]


@hookspec
def okapi_register_translators(register: Register) -> None:
    """Register :class:`~okapi_kit.Translator` classes (LLM APIs, MT models, translation memories)."""


@hookspec
def okapi_register_generators(register: Register) -> None:
    """Register :class:`~okapi_kit.InstructionGenerator` classes (e.g. Self-Instruct)."""


@hookspec
def okapi_register_samplers(register: Register) -> None:
    """Register :class:`~okapi_kit.Sampler` classes that generate K responses per prompt."""


@hookspec
def okapi_register_rankers(register: Register) -> None:
    """Register :class:`~okapi_kit.Ranker` classes (LLM judges, reward-model rankers, reference rankers)."""


@hookspec
def okapi_register_reward_sources(register: Register) -> None:
    """Register :class:`~okapi_kit.RewardSource` classes (reward models, rules, cross-lingual transfer)."""


@hookspec
def okapi_register_trainers(register: Register) -> None:
    """Register :class:`~okapi_kit.Trainer` classes (SFT, reward model, DPO, PPO, RLOO, ...)."""


@hookspec
def okapi_register_evaluators(register: Register) -> None:
    """Register :class:`~okapi_kit.Evaluator` classes (lm-eval tasks, language fidelity, win-rates)."""


@hookspec
def okapi_register_transfer_methods(register: Register) -> None:
    """Register :class:`~okapi_kit.TransferMethod` classes: how an RM of one language scores another."""


@hookspec
def okapi_register_stages(register: Register) -> None:
    """Register :class:`~okapi_kit.Stage` classes: extra pipeline stages a config adds under ``stages:``."""


@hookspec
def okapi_register_chat_models(register: Register) -> None:
    """Register :class:`~okapi_kit.ChatProvider` classes: chat models (an API provider, a local
    model) that a component's options name, e.g. an evaluator's ``judge: {name: openai, options: ...}``."""


@hookspec(firstresult=True)
def okapi_build_model(spec: str, out_dir: Path) -> bool | None:
    """Build the model named by ``spec`` into ``out_dir`` if this plugin knows the scheme.

    For model names that are neither a local path nor a hub id, e.g. ``tiny:llama``.
    Return True when built, None to let another plugin try.
    """


@hookspec(firstresult=True)
def okapi_check_model(spec: str) -> bool | None:
    """Check a ``scheme:`` model name this plugin builds, before any work is done.

    Return True when the spec is valid, raise :class:`~okapi_kit.OkapiError` when this
    plugin owns the scheme but the spec is wrong, and None when the scheme is not yours.
    """


@hookspec
def okapi_register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``okapi-kit`` command group. Import heavy modules inside the command."""


@hookspec
def okapi_stage_started(stage: str, run: RunInfo) -> None:
    """Called when a pipeline stage starts (``stage`` is e.g. ``"sft"`` or ``"sample/vi"``)."""


@hookspec
def okapi_stage_finished(stage: str, run: RunInfo, outcome: dict[str, Any]) -> None:
    """Called when a stage ends. ``outcome`` has ``status`` (done, skipped, failed) and ``seconds``."""


# Which register hook feeds which component kind.
REGISTER_HOOKS: dict[str, str] = {
    "translator": "okapi_register_translators",
    "generator": "okapi_register_generators",
    "sampler": "okapi_register_samplers",
    "ranker": "okapi_register_rankers",
    "reward_source": "okapi_register_reward_sources",
    "trainer": "okapi_register_trainers",
    "evaluator": "okapi_register_evaluators",
    "transfer": "okapi_register_transfer_methods",
    "stage": "okapi_register_stages",
    "chat": "okapi_register_chat_models",
}
