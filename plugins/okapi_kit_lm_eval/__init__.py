"""First-party plugin: multiple-choice benchmarks (ARC, HellaSwag, MMLU) through lm-eval.

Registers the ``lm_eval`` evaluator. Importing this package stays light: torch,
transformers, datasets and lm-eval are imported only when an evaluation runs.
"""

from __future__ import annotations

from okapi_kit import hookimpl

from .evaluator import LmEvalEvaluator

__all__ = ["LmEvalEvaluator"]


@hookimpl
def okapi_register_evaluators(register):
    register(LmEvalEvaluator)
