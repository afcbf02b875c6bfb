"""Self-Instruct as Alpaca used it: new tasks from a few seed tasks, filtered.

Each request shows a few seed tasks (drawn by a generator seeded with the ``seed`` option and
the request's number) and asks for a numbered list of new tasks, each with an instruction,
an optional input and an output. The replies are parsed leniently (numbering and labels
vary between models) and filtered in request order: length bounds, banned keywords, exact
and near duplicates, and ROUGE-L similarity to every seed and every task kept so far. The
loop stops when ``n`` are kept; the same replies (from the request cache on a rerun) give
the same tasks with the same ids.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from ..components import NOT_IN_FINGERPRINT, ComponentConfig, Failed, InstructionGenerator
from ..errors import OkapiError
from ..records import Instruction
from .common import LLMComponent, Messages, language_name, reply_text, shorten
from .rouge import RougeIndex, tokenize

# Alpaca's list: tasks a text-only model cannot do
BANNED_KEYWORDS = ["image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps",
                   "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram"]

PROMPT = """\
We are collecting a varied set of tasks to teach an AI assistant to follow instructions. \
Write {count} new tasks that meet these requirements:
1. Vary the wording: do not start the instructions with the same verb again and again.
2. Vary the kind of task: open questions, classification, rewriting, summarising, \
brainstorming, reasoning, maths, coding, advice and more.
3. Write each instruction in {language}, in one or two sentences, as a command or a question.
4. Some tasks need an input to work on (a passage, a list, a piece of code). Give a real, \
specific input for those, and write <none> as the input of the others.
5. The assistant can only read and write text: no task may ask it to see, make or play \
images, sound, video or files, or to act in the world.
6. Give each task a good output, as a helpful assistant would answer it (about 150 words at most).{notes}

Here are examples of the format:

{examples}

