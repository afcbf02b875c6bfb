"""okapi-kit: align and evaluate large language models in many languages.

The public API for plugin authors: the ``hookimpl`` marker, the component base classes
and the one user-facing error type. See docs/writing-a-plugin.md.
"""

from __future__ import annotations

from .components import (
    NOT_IN_FINGERPRINT,
    ChatProvider,
    Component,
    ComponentConfig,
    EvalTarget,
    Evaluator,
    Failed,
    InputPath,
    InstructionGenerator,
    PlainName,
    Ranker,
    RankResult,
    RewardSource,
    Sampler,
    Score,
    Stage,
    Trainer,
    TrainJob,
    TrainResult,
    TransferMethod,
    Translator,
)
from .errors import OkapiError
from .hookspecs import hookimpl
from .records import Instruction, PreferencePair, Ranking, SampleSet

__version__ = "0.1.0"

__all__ = [
    "NOT_IN_FINGERPRINT", "ChatProvider", "Component", "ComponentConfig", "EvalTarget", "Evaluator", "Failed", "InputPath", "PlainName", "Instruction",
    "InstructionGenerator", "OkapiError", "PreferencePair", "RankResult", "Ranker", "Ranking",
    "RewardSource", "SampleSet", "Sampler", "Score", "Stage", "Trainer", "TrainJob", "TrainResult", "TransferMethod",
    "Translator", "__version__", "hookimpl",
]
