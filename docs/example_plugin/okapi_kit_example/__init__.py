"""okapi-kit-example: toy components that show how a plugin is put together.

``reverse_words`` does not translate, it reverses word order, and ``length_ratio`` ranks
by length alone: neither is useful for real work. ``drop_empty_best`` is a pipeline stage
that removes rankings whose best response is empty.
"""

from __future__ import annotations

from okapi_kit import hookimpl

from .ranker import LengthRatio
from .stage import DropEmptyBest
from .translator import ReverseWords

__all__ = ["DropEmptyBest", "LengthRatio", "ReverseWords"]


@hookimpl
def okapi_register_translators(register):
    register(ReverseWords)


@hookimpl
def okapi_register_rankers(register):
    register(LengthRatio)


@hookimpl
def okapi_register_stages(register):
    register(DropEmptyBest)
