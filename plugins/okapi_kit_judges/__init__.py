"""First-party plugin: evaluators that ask a judge.

- ``win_rate``: each model's responses against a baseline model's, judged pairwise in both
  orders by an LLM judge (any ``chat`` provider: openai, anthropic, transformers);
- ``safety``: the harmful-response rate on red-teaming prompts (the Aya red-teaming schema),
  judged by an LLM judge or a local classifier, overall and for global and local harm.

See docs/plugins/judges.md.
"""

from __future__ import annotations

from okapi_kit import hookimpl
from okapi_kit.plugins import lazy_exports

__all__ = ["SafetyEvaluator", "WinRateEvaluator"]


@hookimpl
def okapi_register_evaluators(register):
    from .safety import SafetyEvaluator
    from .win_rate import WinRateEvaluator

    register(WinRateEvaluator)
    register(SafetyEvaluator)


# Imported on first use (okapi_kit.plugins.lazy_exports).
_EXPORTS = {
    "SafetyEvaluator": "safety",
    "WinRateEvaluator": "win_rate",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
