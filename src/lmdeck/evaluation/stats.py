"""The statistics behind eval runs and comparisons, computed with scipy.

* :func:`mean_interval`: a mean with its confidence interval (Wilson for 0/1 scores, Student's t
  clipped to the scores' range [0, 1] otherwise; "undefined" when the data cannot give one);
* :func:`paired_test`: two runs scored on the same rows; McNemar's exact test with an
  exact-conditional interval for 0/1 scores, otherwise a sign-flip permutation test (exact at
  small n) with a t interval below :data:`BOOTSTRAP_MIN_N` changed rows and a BCa bootstrap
  interval from there;
* :class:`Moments`, :func:`welch_test`, :func:`two_proportion_test`: two independent groups
  (the variants of an experiment) from summary statistics, for a fixed-horizon design; the
  sequential tests read repeatedly live in :mod:`lmdeck.evaluation.sequential`.

An interval that the data cannot give (no rows, one value, all values equal, no row flipped)
has ``low`` and ``high`` set to None and ``method`` ending in ``-undefined``: a zero-width
interval would claim certainty that the data do not hold.

>>> round(mcnemar([1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0]).p_value, 4)
0.0312
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

CONFIDENCE = 0.95
#: Scores of lmdeck's evaluators lie in this range (docs/evaluation.md): intervals are clipped to it.
SCORE_RANGE = (0.0, 1.0)
#: Below this many changed rows a paired comparison of non-0/1 scores uses a t interval; from here on
#: a BCa bootstrap interval. The p-value is a sign-flip permutation test at every size.
BOOTSTRAP_MIN_N = 30
#: Up to this many changed rows the permutation test enumerates every sign pattern (an exact p-value).
EXACT_PERMUTATION_MAX_N = 14
PERMUTATION_RESAMPLES = 9999
BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    """A mean and its confidence interval (``low``/``high`` None when undefined)."""

    mean: float
    low: float | None
    high: float | None
    n: int
    method: str
    confidence: float = CONFIDENCE

    @property
    def defined(self) -> bool:
        return self.low is not None and self.high is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Difference:
    """A difference ``b - a``, its interval (None when undefined), and the two-sided p-value that it is zero.

    ``n`` counts the observations (paired rows, or both groups together); ``informative`` the rows that
    carry evidence about the difference (paired rows whose scores differ).
    """

    delta: float
    low: float | None
    high: float | None
    p_value: float
    n: int
    method: str
    confidence: float = CONFIDENCE
    informative: int | None = None

    @property
    def defined(self) -> bool:
        return self.low is not None and self.high is not None

    def significant(self, alpha: float = 1 - CONFIDENCE) -> bool:
        return self.p_value < alpha

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_binary(values: Sequence[float]) -> bool:
    return all(v in (0.0, 1.0) for v in values)


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        return 1.0
    return float(min(1.0, 2.0 * scipy_stats.t.sf(abs(t), df)))


def t_critical(df: float, confidence: float = CONFIDENCE) -> float:
    """The t value leaving ``1 - confidence`` in both tails together."""
    return float(scipy_stats.t.ppf(0.5 + confidence / 2.0, df))


def _clip(low: float, high: float, bounds: tuple[float, float] | None) -> tuple[float, float]:
    if bounds is None:
        return low, high
    return max(bounds[0], low), min(bounds[1], high)


# --- one sample -----------------------------------------------------------------------


def wilson_interval(successes: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval for a proportion (scipy); (0, 1) without observations."""
    if n == 0:
        return 0.0, 1.0
    ci = scipy_stats.binomtest(round(successes), n).proportion_ci(confidence_level=confidence, method="wilson")
    return max(0.0, float(ci.low)), min(1.0, float(ci.high))


def mean_interval(
    values: Sequence[float], *, bounds: tuple[float, float] | None = SCORE_RANGE, confidence: float = CONFIDENCE
) -> Interval:
    """The mean of scores with its confidence interval.

    0/1 scores get Wilson's interval (never outside [0, 1], never zero width); other scores a
    Student's t interval clipped to ``bounds`` (pass None for unbounded values). One value, or
    values all equal, give an undefined interval (``low``/``high`` None).

    >>> mean_interval([1, 1, 0, 1]).method
    'wilson'
    >>> mean_interval([1, 1, 1, 0.2]).high
    1.0
    """
    n = len(values)
    if n == 0:
        return Interval(math.nan, None, None, 0, "undefined", confidence)
    mean = math.fsum(values) / n
    if is_binary(values):
        low, high = wilson_interval(math.fsum(values), n, confidence)
        return Interval(mean, low, high, n, "wilson", confidence)
    if min(values) == max(values):
        return Interval(mean, None, None, n, "t-undefined", confidence)
    spread = float(np.std(np.asarray(values, dtype=float), ddof=1))
    if spread == 0.0:
        return Interval(mean, None, None, n, "t-undefined", confidence)
    half = t_critical(n - 1, confidence) * spread / math.sqrt(n)
    low, high = _clip(mean - half, mean + half, bounds)
    return Interval(mean, low, high, n, "t" if bounds is None else "t-clipped", confidence)


