"""An LLM judge that ranks the K responses to a prompt, Okapi's way or directly.

``two_turn`` (Okapi's method): the judge first translates the instruction and the responses
into English, then, in the same conversation, scores them. ``direct``: it scores them in their
own language. The responses are shown in an order shuffled per item (from the ``seed`` option
and the item id, so a rerun sends the very same requests and hits the cache), labelled A, B,
C ...; the verdict must be a JSON object of scores by label, parsed strictly. A malformed
verdict gets one repair request; after that the item fails with the reason.
"""

from __future__ import annotations

import json
import math
import random
import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from ..components import ComponentConfig, Failed, Ranker, RankResult
from ..records import SampleSet
from .common import LLMComponent, Messages, language_name, reply_text

SYSTEM_PROMPT = """\
You are a fair and careful judge of answers written by AI assistants. You are shown one \
instruction and several responses to it, and you score every response on its own merits. \
Neither the order in which the responses are shown nor their length says anything about \
their quality."""

CRITERIA = ("Score each response for how well it does what the instruction asks: whether it is "
            "correct, complete and helpful, and how clearly it is written.")

TRANSLATE_TURN = """\
Below is an instruction written in {language}, followed by {k} responses to it, labelled {labels}.

{block}

First, translate the instruction and every response into English, as faithfully as you can \
(mistakes included), and keep the labels. Do not judge or comment on them yet."""

SCORE_AFTER_TRANSLATION = """\
Now judge the responses, working from your English translations. {criteria} The responses were \
meant to be written in {language}: one that is not is worse for it.

{format}"""

SCORE_DIRECT = """\
Below is an instruction written in {language}, followed by {k} responses to it, labelled {labels}.

{block}

{criteria} The responses are meant to be written in {language}: one that is not is worse for it.

{format}"""

FORMAT = ("Reply with one JSON object and nothing else: its keys are exactly the labels {keys}, and "
          "each value is a whole number from 1 (worst) to {top} (best), in the form {example}.")

REPAIR = "Your reply could not be read: {error}. {format}"

MAX_RESPONSES = len(string.ascii_uppercase)


class JudgeOptions(ComponentConfig):
    """Task options of an LLM judge (the provider adds model, endpoint, limits)."""

    mode: Literal["two_turn", "direct"] = Field(
        "two_turn", description="two_turn: translate into English, then rank (Okapi); direct: rank in "
                                "the responses' own language")
    seed: int = Field(0, ge=0, description="seeds the order the responses are shown in (per item)")
    max_score: int = Field(10, ge=2, le=100, description="scores run from 1 to this")
    criteria: str = Field(CRITERIA, description="what the judge is told to score")


class VerdictError(ValueError):
    """A verdict that does not follow the format; the message says what is wrong."""


@dataclass
class _Item:
    pos: int
    item: SampleSet
    shown: list[int]  # shown[i]: the original index of the response labelled labels[i]
    labels: list[str]
    mode: str
    messages: Messages = field(default_factory=list)
    repaired: bool = False


