"""The leaderboard's interval estimates against published and hand-computed values."""

from __future__ import annotations

import math
import random

import pytest

from okapi_kit.report.stats import (
    cluster_means,
    cluster_standard_error,
    newcombe_interval,
    newcombe_paired_interval,
    paired_bootstrap,
    standard_error,
    wilson_interval,
)


# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table II (Wilson
# score method without continuity correction), and the textbook 0/10 and 8/10 intervals
@pytest.mark.parametrize("x, n, low, high", [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
    (0, 10, 0.0, 0.2775),
    (8, 10, 0.4902, 0.9433),
])
def test_wilson_interval_matches_published_values(x, n, low, high):
    w = wilson_interval(x, n)
    assert (round(w.low, 4), round(w.high, 4)) == (low, high)


def test_wilson_interval_by_hand_and_never_collapses():
    # 0 of 10: centre = (z²/2n) / (1 + z²/n), half = z·sqrt(z²/4n²) / (1 + z²/n) = centre
    z2 = 1.959963984540054 ** 2
    centre = (z2 / 20) / (1 + z2 / 10)
    w = wilson_interval(0, 10)
    assert w.low == 0 and w.high == pytest.approx(2 * centre)
    for x in (0, 10):  # p = 0 and p = 1: the ±se interval would be a point
        w = wilson_interval(x, 10)
        assert w.high - w.low > 0.2
    assert wilson_interval(10, 10).low == pytest.approx(1 - wilson_interval(0, 10).high)
    with pytest.raises(ValueError):
        wilson_interval(1, 0)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_newcombe_interval_matches_published_values():
    # Newcombe (1998), "Interval estimation for the difference between independent proportions",
    # method 10: 56/70 - 48/80 and 5/56 - 0/29
    d = newcombe_interval(48 / 80, 80, 56 / 70, 70)
    assert (round(d.low, 4), round(d.high, 4)) == (0.0524, 0.3339)
    d = newcombe_interval(0 / 29, 29, 5 / 56, 56)
    assert (round(d.low, 4), round(d.high, 4)) == (-0.0381, 0.1926)
    same = newcombe_interval(1.0, 8, 1.0, 8)  # both perfect: still an interval around 0
    assert same.low < 0 < same.high


def test_newcombe_paired_interval_by_hand():
    # no item differs (1 right by both, 3 by neither): phi = 1, and with p_a = p_b = 1/4 each
    # limit is |(p - l) - (u - p)| for Wilson's (l, u) of 1/4, not zero
    w = wilson_interval(1, 4)
    half = abs((0.25 - w.low) - (w.high - 0.25))
    d = newcombe_paired_interval(1, 0, 0, 3)
    assert (d.low, d.high) == (pytest.approx(-half), pytest.approx(half)) and half > 0.2
    # uncorrelated pairs (phi = 0): the unpaired interval of the same two proportions
    unpaired = newcombe_interval(0.5, 4, 0.5, 4)
    paired = newcombe_paired_interval(1, 1, 1, 1)
    assert (paired.low, paired.high) == (pytest.approx(unpaired.low), pytest.approx(unpaired.high))
    # every item right for both: a margin is empty, phi is taken as 0, still an interval
    perfect = newcombe_paired_interval(8, 0, 0, 0)
    assert perfect.low == pytest.approx(-(1 - wilson_interval(8, 8).low)) and perfect.high > 0
    # positively correlated pairs give a narrower interval than independent samples would
    paired = newcombe_paired_interval(40, 2, 8, 50)
    unpaired = newcombe_interval(0.42, 100, 0.48, 100)
    assert paired.high - paired.low < unpaired.high - unpaired.low
    assert paired.low < 0.06 < paired.high


def test_standard_error_by_hand():
    # values 1, 2, 3, 4: mean 2.5, sample variance 5/3, se = sqrt(5/3 / 4)
    assert standard_error([1, 2, 3, 4]) == pytest.approx(math.sqrt(5 / 12))
    assert standard_error([0.5]) is None


