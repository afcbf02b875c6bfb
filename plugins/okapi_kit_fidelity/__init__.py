"""First-party plugin: language fidelity (does the model answer in the prompt's language?)."""

from __future__ import annotations

from okapi_kit import hookimpl
from okapi_kit.plugins import lazy_exports


@hookimpl
def okapi_register_evaluators(register):
    from .evaluator import LanguageFidelity

    register(LanguageFidelity)


# Imported on first use (okapi_kit.plugins.lazy_exports).
_EXPORTS = {
    "LanguageFidelity": "evaluator",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