class LLMJudgeRanker(LLMComponent, Ranker):
    """Ranks responses with an LLM judge: two turns (translate, then score) or directly."""

    Config = JudgeOptions

    def __init__(self, config: JudgeOptions | None = None):
        super().__init__(config)
        self.counts: Counter[str] = Counter()

    def permutation(self, item: SampleSet) -> list[int]:
        """The order the responses are shown in: fixed by the seed option and the item's id."""
        shown = list(range(len(item.responses)))
        random.Random(f"okapi-kit-judge:{self.config.seed}:{item.id}").shuffle(shown)
        return shown

    def rank(self, items: Sequence[SampleSet]) -> list[list[int] | RankResult | Failed]:
        results: list[list[int] | RankResult | Failed | None] = [None] * len(items)
        todo: list[_Item] = []
        for pos, item in enumerate(items):
            k = len(item.responses)
            if k < 2:
                results[pos] = list(range(k))  # nothing to compare
            elif k > MAX_RESPONSES:
                results[pos] = Failed(f"the judge labels at most {MAX_RESPONSES} responses; this item has {k}")
            else:
                todo.append(self._start(pos, item))
        self._translation_turn([t for t in todo if t.mode == "two_turn"], results)
        repair = self._verdict_turn([t for t in todo if results[t.pos] is None], results)
        self._repair_turn(repair, results)
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]

    def _translation_turn(self, todo: list[_Item], results: list[Any]) -> None:
        """Two-turn items: the judge translates first; its reply stays in the conversation."""
        for t, reply in zip(todo, self.ask([t.messages for t in todo])):
            if isinstance(reply, Failed):
                results[t.pos] = reply
            else:
                t.messages += [{"role": "assistant", "content": reply_text(reply)},
                               {"role": "user", "content": self._score_turn(t)}]

    def _verdict_turn(self, todo: list[_Item], results: list[Any]) -> list[_Item]:
        """Ask for the verdicts; returns the items whose verdict needs a repair request."""
        repair = []
        for t, reply in zip(todo, self.ask([t.messages for t in todo])):
            if isinstance(reply, Failed):
                results[t.pos] = reply
                continue
            try:
                results[t.pos] = self._result(t, reply_text(reply))
            except VerdictError as exc:
                t.messages += [{"role": "assistant", "content": reply_text(reply)},
                               {"role": "user", "content": REPAIR.format(error=exc, format=self._format(t))}]
                repair.append(t)
        return repair

    def _repair_turn(self, todo: list[_Item], results: list[Any]) -> None:
        """One more chance for a malformed verdict; then the item fails with the reason."""
        self.counts["repair_requests"] += len(todo)
        for t, reply in zip(todo, self.ask([t.messages for t in todo])):
            if isinstance(reply, Failed):
                results[t.pos] = reply
                continue
            t.repaired = True
            try:
                results[t.pos] = self._result(t, reply_text(reply))
                self.counts["repaired"] += 1
            except VerdictError as exc:
                self.counts["unparsable"] += 1
                results[t.pos] = Failed(f"judge output unparsable: {exc} (also after a repair request)")
                self.forget([t.messages[:-2], t.messages])  # the verdict and its repair: asked again next run

    def _start(self, pos: int, item: SampleSet) -> _Item:
        shown = self.permutation(item)
        labels = list(string.ascii_uppercase[: len(shown)])
        # English needs no translation turn
        mode = "direct" if self.config.mode == "direct" or item.lang == "en" else "two_turn"
        t = _Item(pos, item, shown, labels, mode)
        block = self._block(t)
        lang = language_name(item.lang)
        if mode == "two_turn":
            user = TRANSLATE_TURN.format(language=lang, k=len(labels), labels=_label_range(labels), block=block)
        else:
            user = SCORE_DIRECT.format(language=lang, k=len(labels), labels=_label_range(labels), block=block,
                                       criteria=self.config.criteria, format=self._format(t))
        t.messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]
        return t

    def _block(self, t: _Item) -> str:
        parts = [f"[Instruction]\n{instruction_of(t.item.prompt)}"]
        parts += [f"[Response {label}]\n{t.item.responses[i].strip()}" for label, i in zip(t.labels, t.shown)]
        return "\n\n".join(parts)

    def _score_turn(self, t: _Item) -> str:
        return SCORE_AFTER_TRANSLATION.format(criteria=self.config.criteria, language=language_name(t.item.lang),
                                              format=self._format(t))

    def _format(self, t: _Item) -> str:
        keys = ", ".join(f'"{label}"' for label in t.labels)
        example = "{" + ", ".join(f'"{label}": <score>' for label in t.labels) + "}"
        return FORMAT.format(keys=keys, top=self.config.max_score, example=example)

    def _result(self, t: _Item, text: str) -> RankResult:
        by_label = parse_verdict(text, t.labels, self.config.max_score)
        k = len(t.shown)
        scores = [0.0] * k
        position = [0] * k  # where each original response was shown
        for p, (label, i) in enumerate(zip(t.labels, t.shown)):
            scores[i] = by_label[label]
            position[i] = p
        # equal scores: the response shown first wins (the shown order is random, so no
        # original position is favoured)
        order = sorted(range(k), key=lambda i: (-scores[i], position[i]))
        ties = [sorted(i for i in range(k) if scores[i] == s) for s in sorted(set(scores), reverse=True)]
        ties = [group for group in ties if len(group) > 1]
        if ties:
            self.counts["tied"] += 1
        details = {"mode": t.mode, "model": self.model_name(), "shown": list(t.shown), "verdict": text.strip(),
                   "repaired": t.repaired, "ties": ties, "tie_break": "shown order"}
        return RankResult(order=order, scores=scores, details=details)

    def extra_usage(self) -> dict[str, Any]:
        return {k: self.counts[k] for k in ("repair_requests", "repaired", "unparsable", "tied")}


def _label_range(labels: list[str]) -> str:
    return f"{labels[0]} to {labels[-1]}" if len(labels) > 2 else " and ".join(labels)


_FENCE = re.compile(r"^```[A-Za-z]*\s*\n(.*)\n\s*```$", re.S)
_ALPACA = re.compile(r"### Instruction:\s*(.*?)\s*(?:### Input:\s*(.*?)\s*)?### Response:\s*$", re.S)


def instruction_of(prompt: str) -> str:
    """The instruction (and input) inside an Alpaca-formatted prompt; any other prompt as is."""
    m = _ALPACA.search(prompt)
    if not m:
        return prompt.strip()
    instruction, given = m.group(1), m.group(2)
    return f"{instruction}\n\n[Input]\n{given}" if given else instruction


def json_object(text: str) -> dict[str, Any]:
    """The one JSON object a judge's reply holds (a fenced block is accepted); raises
    VerdictError saying what is wrong."""
    body = text.strip()
    m = _FENCE.match(body)
    if m:
        body = m.group(1).strip()
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        raise VerdictError("it is not a JSON object alone (no text may come before or after it)") from None
    if not isinstance(data, dict):
        raise VerdictError(f"it is JSON, but a {type(data).__name__}, not an object")
    return data


def parse_verdict(text: str, labels: list[str], max_score: int) -> dict[str, float]:
    """Scores by label from a verdict that is one JSON object (a fenced block is accepted);
    raises VerdictError saying what is wrong."""
    data = json_object(text)
    missing = [label for label in labels if label not in data]
    extra = [key for key in data if key not in labels]
    if missing or extra:
        problems = ([f"missing label(s) {', '.join(missing)}"] if missing else []) + \
                   ([f"unexpected key(s) {', '.join(map(repr, extra))}"] if extra else [])
        raise VerdictError("; ".join(problems))
    scores: dict[str, float] = {}
    for label in labels:
        value = data[label]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise VerdictError(f"the score of {label} is {json.dumps(value)}, not a number")
        if not 1 <= value <= max_score:
            raise VerdictError(f"the score of {label} is {value}, outside 1 to {max_score}")
        scores[label] = float(value)
    return scores
