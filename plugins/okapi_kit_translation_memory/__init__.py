"""First-party plugin: a translator that looks translations up in parallel files."""

from __future__ import annotations

from okapi_kit import hookimpl
from okapi_kit.plugins import lazy_exports


@hookimpl
def okapi_register_translators(register):
    from .translator import TranslationMemory

    register(TranslationMemory)


# Imported on first use (okapi_kit.plugins.lazy_exports).
_EXPORTS = {
    "TranslationMemory": "translator",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