Continue the list with Task {first} to Task {last}: {count} new tasks, each different from \
the examples and from one another, in exactly the same format. (This is batch {batch} of \
a series; make it unlike the other batches.)"""

NO_INPUT = {"", "<none>", "none", "<noinput>", "<no input>", "no input", "(none)", "n/a", "na", "-", "null",
            "nil", "nothing", "empty", "<empty>"}


class SelfInstructOptions(ComponentConfig):
    """Task options of a Self-Instruct generator (the provider adds model, endpoint, limits)."""

    seed: int = Field(0, ge=0, description="seeds the choice of example tasks in each request")
    seeds_per_request: int = Field(3, ge=1, le=20, description="seed tasks shown in each request (Alpaca: 3)")
    tasks_per_request: int = Field(10, ge=1, le=50, description="new tasks asked for in each request")
    similarity_threshold: float = Field(
        0.7, gt=0, le=1, description="a task is kept only if its ROUGE-L F to every seed and every kept task "
                                     "is below this")
    min_words: int = Field(3, ge=1, description="fewest words in an instruction")
    max_words: int = Field(150, ge=1, description="most words in an instruction")
    banned_keywords: list[str] = Field(
        default_factory=lambda: list(BANNED_KEYWORDS),
        description="an instruction with one of these words or phrases is dropped (whole words, any case)")
    require_output: bool = Field(True, description="drop tasks whose output is missing")
    notes: str = Field("", description="added to the requirements in each request")
    id_prefix: str = Field("self-instruct", description="ids are <prefix>-00001, <prefix>-00002 ...")
    max_requests: int | None = Field(
        None, ge=1, json_schema_extra=NOT_IN_FINGERPRINT,
        description="stop (with an error) after this many requests; default 3 x count / tasks_per_request")
    requests_per_round: int = Field(8, ge=1, json_schema_extra=NOT_IN_FINGERPRINT,
                                    description="requests sent together (the provider runs them concurrently)")


@dataclass
class Task:
    instruction: str
    input: str = ""
    output: str = ""


class SelfInstructGenerator(LLMComponent, InstructionGenerator):
    """Generates instructions from seed tasks (Self-Instruct, Alpaca's filters)."""

    Config = SelfInstructOptions

    def __init__(self, config: SelfInstructOptions | None = None):
        super().__init__(config)
        self.requests = 0
        self.generated = 0
        self.kept = 0
        self.unused = 0
        self.dropped: Counter[str] = Counter()
        self.drop_examples: dict[str, str] = {}

    def messages(self, seeds: Sequence[Any], batch: int, language: str) -> Messages:
        c = self.config
        rng = random.Random(f"okapi-kit-self-instruct:{c.seed}:{batch}")
        shown = rng.sample(list(seeds), min(c.seeds_per_request, len(seeds)))
        examples = "\n\n".join(_format_task(i + 1, s) for i, s in enumerate(shown))
        notes = f"\n{c.notes}" if c.notes else ""
        text = PROMPT.format(count=c.tasks_per_request, language=language_name(language), notes=notes,
                             examples=examples, first=len(shown) + 1, last=len(shown) + c.tasks_per_request,
                             batch=batch + 1)
        return [{"role": "user", "content": text}]

    def generate(self, seeds: Sequence[Any], n: int, language: str) -> list[Instruction]:
        c = self.config
        if n <= 0:
            return []
        if not seeds:
            raise OkapiError("Self-Instruct needs seed tasks to show the model", where="instructions",
                             hint="give instructions.path: a file of seed tasks (Alpaca used 175)")
        budget = c.max_requests or max(2, 3 * math.ceil(n / c.tasks_per_request))
        state = _Filter(c, seeds)
        kept: list[Instruction] = []
        taken_ids = {str(getattr(s, "id", "")) for s in seeds}
        batch = 0
        while len(kept) < n:
            if batch >= budget:
                raise OkapiError(
                    f"Self-Instruct kept {len(kept)} of the {n} instructions asked for after {batch} requests "
                    f"(dropped: {dict(self.dropped) or 'none'})", where="instructions.generator",
                    hint="raise the generator's max_requests or loosen its filters (similarity_threshold, "
                         "min_words, max_words, banned_keywords); answered requests are cached, so a rerun "
                         "pays only for new ones")
            round_ = range(batch, min(batch + c.requests_per_round, budget))
            replies = self.ask([self.messages(seeds, b, language) for b in round_])
            self.requests += len(round_)
            for b, reply in zip(round_, replies):
                if isinstance(reply, Failed):
                    if len(kept) >= n:
                        break
                    # not skipped: what is kept must depend only on the replies, in order
                    raise OkapiError(f"Self-Instruct request {b + 1} failed: {reply.reason}",
                                     where="instructions.generator",
                                     hint="rerun: answered requests come from the cache")
                self._take(parse_tasks(reply_text(reply)), state, kept, n, language, taken_ids)
            batch = round_.stop
        return kept

    def _take(self, tasks: list[Task], state: _Filter, kept: list[Instruction], n: int, language: str,
              taken_ids: set[str]) -> None:
        """Filter one reply's tasks in order, keeping those that pass until ``n`` are kept."""
        self.generated += len(tasks)
        for task in tasks:
            if len(kept) >= n:
                self.unused += 1
                continue
            reason = state.check(task)
            if reason:
                self.dropped[reason] += 1
                self.drop_examples.setdefault(reason, shorten(task.instruction, 200))
                continue
            state.keep(task)
            kept.append(self._record(task, len(kept) + 1, language, taken_ids))
            self.kept += 1

    def _record(self, task: Task, number: int, language: str, taken: set[str]) -> Instruction:
        rid = f"{self.config.id_prefix}-{number:05d}"
        while rid in taken:  # a seed already has this id
            rid += "-new"
        taken.add(rid)
        return Instruction(id=rid, instruction=task.instruction, input=task.input, output=task.output, lang=language)

    def extra_usage(self) -> dict[str, Any]:
        return {"generation_requests": self.requests, "generated": self.generated, "kept": self.kept,
                "dropped": dict(self.dropped), "unused": self.unused, "drop_examples": dict(self.drop_examples)}


class _Filter:
    """Alpaca's filters, against the seeds and everything kept so far."""

    def __init__(self, c: SelfInstructOptions, seeds: Sequence[Any]):
        self.c = c
        self.index = RougeIndex()
        self.exact: set[str] = set()
        self.normal: set[tuple[str, ...]] = set()
        self.banned = [re.compile(r"(?<!\w)" + r"\s+".join(map(re.escape, k.lower().split())) + r"(?!\w)")
                       for k in c.banned_keywords if k.strip()]
        for s in seeds:
            self.keep(Task(str(getattr(s, "instruction", "") or "")))

    def check(self, task: Task) -> str | None:
        """Why ``task`` is dropped, or None to keep it."""
        text = task.instruction
        tokens = tokenize(text)
        if not tokens:
            return "no_instruction"
        if self.c.require_output and not task.output.strip():
            return "no_output"
        if len(tokens) < self.c.min_words:
            return "too_short"
        if len(tokens) > self.c.max_words:
            return "too_long"
        lowered = text.lower()
        if any(p.search(lowered) for p in self.banned):
            return "banned_keyword"
        if text.strip() in self.exact:
            return "duplicate"
        if tuple(tokens) in self.normal:
            return "near_duplicate"
        if self.index.most_similar(text)[0] >= self.c.similarity_threshold:
            return "similar"
        return None

    def keep(self, task: Task) -> None:
        self.exact.add(task.instruction.strip())
        self.normal.add(tuple(tokenize(task.instruction)))
        self.index.add(task.instruction)


def _format_task(number: int, s: Any) -> str:
    given = str(getattr(s, "input", "") or "").strip() or "<none>"
    output = str(getattr(s, "output", "") or "").strip()
    return f"Task {number}\nInstruction: {str(getattr(s, 'instruction', '')).strip()}\nInput: {given}\nOutput: {output}"


# ---------------------------------------------------------------- parsing

_TASK_HEADER = re.compile(r"^[#*_>\s]*(?:task|example)\s*#?\s*(\d+)\b\s*[*_]*\s*[:.)\-]?\s*[*_]*\s*(.*)$", re.I)
_FIELD = re.compile(r"^[#*_>\s]*(?:\d+\s*[.)]\s*)?[*_]*\s*(instruction|input|output)\s*[*_]*\s*:\s*[*_]*\s*(.*)$",
                    re.I)
_NUMBERED = re.compile(r"^\s*(\d+)\s*[.)]\s+(.*\S)\s*$")
_SEPARATOR = re.compile(r"^\s*(?:#{3,}|-{3,}|\*{3,}|={3,})\s*$")
_FENCE_LINE = re.compile(r"^\s*```\w*\s*$")


def parse_tasks(text: str) -> list[Task]:
    """Tasks from a reply in any of the usual shapes: ``Task 4`` headers with ``Instruction:``,
    ``Input:`` and ``Output:`` lines; Alpaca's ``4. Instruction:`` lines; unnumbered labelled
    blocks; or a plain numbered list of instructions. A task without an instruction is skipped;
    missing inputs and outputs are empty."""
    lines = [line for line in text.splitlines() if not _FENCE_LINE.match(line)]
    labelled = any(_FIELD.match(line) for line in lines)
    blocks: list[dict[str, list[str]]] = []
    current: dict[str, list[str]] | None = None
    field: str | None = None

    def start() -> dict[str, list[str]]:
        blocks.append({})
        return blocks[-1]

    for line in lines:
        if not labelled and not line.strip() and current and current.get("instruction"):
            current, field = None, None  # unlabelled tasks end at a blank line: what follows is chatter
            continue
        if _SEPARATOR.match(line):
            current, field = None, None
            continue
        header = _TASK_HEADER.match(line)
        if header:
            current, field = start(), None
            line = header.group(2)
            if not line.strip():
                continue
        m = _FIELD.match(line)
        if m:
            name = m.group(1).lower()
            if current is None or (name == "instruction" and current.get("instruction")) or \
                    (name != "instruction" and name in current):
                current = start()  # a second instruction (or input ...) begins the next task
            field = name
            current[field] = [m.group(2)] if m.group(2).strip() else []
            continue
        numbered = _NUMBERED.match(line)
        if numbered and not labelled:
            current, field = start(), "instruction"
            current[field] = [numbered.group(2)]
            continue
        if current is None:
            continue  # text before the first task or after a separator: a preamble, not a task
        if field is None:
            field = "instruction"
            current.setdefault(field, [])
        current.setdefault(field, []).append(line)
    tasks = []
    for block in blocks:
        instruction = _text(block.get("instruction", []))
        if not instruction:
            continue
        given = _text(block.get("input", []))
        tasks.append(Task(instruction, "" if _no_input(given) else given, _text(block.get("output", []))))
    return tasks


def _text(lines: list[str]) -> str:
    return "\n".join(lines).strip().strip("*_").strip()


def _no_input(value: str) -> bool:
    return value.strip().strip("\"'`.").lower() in NO_INPUT
