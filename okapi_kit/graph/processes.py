"""Who does what when a run has several processes (``accelerate launch``, ``torchrun``).

All the multi-process rules of ``okapi-kit run`` and the single-stage commands are here:

* **Detection.** A launch has several processes when ``WORLD_SIZE`` > 1 (torchrun, and so
  ``accelerate launch``, set it with ``RANK``). The main process is global rank 0. Reading
  the environment needs no torch; torch is imported only once there are several processes.
* **Bookkeeping is the main process's.** It alone takes the run folder's lock, writes the
  manifest and the content hashes, logs, tidies, calls the observer hooks, and stores the
  results and the leaderboard page.
* **Units.** A training unit (:func:`runs_everywhere`) runs on every process, as the
  trainers expect under ``accelerate launch``. Every other unit (translate, sample, rank,
  generate, evaluate, building the base model ...) runs on the main process only.
* **Waiting.** Before each training unit it is not skipping, the main process sends the
  others its key and fingerprint (:class:`Leader`); they wait for that word
  (:func:`follow`), so they start only once everything before the unit is finished and
  make the main process's skip/run decision. ``end`` lets them go after the last unit.
* **Outputs.** A trained model goes from its partial folder to its place by the main
  process, once every process is done with it (:func:`wait_for_everyone`, in
  ``stages.common.train_model``).
* **Failure.** A main process that fails between training units tells the others
  (``stop``), so they exit with an error too. A process that dies, wherever it is, closes
  its connections: the others' next exchange with it fails at once (gloo reports the
  closed connection) rather than waiting, and ``accelerate launch`` (torchrun) stops the
  remaining processes when one exits with an error. The messages travel over a gloo group
  of their own whose timeout (:data:`WAIT`) is long, because the others may wait hours
  for the main process's translations or evaluations.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..errors import OkapiError

# The core stages whose units train a model on every process. A plugin stage's unit says
# so itself (Unit.distributed).
TRAINING_STAGES = frozenset({"sft", "reward_model", "align"})
# How long a process may wait for the others at one exchange (the main process may spend
# hours on units that run on it alone; a dead process is noticed at once regardless).
WAIT = timedelta(days=7)
# The default process group's timeout, when okapi-kit is the first to create it: the one
# transformers' Trainer would have set (its ddp_timeout), so the trainers behave as alone.
TRAINING_TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class Launch:
    """This process's place in the launch."""

    rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def several(self) -> bool:
        return self.world_size > 1


def launch() -> Launch:
    """This process's place, from the environment torchrun (and ``accelerate launch``) set."""
    values = {}
    for name, default in (("RANK", "0"), ("WORLD_SIZE", "1")):
        raw = os.environ.get(name, "").strip() or default
        try:
            values[name] = int(raw)
        except ValueError:
            raise OkapiError(f"the environment variable {name} is {raw!r}, not a number",
                             hint="launch with accelerate launch or torchrun, which set it") from None
    world, rank = values["WORLD_SIZE"], values["RANK"]
    if world < 1 or not 0 <= rank < world:
        raise OkapiError(f"RANK={rank} does not fit WORLD_SIZE={world}",
                         hint="launch with accelerate launch or torchrun, which set both")
    return Launch(rank=rank, world_size=world)


def is_main_process() -> bool:
    return launch().main


def runs_everywhere(unit: Any) -> bool:
    """Whether ``unit`` runs on every process of a launch (it trains), not on the main one only."""
    return unit.stage in TRAINING_STAGES or bool(getattr(unit, "distributed", False))


# ------------------------------------------------------------------ the channel


class _Channel:
    """Small messages from the main process to the others, and barriers, over a gloo group
    of their own (CPU objects, whatever the training backend; a long timeout)."""

    def __init__(self) -> None:
        import torch.distributed as dist
        from accelerate import PartialState

        if not dist.is_initialized():
            # accelerate picks the training backend (nccl, gloo on CPU, DeepSpeed's); the
            # trainers' Accelerator then finds this state and this process group in place
            PartialState(cpu=_without_accelerator(), timeout=TRAINING_TIMEOUT)
        self.dist = dist
        self.group = dist.new_group(backend="gloo", timeout=WAIT)

    def send(self, message: dict[str, Any]) -> None:
        self.dist.broadcast_object_list([message], src=0, group=self.group)

    def receive(self) -> dict[str, Any]:
        box: list[Any] = [None]
        self.dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def barrier(self) -> None:
        self.dist.barrier(group=self.group)


