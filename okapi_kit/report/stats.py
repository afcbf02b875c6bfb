"""Interval estimates for the leaderboard: Wilson intervals for proportions, Newcombe's interval
for a difference of two proportions, cluster-aware standard errors and a paired bootstrap over
items.

Everything here works on plain numbers; numpy is imported only by the bootstrap.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054  # the two-sided 95% point of the standard normal


@dataclass(frozen=True)
class Interval:
    """A closed interval ``[low, high]``."""

    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def wilson_interval(successes: float, n: int, *, z: float = Z95) -> Interval:
    """The Wilson score interval for a proportion ``successes / n``.

    Unlike ``p ± z·se`` it stays inside [0, 1] and does not collapse to a point at 0 or 1
    (Wilson 1927; Brown, Cai & DasGupta 2001 recommend it for small n and extreme p).
    """
    if n <= 0:
        raise ValueError("a Wilson interval needs n > 0")
    if not 0 <= successes <= n:
        raise ValueError(f"successes {successes} outside [0, {n}]")
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def newcombe_interval(p_a: float, n_a: int, p_b: float, n_b: int, *, z: float = Z95) -> Interval:
    """Newcombe's hybrid score interval for ``p_b - p_a`` (two independent proportions), built
    from the two Wilson intervals (Newcombe 1998, method 10); never of zero width."""
    a = wilson_interval(p_a * n_a, n_a, z=z)
    b = wilson_interval(p_b * n_b, n_b, z=z)
    d = p_b - p_a
    return Interval(d - math.sqrt((p_b - b.low) ** 2 + (a.high - p_a) ** 2),
                    d + math.sqrt((b.high - p_b) ** 2 + (p_a - a.low) ** 2))


def newcombe_paired_interval(both: int, only_a: int, only_b: int, neither: int, *,
                             z: float = Z95) -> Interval:
    """Newcombe's interval for ``p_b - p_a`` when a and b were scored on the same items (paired
    0/1 outcomes: ``both`` right, ``only_a`` right, ``only_b`` right, ``neither``): the two
    Wilson intervals combined with the phi correlation of the pairs (Newcombe 1998, paired
    method 10). Unlike a bootstrap it does not collapse to a point when no item differs."""
    n = both + only_a + only_b + neither
    if n <= 0:
        raise ValueError("no items")
    right_a, right_b = both + only_a, both + only_b
    p_a, p_b = right_a / n, right_b / n
    a, b = wilson_interval(right_a, n, z=z), wilson_interval(right_b, n, z=z)
    margins = right_a * (only_b + neither) * right_b * (only_a + neither)
    phi = (both * neither - only_a * only_b) / math.sqrt(margins) if margins else 0.0
    d = p_b - p_a
    lower = (p_b - b.low, a.high - p_a)
    upper = (b.high - p_b, p_a - a.low)
    return Interval(d - math.sqrt(max(0.0, lower[0] ** 2 - 2 * phi * lower[0] * lower[1] + lower[1] ** 2)),
                    d + math.sqrt(max(0.0, upper[0] ** 2 - 2 * phi * upper[0] * upper[1] + upper[1] ** 2)))


def standard_error(values: Sequence[float]) -> float | None:
    """The standard error of the mean of independent ``values`` (sample sd / sqrt(k)); None
    for fewer than two values."""
    k = len(values)
    if k < 2:
        return None
    mean = sum(values) / k
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (k - 1) / k)


def cluster_standard_error(values: Sequence[float], clusters: Sequence[Hashable]) -> float | None:
    """The standard error of the mean of ``values`` when values of one cluster (e.g. the samples
    of one prompt) are not independent: the cluster-robust sandwich estimate with the G/(G-1)
    small-sample factor. With one value per cluster it equals :func:`standard_error`; None for
    fewer than two clusters."""
    if len(values) != len(clusters):
        raise ValueError("one cluster id per value")
    n = len(values)
    if n == 0:
        return None
    mean = sum(values) / n
    totals: dict[Hashable, float] = {}
    for v, c in zip(values, clusters):
        totals[c] = totals.get(c, 0.0) + (v - mean)
    g = len(totals)
    if g < 2:
        return None
    return math.sqrt(g / (g - 1) * sum(t * t for t in totals.values())) / n


def cluster_means(values: Sequence[float], clusters: Sequence[Hashable]) -> dict[Hashable, float]:
    """The mean value of each cluster: one value per independent unit, as ``Score.items`` wants
    (e.g. the share of a prompt's samples that pass)."""
    if len(values) != len(clusters):
        raise ValueError("one cluster id per value")
    sums: dict[Hashable, list[float]] = {}
    for v, c in zip(values, clusters):
        acc = sums.setdefault(c, [0.0, 0.0])
        acc[0] += v
        acc[1] += 1
    return {c: s / k for c, (s, k) in sums.items()}


def normal_interval(estimate: float, se: float, *, z: float = Z95) -> Interval:
    return Interval(estimate - z * se, estimate + z * se)


@dataclass(frozen=True)
class Bootstrap:
    """A paired bootstrap of ``mean(b - a)`` over the items both share."""

    mean: float  # the mean difference on the shared items
    low: float
    high: float
    se: float  # the standard deviation of the resampled means
    items: int  # how many shared items

    @property
    def interval(self) -> Interval:
        return Interval(self.low, self.high)


def paired_bootstrap(a: Mapping[str, float], b: Mapping[str, float], *, resamples: int = 2000,
                     seed: int = 0, level: float = 0.95) -> Bootstrap | None:
    """Percentile bootstrap interval of the mean paired difference ``b[i] - a[i]``, resampling
    the items both ``a`` and ``b`` have (with replacement); None for fewer than two shared items.

    Seeded, so the same data give the same interval. When the differences take few distinct
    values (0/1 items give -1, 0, 1) the resampled counts are drawn from a multinomial, which is
    the same distribution as resampling indices and much faster.
    """
    import numpy as np

    shared = sorted(a.keys() & b.keys())
    k = len(shared)
    if k < 2:
        return None
    if resamples < 10:
        raise ValueError("use at least 10 resamples")
    diffs = np.array([b[i] - a[i] for i in shared], dtype=float)
    rng = np.random.default_rng(seed)
    distinct, counts = np.unique(diffs, return_counts=True)
    if len(distinct) <= 64:
        draws = rng.multinomial(k, counts / k, size=resamples)
        means = draws @ distinct / k
    else:
        chunk = max(1, 2_000_000 // k)  # bounded memory for large item sets
        parts = []
        for start in range(0, resamples, chunk):
            idx = rng.integers(0, k, size=(min(chunk, resamples - start), k))
            parts.append(diffs[idx].mean(axis=1))
        means = np.concatenate(parts)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Bootstrap(mean=float(diffs.mean()), low=float(low), high=float(high),
                     se=float(means.std(ddof=1)), items=k)
