"""First-party plugin: rankers built on sacrebleu."""

from __future__ import annotations

from okapi_kit import hookimpl

from .ranker import ReferenceChrF


@hookimpl
def okapi_register_rankers(register):
    register(ReferenceChrF)
