"""The statistics, checked against closed forms and (when installed) SciPy."""

from __future__ import annotations

import math
import random

import pytest

from lmdeck.evaluation import stats


@pytest.mark.parametrize("df", [1, 2, 5, 10, 29, 30, 120, 1000])
def test_t_critical_matches_tables(df: int) -> None:
    table = {1: 12.7062, 2: 4.3027, 5: 2.5706, 10: 2.2281, 29: 2.0452, 30: 2.0423, 120: 1.9799, 1000: 1.9623}
    assert stats.t_critical(df) == pytest.approx(table[df], abs=1e-4)


def test_t_p_values_against_scipy() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    for t, df in [(0.5, 3), (2.1, 7.5), (4.0, 40), (-1.3, 12)]:
        assert stats.t_two_sided_p(t, df) == pytest.approx(2 * scipy_stats.t.sf(abs(t), df), rel=1e-9)


def test_mean_interval_for_binary_scores_is_wilson() -> None:
    interval = stats.mean_interval([1.0] * 8 + [0.0] * 2)
    assert interval.method == "wilson"
    assert interval.mean == pytest.approx(0.8)
    # Wilson 95% for 8/10: [0.4902, 0.9433]
    assert (interval.low, interval.high) == pytest.approx((0.4902, 0.9433), abs=1e-4)


def test_mean_interval_for_continuous_scores_is_t() -> None:
    values = [0.2, 0.4, 0.6, 0.8]
    interval = stats.mean_interval(values)
    sd = math.sqrt(sum((v - 0.5) ** 2 for v in values) / 3)
    half = 3.18245 * sd / 2
    assert interval.method == "t"
    assert (interval.low, interval.high) == pytest.approx((0.5 - half, 0.5 + half), abs=1e-4)


def test_mean_interval_edge_cases() -> None:
    assert stats.mean_interval([]).n == 0
    single = stats.mean_interval([0.3])
    assert single.low == single.high == 0.3
    all_right = stats.mean_interval([1.0] * 5)
    assert all_right.high == 1.0 and all_right.low < 1.0


def test_mcnemar_exact_p_value() -> None:
    # 10 rows flipped 0→1 and 2 flipped 1→0: p = 2 * P(X <= 2), X ~ Binomial(12, 0.5) = 0.0386
    a = [0] * 10 + [1] * 2 + [1] * 20
    b = [1] * 10 + [0] * 2 + [1] * 20
    result = stats.mcnemar(a, b)
    assert result.p_value == pytest.approx(2 * (1 + 12 + 66) / 4096)
    assert result.delta == pytest.approx(8 / 32)
    assert result.method == "mcnemar-exact"
    assert stats.mcnemar([1, 0], [1, 0]).p_value == 1.0


def test_paired_test_picks_mcnemar_for_binary_and_bootstrap_otherwise() -> None:
    assert stats.paired_test([0, 1, 1], [1, 1, 1]).method == "mcnemar-exact"
    assert stats.paired_test([0.2, 0.5], [0.3, 0.9]).method == "paired-bootstrap"


def test_paired_bootstrap_detects_a_real_shift_and_not_noise() -> None:
    rng = random.Random(7)
    a = [rng.random() for _ in range(200)]
    shifted = [min(1.0, x + 0.1 + rng.gauss(0, 0.05)) for x in a]
    noise = [min(1.0, max(0.0, x + rng.gauss(0, 0.05))) for x in a]
    real = stats.paired_bootstrap(a, shifted)
    assert real.p_value < 0.001 and real.low > 0.05
    null = stats.paired_bootstrap(a, noise)
    assert null.p_value > 0.05 and null.low < 0 < null.high


def test_paired_bootstrap_is_reproducible() -> None:
    a, b = [0.1, 0.5, 0.7, 0.2], [0.3, 0.4, 0.9, 0.6]
    assert stats.paired_bootstrap(a, b, seed=3) == stats.paired_bootstrap(a, b, seed=3)


def test_paired_tests_need_the_same_rows() -> None:
    with pytest.raises(ValueError, match="same rows"):
        stats.paired_test([1, 0], [1])


def test_welch_against_scipy() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = random.Random(1)
    xs = [rng.gauss(1.0, 1.0) for _ in range(30)]
    ys = [rng.gauss(1.6, 2.0) for _ in range(45)]
    a = b = stats.Moments()
    for x in xs:
        a = a.add(x)
    for y in ys:
        b = b.add(y)
    ours = stats.welch_test(a, b)
    theirs = scipy_stats.ttest_ind(ys, xs, equal_var=False)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-6)
    assert ours.delta == pytest.approx(sum(ys) / 45 - sum(xs) / 30)


def test_two_proportion_test() -> None:
    # 60/100 vs 40/100: z = 0.2 / sqrt(0.5 * 0.5 * 0.02) = 2.828, p = 0.00468
    result = stats.two_proportion_test(40, 100, 60, 100)
    assert result.delta == pytest.approx(0.2)
    assert result.p_value == pytest.approx(0.004678, abs=1e-5)
    assert stats.two_proportion_test(0, 0, 1, 1).p_value == 1.0
