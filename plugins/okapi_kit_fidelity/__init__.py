"""First-party plugin: language fidelity (does the model answer in the prompt's language?)."""

from __future__ import annotations

from okapi_kit import hookimpl

from .evaluator import LanguageFidelity


@hookimpl
def okapi_register_evaluators(register):
    register(LanguageFidelity)
