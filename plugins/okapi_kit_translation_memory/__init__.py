"""First-party plugin: a translator that looks translations up in parallel files."""

from __future__ import annotations

from okapi_kit import hookimpl

from .translator import TranslationMemory


@hookimpl
def okapi_register_translators(register):
    register(TranslationMemory)