def _without_accelerator() -> bool:
    """Whether the processes train on CPUs (accelerate must be told: it would not set up a
    multi-CPU launch otherwise)."""
    import torch

    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
        return True
    probe = getattr(torch, "accelerator", None)  # any kind of accelerator (torch >= 2.6)
    return not (probe.is_available() if probe is not None else torch.cuda.is_available())


_channel: _Channel | None = None


def _get_channel() -> _Channel:
    """The channel, made on first use (every process must make it, in the same order)."""
    global _channel
    if _channel is None:
        _channel = _Channel()
    return _channel


def wait_for_everyone() -> None:
    """Return when every process of the launch has reached this point (alone: at once)."""
    if launch().several:
        _get_channel().barrier()


# ------------------------------------------------------------------ training together

_together: list[str] = []  # the training unit every process is running now, if any


@contextmanager
def together(key: str) -> Iterator[None]:
    """Marks the run of unit ``key`` on every process (what :func:`check_together` asks)."""
    _together.append(key)
    try:
        yield
    finally:
        _together.pop()


def check_together(key: str) -> None:
    """Refuse to train in a unit that only the main process runs: the trainer would wait
    forever for the other processes."""
    here = launch()
    if here.several and not _together:
        raise OkapiError(f"unit {key} trains a model, but in a launch of {here.world_size} processes "
                         "it runs on the main process only",
                         hint="a plugin stage whose units train must create them with distributed=True "
                              "(docs/distributed.md); or run it in one process")


# ------------------------------------------------------------------ the two sides


class Leader:
    """The main process's side: tells the others which training unit comes next.

    Alone, every method does nothing. Several: making one joins the channel (every process
    must, before anything else, which :func:`follow` does on the others)."""

    def __init__(self, here: Launch | None = None):
        self.several = (here or launch()).several
        self._channel = _get_channel() if self.several else None
        self._others_waiting = True  # False while they run a training unit, or have gone

    @contextmanager
    def running(self, unit: Any, fingerprint: str) -> Iterator[None]:
        """Around a unit's run on the main process. A training unit starts on the others too;
        while it runs they are in it, not waiting for a word, so a failure here reaches them
        through the launch (their next collective call with this process fails)."""
        if self._channel is None or not runs_everywhere(unit):
            yield
            return
        self._channel.send({"do": "run", "unit": unit.key, "fingerprint": fingerprint})
        self._others_waiting = False
        with together(unit.key):
            yield
        self._others_waiting = True  # not reached on an error: they are not waiting then

    def end(self) -> None:
        """The run is over: the others return."""
        if self._channel is not None:
            self._channel.send({"do": "end"})
            self._others_waiting = False

    @contextmanager
    def stop_on_error(self) -> Iterator[None]:
        """If the main process fails while the others wait for a word, they are told to stop."""
        try:
            yield
        except BaseException as exc:
            if self._channel is not None and self._others_waiting:
                message = exc.render() if isinstance(exc, OkapiError) else f"{type(exc).__name__}: {exc}"
                self._others_waiting = False
                try:
                    self._channel.send({"do": "stop", "error": message[:2000]})
                except Exception:  # they are gone already; the main process's own error matters
                    pass
            raise


def follow(here: Launch | None = None) -> Iterator[tuple[str, str]]:
    """The other processes' side: ``(unit key, fingerprint)`` of each training unit the main
    process starts, until it says the run is over. Raises OkapiError when the main process
    stopped with an error or went away."""
    channel = _get_channel()
    rank = (here or launch()).rank
    while True:
        try:
            message = channel.receive()
        except RuntimeError as exc:  # gloo: the main process's connection closed
            raise OkapiError(f"process {rank} lost the main process of the launch ({str(exc).splitlines()[0]})",
                             hint="the main process (rank 0) stopped: its output says why") from None
        action = message.get("do")
        if action == "end":
            return
        if action == "stop":
            raise OkapiError(f"the main process stopped the run: {message.get('error', '?')}",
                             where=f"process {rank}")
        if action != "run":  # pragma: no cover - both sides are this module
            raise AssertionError(f"unknown message from the main process: {message!r}")
        yield message["unit"], message["fingerprint"]