def test_cluster_standard_error_counts_clusters_not_samples():
    # three samples of prompt a all pass, three of prompt b all fail: two independent units
    values = [1, 1, 1, 0, 0, 0]
    clusters = ["a", "a", "a", "b", "b", "b"]
    # by hand: mean 0.5; residual totals +1.5 and -1.5; var = 2/1 * (2.25 + 2.25) / 6² = 0.25
    assert cluster_standard_error(values, clusters) == pytest.approx(0.5)
    # the naive standard error treats the six samples as independent and is far smaller
    assert standard_error(values) == pytest.approx(math.sqrt(0.3 / 6))
    # the standard error of the two prompt means is the same 0.5
    means = cluster_means(values, clusters)
    assert means == {"a": 1.0, "b": 0.0}
    assert standard_error(list(means.values())) == pytest.approx(0.5)
    # one sample per cluster: the ordinary standard error
    assert cluster_standard_error([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(math.sqrt(5 / 12))
    assert cluster_standard_error([1, 0], ["a", "a"]) is None
    with pytest.raises(ValueError):
        cluster_standard_error([1, 0], ["a"])


def test_cluster_standard_error_with_unequal_clusters_by_hand():
    values, clusters = [1, 0, 1, 1, 0], ["a", "a", "b", "c", "c"]
    # mean 0.6; totals: a = 0.4 - 0.6 = -0.2, b = 0.4, c = 0.4 - 0.6 = -0.2
    expected = math.sqrt(3 / 2 * (0.04 + 0.16 + 0.04)) / 5
    assert cluster_standard_error(values, clusters) == pytest.approx(expected)


def _synthetic(k: int, p_a: float, p_b: float, seed: int) -> tuple[dict, dict]:
    """Paired 0/1 items: b is a's answer, except that some wrong answers become right."""
    rng = random.Random(seed)
    a, b = {}, {}
    for i in range(k):
        x = float(rng.random() < p_a)
        a[str(i)] = x
        b[str(i)] = 1.0 if x == 0 and rng.random() < (p_b - p_a) / (1 - p_a) else x
    return a, b


def test_paired_bootstrap_contains_the_true_difference_and_is_seeded():
    a, b = _synthetic(2000, 0.5, 0.6, seed=1)  # the true difference is 0.1
    boot = paired_bootstrap(a, b, resamples=2000, seed=7)
    assert boot.items == 2000
    assert boot.low < 0.1 < boot.high
    assert boot.mean == pytest.approx(sum(b.values()) / 2000 - sum(a.values()) / 2000)
    assert boot.low < boot.mean < boot.high
    # the width agrees with the normal approximation of paired differences
    diffs = [b[i] - a[i] for i in a]
    se = standard_error(diffs)
    assert boot.se == pytest.approx(se, rel=0.1)
    assert boot.high - boot.low == pytest.approx(2 * 1.96 * se, rel=0.1)
    assert paired_bootstrap(a, b, resamples=2000, seed=7) == boot  # the same seed, the same interval
    assert paired_bootstrap(a, b, resamples=2000, seed=8) != boot


def test_paired_bootstrap_coverage_is_about_95_percent():
    covered = 0
    for trial in range(200):
        a, b = _synthetic(300, 0.4, 0.5, seed=100 + trial)
        boot = paired_bootstrap(a, b, resamples=500, seed=trial)
        covered += boot.low <= 0.1 <= boot.high
    assert 0.88 <= covered / 200 <= 0.99


def test_paired_bootstrap_is_paired():
    # b = a + 0.01 on every item: independent samples could not tell them apart, pairs can
    rng = random.Random(3)
    a = {str(i): rng.random() for i in range(100)}
    b = {i: v + 0.01 for i, v in a.items()}
    boot = paired_bootstrap(a, b, resamples=500)
    assert boot.low == pytest.approx(0.01) and boot.high == pytest.approx(0.01)
    assert boot.interval.excludes_zero()


def test_paired_bootstrap_uses_shared_items_of_continuous_values():
    rng = random.Random(5)
    a = {str(i): rng.gauss(0, 1) for i in range(300)}  # many distinct differences: index resampling
    b = {i: v + rng.gauss(0.3, 1) for i, v in a.items() if int(i) % 3}
    boot = paired_bootstrap(a, b, resamples=1000, seed=1)
    assert boot.items == 200
    assert boot.low < 0.3 < boot.high
    assert paired_bootstrap({"x": 1.0}, {"x": 0.0}) is None  # one shared item: no interval
    assert paired_bootstrap({"x": 1.0}, {"y": 0.0}) is None