# --- paired samples -------------------------------------------------------------------


def mcnemar(a: Sequence[float], b: Sequence[float], *, confidence: float = CONFIDENCE) -> Difference:
    """McNemar's exact test for paired 0/1 scores: only the rows that flipped count.

    The interval is built from the exact test: the Clopper-Pearson interval of the share of flips
    that were gains (the quantity the exact test is about), turned into a difference of proportions
    with the Wilson interval of the rate of flips, taking the end of that interval that widens each
    bound. It excludes 0 exactly when the exact test rejects at ``1 - confidence``, keeps its width
    when every flip goes one way, and without any flip still bounds the difference by how many rows
    could have flipped unseen.
    """
    _same_length(a, b)
    gained = sum(1 for x, y in zip(a, b, strict=True) if x < y)
    lost = sum(1 for x, y in zip(a, b, strict=True) if x > y)
    flipped = gained + lost
    n = len(a)
    if n == 0:
        return Difference(0.0, None, None, 1.0, 0, "mcnemar-exact-undefined", confidence, 0)
    delta = (gained - lost) / n
    rate_low, rate_high = wilson_interval(flipped, n, confidence)
    if flipped == 0:
        return Difference(delta, -rate_high, rate_high, 1.0, n, "mcnemar-exact", confidence, 0)
    test = scipy_stats.binomtest(gained, flipped, 0.5)
    share = test.proportion_ci(confidence_level=confidence, method="exact")
    low_edge, high_edge = 2.0 * share.low - 1.0, 2.0 * share.high - 1.0
    low = low_edge * (rate_high if low_edge < 0 else rate_low)
    high = high_edge * (rate_high if high_edge > 0 else rate_low)
    return Difference(delta, low, high, min(1.0, float(test.pvalue)), n, "mcnemar-exact", confidence, flipped)


def _mean_statistic(d: Any, axis: int = -1) -> Any:
    return np.mean(d, axis=axis)


def paired_permutation(
    a: Sequence[float],
    b: Sequence[float],
    *,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    bounds: tuple[float, float] = (-1.0, 1.0),
) -> Difference:
    """The mean difference ``b - a`` of paired scores, tested by sign flips (scipy).

    Under the null hypothesis each row's difference is as likely to have either sign. Rows with
    equal scores carry no evidence and do not count; with at most :data:`EXACT_PERMUTATION_MAX_N`
    changed rows every sign pattern is enumerated (an exact p-value: one improved row gives
    p = 1, five give p = 2/32 = 0.0625), beyond that :data:`PERMUTATION_RESAMPLES` random patterns.

    Interval (``bounds``: the range of one row's difference): below :data:`BOOTSTRAP_MIN_N`
    changed rows, the inversion of the same sign-flip test on the changed rows (every shift it does
    not reject, scaled by the share of changed rows), so it excludes 0 exactly when the test
    rejects; from there on, a BCa bootstrap of the mean difference. Undefined when nothing changed.
    """
    _same_length(a, b)
    diffs = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    n = len(diffs)
    changed = diffs[diffs != 0.0]
    m = len(changed)
    observed = float(np.mean(diffs)) if n else 0.0
    if m == 0:
        return Difference(observed, None, None, 1.0, n, "sign-flip-undefined", confidence, 0)
    rng = np.random.default_rng(seed)
    exact = m <= EXACT_PERMUTATION_MAX_N
    method = "sign-flip-exact" if exact else "sign-flip-permutation"
    if m == 1:
        p = 1.0  # two sign patterns, both as extreme as the one observed
    else:
        test = scipy_stats.permutation_test(
            (changed,),
            _mean_statistic,
            permutation_type="samples",
            vectorized=True,
            n_resamples=math.inf if exact else PERMUTATION_RESAMPLES,
            rng=rng,
        )
        p = min(1.0, float(test.pvalue))
    if m < BOOTSTRAP_MIN_N:
        low, high = _sign_flip_interval(changed, 1.0 - confidence, bounds, rng)
        scale = m / n
        return Difference(observed, low * scale, high * scale, p, n, f"{method}+inverted", confidence, m)
    boot = scipy_stats.bootstrap(
        (diffs,),
        _mean_statistic,
        vectorized=True,
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=confidence,
        method="BCa",
        rng=rng,
    )
    low, high = _clip(float(boot.confidence_interval.low), float(boot.confidence_interval.high), bounds)
    return Difference(observed, low, high, p, n, f"{method}+bootstrap-bca", confidence, m)


