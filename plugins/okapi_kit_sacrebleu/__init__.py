"""First-party plugin: rankers built on sacrebleu."""

from __future__ import annotations

from okapi_kit import hookimpl
from okapi_kit.plugins import lazy_exports


@hookimpl
def okapi_register_rankers(register):
    from .ranker import ReferenceChrF

    register(ReferenceChrF)


# Imported on first use (okapi_kit.plugins.lazy_exports).
_EXPORTS = {
    "ReferenceChrF": "ranker",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
