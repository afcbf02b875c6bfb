"""Small helpers shared by the benchmarks: measure a callable, print one comparison line."""

from __future__ import annotations

import gc
import resource
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


def report(benchmark: str, metric: str, ours: float, peer: float, peer_name: str, unit: str = "") -> float:
    """Print ``benchmark  metric  okapi-kit=X  peer=Y  ratio=Z.ZZZx`` and return ours/peer."""
    ratio = ours / peer if peer else float("inf")
    print(f"{benchmark:<16}{metric:<14}okapi-kit={ours:.4g}{unit:<4} {peer_name}={peer:.4g}{unit:<4} "
          f"ratio={ratio:.3f}x", flush=True)
    return ratio