def _sign_flip_interval(
    changed: Any, alpha: float, bounds: tuple[float, float], rng: np.random.Generator
) -> tuple[float, float]:
    """The shifts ``theta`` that a sign-flip test of ``changed - theta`` does not reject at ``alpha``."""
    m = len(changed)
    if m <= EXACT_PERMUTATION_MAX_N:
        signs = 1.0 - 2.0 * ((np.arange(2**m)[:, None] >> np.arange(m)) & 1)
    else:
        signs = np.vstack([np.ones(m), rng.choice([-1.0, 1.0], size=(PERMUTATION_RESAMPLES, m))])

    def p_value(theta: float) -> float:
        shifted = changed - theta
        extreme = np.abs(signs @ shifted) >= abs(float(np.sum(shifted))) * (1 - 1e-12)
        return float(np.mean(extreme))

    centre = float(np.mean(changed))

    def edge(limit: float) -> float:
        if p_value(limit) >= alpha:
            return limit
        inside, outside = centre, limit
        for _ in range(30):  # the bound to within 1e-9 of the range
            mid = (inside + outside) / 2.0
            if p_value(mid) >= alpha:
                inside = mid
            else:
                outside = mid
        return inside

    return edge(bounds[0]), edge(bounds[1])


def paired_test(a: Sequence[float], b: Sequence[float], *, seed: int = 0) -> Difference:
    """McNemar's exact test for 0/1 scores, a sign-flip permutation test for anything else."""
    if is_binary(a) and is_binary(b):
        return mcnemar(a, b)
    return paired_permutation(a, b, seed=seed)


def _same_length(a: Sequence[float], b: Sequence[float]) -> None:
    if len(a) != len(b):
        raise ValueError(f"paired scores need the same rows: {len(a)} and {len(b)} values")


# --- independent groups (experiment variants) -----------------------------------------


@dataclass(frozen=True)
class Moments:
    """Count, mean and sum of squared deviations (``m2``) of a stream of values.

    Updated with Welford's recurrence and merged with Chan's formula, so that values far from
    zero (1e9 ± 1) keep their variance; sums of squares would cancel it away.

    >>> m = Moments().add(1e9 + 1).add(1e9 - 1)
    >>> m.variance
    2.0
    """

    n: int = 0
    mean_value: float = 0.0
    m2: float = 0.0

    def add(self, value: float) -> Moments:
        n = self.n + 1
        delta = value - self.mean_value
        mean = self.mean_value + delta / n
        return Moments(n, mean, self.m2 + delta * (value - mean))

    def merge(self, other: Moments) -> Moments:
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        delta = other.mean_value - self.mean_value
        mean = self.mean_value + delta * other.n / n
        return Moments(n, mean, self.m2 + other.m2 + delta * delta * self.n * other.n / n)

    @property
    def mean(self) -> float:
        return self.mean_value if self.n else math.nan

    @property
    def variance(self) -> float:
        """The sample variance (``n - 1`` denominator); NaN under two values."""
        if self.n < 2:
            return math.nan
        return max(0.0, self.m2 / (self.n - 1))


def welch_test(a: Moments, b: Moments, *, confidence: float = CONFIDENCE) -> Difference:
    """Welch's t-test for ``mean(b) - mean(a)`` from moments (fixed-horizon: read it once)."""
    n = a.n + b.n
    if a.n < 2 or b.n < 2:
        delta = b.mean - a.mean if a.n and b.n else math.nan
        return Difference(delta, None, None, 1.0, n, "welch-t-undefined", confidence, n)
    delta = b.mean - a.mean
    va, vb = a.variance / a.n, b.variance / b.n
    se = math.sqrt(va + vb)
    if se == 0.0:
        return Difference(delta, None, None, 1.0, n, "welch-t-undefined", confidence, n)
    df = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
    half = t_critical(df, confidence) * se
    return Difference(delta, delta - half, delta + half, t_two_sided_p(delta / se, df), n, "welch-t", confidence, n)


def two_proportion_test(
    successes_a: float, n_a: int, successes_b: float, n_b: int, *, confidence: float = CONFIDENCE
) -> Difference:
    """Two-sided z-test for ``p_b - p_a`` (pooled under the null) with Newcombe's hybrid score interval.

    Newcombe's interval combines the two Wilson intervals, so it stays inside [-1, 1] and keeps its
    width when a group is all 0 or all 1.
    """
    n = n_a + n_b
    if n_a == 0 or n_b == 0:
        return Difference(math.nan, None, None, 1.0, n, "two-proportion-z-undefined", confidence, n)
    pa, pb = successes_a / n_a, successes_b / n_b
    delta = pb - pa
    pooled = (successes_a + successes_b) / n
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    p = 1.0 if se0 == 0 else float(2.0 * scipy_stats.norm.sf(abs(delta) / se0))
    la, ua = wilson_interval(successes_a, n_a, confidence)
    lb, ub = wilson_interval(successes_b, n_b, confidence)
    low = delta - math.sqrt((pb - lb) ** 2 + (ua - pa) ** 2)
    high = delta + math.sqrt((ub - pb) ** 2 + (pa - la) ** 2)
    return Difference(delta, max(-1.0, low), min(1.0, high), min(1.0, p), n, "two-proportion-z", confidence, n)
