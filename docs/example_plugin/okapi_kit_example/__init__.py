"""okapi-kit-example: two toy components that show how a plugin is put together.

Neither component is useful for real work: ``reverse_words`` does not translate, it
reverses word order, and ``length_ratio`` ranks by length alone.
"""

from __future__ import annotations

from okapi_kit import hookimpl

from .ranker import LengthRatio
from .translator import ReverseWords

__all__ = ["LengthRatio", "ReverseWords"]


@hookimpl
def okapi_register_translators(register):
    register(ReverseWords)


@hookimpl
def okapi_register_rankers(register):
    register(LengthRatio)
