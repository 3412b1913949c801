"""Simulations of the statistics: type-I error near alpha and interval coverage near nominal.

Seeded and small (a few hundred replications): a bound of ``3 * sqrt(p * (1 - p) / reps)`` around
the nominal rate is the simulation error allowed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lmdeck.evaluation import stats

NOMINAL = 0.95


def _slack(p: float, reps: int) -> float:
    return 3.0 * math.sqrt(p * (1.0 - p) / reps)


def _covers(low: float | None, high: float | None, truth: float) -> bool:
    return low is not None and high is not None and low <= truth <= high


@pytest.mark.parametrize("n", [20, 100, 1000])
def test_wilson_coverage_for_0_1_scores(n: int) -> None:
    rng, reps, p = np.random.default_rng(n), 400, 0.3
    hits = 0
    for _ in range(reps):
        values = (rng.random(n) < p).astype(float).tolist()
        interval = stats.mean_interval(values)
        hits += _covers(interval.low, interval.high, p)
    assert abs(hits / reps - NOMINAL) <= _slack(NOMINAL, reps) + 0.01, hits / reps


@pytest.mark.parametrize("n", [20, 100, 1000])
def test_bounded_t_coverage_for_scores_in_0_1(n: int) -> None:
    rng, reps = np.random.default_rng(n + 1), 400
    a, b = 2.0, 5.0  # Beta(2, 5) scores, mean 2/7
    hits = 0
    for _ in range(reps):
        interval = stats.mean_interval(rng.beta(a, b, n).tolist())
        hits += _covers(interval.low, interval.high, a / (a + b))
        assert interval.low is not None and interval.high is not None and 0.0 <= interval.low <= interval.high <= 1.0
    assert abs(hits / reps - NOMINAL) <= _slack(NOMINAL, reps) + 0.01, hits / reps


@pytest.mark.parametrize("n", [20, 100, 1000])
def test_two_proportion_newcombe_coverage(n: int) -> None:
    rng, reps, pa, pb = np.random.default_rng(n + 2), 400, 0.2, 0.35
    hits = 0
    for _ in range(reps):
        sa, sb = int(rng.binomial(n, pa)), int(rng.binomial(n, pb))
        result = stats.two_proportion_test(sa, n, sb, n)
        hits += _covers(result.low, result.high, pb - pa)
    assert hits / reps >= NOMINAL - _slack(NOMINAL, reps) - 0.01, hits / reps


def _paired_binary(rng: np.random.Generator, n: int, p01: float, p10: float) -> tuple[list[float], list[float]]:
    u = rng.random(n)
    a = np.where(u < p10, 1.0, np.where(u < p10 + p01, 0.0, np.where(u < 0.6, 1.0, 0.0)))
    b = np.where(u < p10, 0.0, np.where(u < p10 + p01, 1.0, a))
    return a.tolist(), b.tolist()


@pytest.mark.parametrize(("n", "reps"), [(20, 400), (100, 300), (1000, 150)])
def test_mcnemar_type_one_error_and_interval_coverage(n: int, reps: int) -> None:
    rng = np.random.default_rng(n + 3)
    rejections = hits = 0
    for _ in range(reps):
        a, b = _paired_binary(rng, n, 0.1, 0.1)
        result = stats.mcnemar(a, b)
        rejections += result.p_value < 0.05
        hits += _covers(result.low, result.high, 0.0)
    assert rejections / reps <= 0.05 + _slack(0.05, reps), rejections / reps
    assert hits / reps >= NOMINAL - _slack(NOMINAL, reps), hits / reps
    # and with a real difference, coverage of that difference
    hits = 0
    for _ in range(reps):
        a, b = _paired_binary(rng, n, 0.15, 0.05)
        result = stats.mcnemar(a, b)
        hits += _covers(result.low, result.high, 0.10)
    assert hits / reps >= NOMINAL - _slack(NOMINAL, reps) - 0.02, hits / reps


@pytest.mark.parametrize(("n", "reps"), [(8, 300), (20, 200), (100, 60)])
def test_paired_permutation_type_one_error_and_coverage(n: int, reps: int) -> None:
    """Sizes on both sides of the exact/Monte Carlo and inverted/bootstrap switches."""
    rng = np.random.default_rng(n + 4)
    rejections = hits = 0
    for seed in range(reps):
        a = rng.beta(2, 2, n)
        b = np.clip(a + rng.normal(0.0, 0.15, n), 0.0, 1.0)
        b = np.where(rng.random(n) < 0.5, b, a)  # half the rows unchanged, as often in evals
        sym = rng.random(n) < 0.5  # swap runs per row: a null hypothesis that holds exactly
        x, y = np.where(sym, a, b), np.where(sym, b, a)
        result = stats.paired_permutation(x.tolist(), y.tolist(), seed=seed)
        rejections += result.p_value < 0.05
        hits += _covers(result.low, result.high, 0.0)
    assert rejections / reps <= 0.05 + _slack(0.05, reps), rejections / reps
    assert hits / reps >= NOMINAL - _slack(NOMINAL, reps) - 0.01, hits / reps
