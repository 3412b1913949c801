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


def test_mean_interval_for_continuous_scores_is_t_clipped_to_the_score_range() -> None:
    values = [0.2, 0.4, 0.6, 0.8]
    interval = stats.mean_interval(values)
    sd = math.sqrt(sum((v - 0.5) ** 2 for v in values) / 3)
    half = 3.18245 * sd / 2
    assert interval.method == "t-clipped"
    assert (interval.low, interval.high) == pytest.approx((max(0.0, 0.5 - half), 0.5 + half), abs=1e-4)
    # An unclipped t interval would reach 1.436 here: a score cannot.
    bounded = stats.mean_interval([1, 1, 1, 0.2])
    assert bounded.high == 1.0 and bounded.low is not None and 0.0 <= bounded.low < 0.8
    unbounded = stats.mean_interval([1, 1, 1, 0.2], bounds=None)
    assert unbounded.method == "t" and unbounded.high == pytest.approx(1.436, abs=1e-3)


def test_degenerate_data_give_undefined_intervals_never_zero_width() -> None:
    for values in ([], [0.3], [0.4] * 5):
        interval = stats.mean_interval(values)
        assert interval.low is None and interval.high is None and not interval.defined, values
    # 0/1 scores all equal still have a proper (Wilson) interval.
    all_right = stats.mean_interval([1.0] * 5)
    assert all_right.high == 1.0 and all_right.low is not None and all_right.low < 1.0
    single = stats.mean_interval([1.0])
    assert single.low is not None and single.low < 0.25
    # No row flipped: the difference is still bounded by how many rows could have flipped unseen.
    unchanged = stats.mcnemar([1, 0, 1], [1, 0, 1])
    assert unchanged.p_value == 1.0 and unchanged.low is not None and unchanged.high is not None
    assert unchanged.low < 0 < unchanged.high
    same_shift = stats.paired_permutation([0.2, 0.3, 0.4], [0.3, 0.4, 0.5])
    assert same_shift.p_value == 0.25 and same_shift.low is not None and same_shift.high is not None
    assert same_shift.low < 0 < same_shift.high and same_shift.high > same_shift.low
    assert not stats.welch_test(stats.Moments(3, 5.0, 0.0), stats.Moments(3, 5.0, 0.0)).defined


def test_mcnemar_exact_p_value() -> None:
    # 10 rows flipped 0→1 and 2 flipped 1→0: p = 2 * P(X <= 2), X ~ Binomial(12, 0.5) = 0.0386
    a = [0] * 10 + [1] * 2 + [1] * 20
    b = [1] * 10 + [0] * 2 + [1] * 20
    result = stats.mcnemar(a, b)
    assert result.p_value == pytest.approx(2 * (1 + 12 + 66) / 4096)
    assert result.delta == pytest.approx(8 / 32)
    assert result.method == "mcnemar-exact" and result.informative == 12
    assert stats.mcnemar([1, 0], [1, 0]).p_value == 1.0


def test_mcnemar_interval_agrees_with_the_exact_test_and_has_width_when_all_flips_go_one_way() -> None:
    for gained, lost in [(10, 2), (9, 2), (6, 0), (5, 0), (30, 0), (3, 3), (40, 25)]:
        rows = 20 + gained + lost
        a = [0] * gained + [1] * lost + [1] * 20
        b = [1] * gained + [0] * lost + [1] * 20
        result = stats.mcnemar(a, b)
        assert result.low is not None and result.high is not None
        assert result.low < result.delta <= result.high or result.low <= result.delta < result.high
        excludes_zero = result.low > 0 or result.high < 0
        assert excludes_zero == (result.p_value < 0.05), (gained, lost, result)
        assert result.low >= -1.0 and result.high <= 1.0 and result.high - result.low > 0, rows


def test_paired_test_picks_mcnemar_for_binary_and_a_permutation_test_otherwise() -> None:
    assert stats.paired_test([0, 1, 1], [1, 1, 1]).method == "mcnemar-exact"
    assert stats.paired_test([0.2, 0.5], [0.3, 0.9]).method == "sign-flip-exact+inverted"
    rng = random.Random(2)
    a = [rng.random() for _ in range(60)]
    b = [min(1.0, x + rng.gauss(0.05, 0.1)) for x in a]
    assert stats.paired_test(a, b).method == "sign-flip-permutation+bootstrap-bca"


