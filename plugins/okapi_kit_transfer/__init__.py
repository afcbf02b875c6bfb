"""First-party plugin: how a reward model trained in one language scores another.

- ``direct``: the response is scored as it is written;
- ``translate_then_score``: prompt and response are translated into the RM's language by any
  registered translator first;

the ``mean_reward`` evaluator (the mean reward of a model's responses under a reward source),
and the ``rm_transfer`` pipeline stage (the ``okapi-kit rm-transfer`` study inside ``okapi-kit run``).

Light to import (pydantic only). See docs/rm-transfer.md.
"""

from __future__ import annotations

from okapi_kit import hookimpl
from okapi_kit.plugins import lazy_exports

__all__ = ["DirectTransfer", "MeanRewardConfig", "MeanRewardEvaluator", "RMTransferStage", "RMTransferStageConfig",
           "TranslateThenScore", "TranslateThenScoreConfig"]


@hookimpl
def okapi_register_transfer_methods(register) -> None:
    from .methods import DirectTransfer, TranslateThenScore

    register(DirectTransfer)
    register(TranslateThenScore)


@hookimpl
def okapi_register_evaluators(register) -> None:
    from .evaluator import MeanRewardEvaluator

    register(MeanRewardEvaluator)


@hookimpl
def okapi_register_stages(register) -> None:
    from .stage import RMTransferStage

    register(RMTransferStage)


@hookimpl
def okapi_register_commands(cli) -> None:
    """``okapi-kit rm-transfer CONFIG``: the transfer matrix and the representation analysis."""
    from .command import rm_transfer_cmd

    cli.add_command(rm_transfer_cmd)


# Imported on first use (okapi_kit.plugins.lazy_exports).
_EXPORTS = {
    "DirectTransfer": "methods",
    "MeanRewardConfig": "evaluator",
    "MeanRewardEvaluator": "evaluator",
    "RMTransferStage": "stage",
    "RMTransferStageConfig": "stage",
    "TranslateThenScore": "methods",
    "TranslateThenScoreConfig": "methods",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
