"""Small helpers shared by the benchmarks: measure a callable, print one comparison line."""

from __future__ import annotations

import gc
import os
import re
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Measurement:
    wall_s: float
    peak_rss_mb: float  # peak resident memory of this process during the call (sampled)
    peak_cuda_mb: float | None  # torch.cuda.max_memory_allocated during the call; None without CUDA
    value: Any = None


def _rss_mb() -> float:
    """Current resident set size in MiB (Linux /proc; falls back to the lifetime peak)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def measure(fn: Callable[[], Any], *, sample_every_s: float = 0.05) -> Measurement:
    """Run ``fn`` once: wall time, peak RSS (a sampling thread) and peak CUDA memory."""
    cuda = None
    try:
        import torch

        if torch.cuda.is_available():
            cuda = torch.cuda
            cuda.synchronize()
            cuda.empty_cache()
            cuda.reset_peak_memory_stats()
    except ImportError:
        pass
    gc.collect()
    peak = [_rss_mb()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(sample_every_s):
            peak[0] = max(peak[0], _rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    try:
        value = fn()
        if cuda is not None:
            cuda.synchronize()
    finally:
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
    peak[0] = max(peak[0], _rss_mb())
    cuda_mb = cuda.max_memory_allocated() / 2**20 if cuda is not None else None
    return Measurement(wall, peak[0], cuda_mb, value)


@dataclass
class ProcessRun:
    wall_s: float  # from start to exit, interpreter start-up included
    peak_rss_mb: float  # the child's own peak resident memory (wait4), not the largest child so far


def run_process(cmd: list[str], *, env: dict[str, str] | None = None, cwd: str | None = None) -> ProcessRun:
    """Run ``cmd`` to completion with its output discarded; raise if it fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait again
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}")
    rss = usage.ru_maxrss / 2**20 if sys.platform == "darwin" else usage.ru_maxrss / 1024
    return ProcessRun(wall, rss)


_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| *(\S+)$")


def import_breakdown(cmd: list[str], *, env: dict[str, str] | None = None, cwd: str | None = None,
                     top: int = 5) -> tuple[float, list[tuple[str, float]]]:
    """Total import time (s) and the ``top`` root packages' shares, from one ``-X importtime`` run.

    Each module's *self* time is added to its root package (``pydantic.main`` to
    ``pydantic``), so the figures partition the total import time: a package's share does
    not include the packages it imports. ``cmd[0]`` must be the Python interpreter.
    """
    out = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, env=env, cwd=cwd, check=True)
    totals: dict[str, float] = {}
    for line in out.stderr.splitlines():
        m = _IMPORT_LINE.match(line)
        if m:
            root = m.group(3).split(".")[0]
            totals[root] = totals.get(root, 0.0) + int(m.group(1)) / 1e6
    return sum(totals.values()), sorted(totals.items(), key=lambda kv: -kv[1])[:top]


def report(benchmark: str, metric: str, ours: float, peer: float, peer_name: str, unit: str = "") -> float:
    """Print ``benchmark  metric  okapi-kit=X  peer=Y  ratio=Z.ZZZx`` and return ours/peer."""
    ratio = ours / peer if peer else float("inf")
    print(f"{benchmark:<16}{metric:<14}okapi-kit={ours:.4g}{unit:<4} {peer_name}={peer:.4g}{unit:<4} "
          f"ratio={ratio:.3f}x", flush=True)
    return ratio