@pytest.mark.parametrize("improved", [1, 5])
@pytest.mark.parametrize("unchanged", [0, 95, 995])
def test_a_few_improved_rows_are_never_significant(improved: int, unchanged: int) -> None:
    """One improved row (p = 1) or five (exact p = 2/32 = 0.0625) cannot pass p<0.05, however many rows tie."""
    for low, high in [(0.0, 1.0), (0.4, 0.7)]:
        a = [low] * improved + [0.5] * unchanged
        b = [high] * improved + [0.5] * unchanged
        result = stats.paired_test(a, b)
        assert result.p_value >= 0.0625 - 1e-9, (improved, unchanged, result)
        assert result.low is None or result.low <= 0.0, result


def test_paired_permutation_detects_a_real_shift_and_not_noise() -> None:
    rng = random.Random(7)
    a = [rng.random() for _ in range(200)]
    shifted = [min(1.0, x + 0.1 + rng.gauss(0, 0.05)) for x in a]
    noise = [min(1.0, max(0.0, x + rng.gauss(0, 0.05))) for x in a]
    real = stats.paired_permutation(a, shifted)
    assert real.p_value < 0.001 and real.low is not None and real.low > 0.05
    null = stats.paired_permutation(a, noise)
    assert null.p_value > 0.05 and null.low is not None and null.high is not None and null.low < 0 < null.high


def test_paired_permutation_is_reproducible() -> None:
    rng = random.Random(3)
    a = [rng.random() for _ in range(40)]
    b = [rng.random() for _ in range(40)]
    assert stats.paired_permutation(a, b, seed=3) == stats.paired_permutation(a, b, seed=3)


def test_paired_tests_need_the_same_rows() -> None:
    with pytest.raises(ValueError, match="same rows"):
        stats.paired_test([1, 0], [1])


def _moments(values: list[float]) -> stats.Moments:
    m = stats.Moments()
    for v in values:
        m = m.add(v)
    return m


def test_welch_against_scipy() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = random.Random(1)
    xs = [rng.gauss(1.0, 1.0) for _ in range(30)]
    ys = [rng.gauss(1.6, 2.0) for _ in range(45)]
    ours = stats.welch_test(_moments(xs), _moments(ys))
    theirs = scipy_stats.ttest_ind(ys, xs, equal_var=False)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-6)
    assert ours.delta == pytest.approx(sum(ys) / 45 - sum(xs) / 30)


def test_moments_keep_their_precision_far_from_zero() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = random.Random(5)
    xs = [1e9 + rng.choice((-1.0, 1.0)) for _ in range(200)]
    ys = [1e9 + 0.3 + rng.choice((-1.0, 1.0)) for _ in range(200)]
    a, b = _moments(xs), _moments(ys)
    assert a.variance == pytest.approx(statistics_variance(xs), rel=1e-6)
    theirs = scipy_stats.ttest_ind(ys, xs, equal_var=False)
    assert stats.welch_test(a, b).p_value == pytest.approx(theirs.pvalue, rel=1e-4)
    # Chan's merge of two halves equals one pass over everything.
    merged = _moments(xs[:77]).merge(_moments(xs[77:]))
    assert merged.n == 200 and merged.mean == pytest.approx(a.mean, rel=1e-15)
    assert merged.variance == pytest.approx(a.variance, rel=1e-6)


def statistics_variance(values: list[float]) -> float:
    import statistics

    return statistics.variance(values)


def test_two_proportion_test() -> None:
    # 60/100 vs 40/100: z = 0.2 / sqrt(0.5 * 0.5 * 0.02) = 2.828, p = 0.00468
    result = stats.two_proportion_test(40, 100, 60, 100)
    assert result.delta == pytest.approx(0.2)
    assert result.p_value == pytest.approx(0.004678, abs=1e-5)
    # Newcombe's hybrid score interval (Newcombe 1998, method 10), as statsmodels' method='newcomb' gives it.
    assert (result.low, result.high) == pytest.approx((0.06141, 0.32813), abs=1e-4)
    assert stats.two_proportion_test(0, 0, 1, 1).p_value == 1.0
    none_vs_all = stats.two_proportion_test(0, 5, 5, 5)
    assert none_vs_all.low is not None and none_vs_all.high == 1.0 and none_vs_all.low < 1.0
