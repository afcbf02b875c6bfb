"""First-party plugin: multiple-choice benchmarks (ARC, HellaSwag, MMLU) through lm-eval.

Registers the ``lm_eval`` evaluator. Importing this package stays light: torch,
transformers, datasets and lm-eval are imported only when an evaluation runs.
"""

from __future__ import annotations

from okapi_kit import hookimpl
from okapi_kit.plugins import lazy_exports

__all__ = ["LmEvalEvaluator"]


@hookimpl
def okapi_register_evaluators(register):
    from .evaluator import LmEvalEvaluator

    register(LmEvalEvaluator)


# Imported on first use (okapi_kit.plugins.lazy_exports).
_EXPORTS = {
    "LmEvalEvaluator": "evaluator",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
