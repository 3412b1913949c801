"""The statistics behind eval runs, comparisons and experiments, in plain Python.

* :func:`mean_interval`: a mean with its 95% confidence interval (Wilson for 0/1
  scores, Student's t otherwise);
* :func:`paired_test`: two runs scored on the same rows; McNemar's exact test when
  scores are 0/1, a paired bootstrap otherwise;
* :func:`welch_test` and :func:`two_proportion_test`: two independent groups (the
  variants of an experiment), from summary statistics.

>>> round(mcnemar([1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0]).p_value, 4)
0.0312
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

CONFIDENCE = 0.95
_Z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)


@dataclass(frozen=True)
class Interval:
    """A mean and its 95% confidence interval."""

    mean: float
    low: float
    high: float
    n: int
    method: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Difference:
    """A difference ``b - a``, its 95% interval, and the two-sided p-value that it is zero."""

    delta: float
    low: float
    high: float
    p_value: float
    n: int
    method: str

    def significant(self, alpha: float = 1 - CONFIDENCE) -> bool:
        return self.p_value < alpha

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_binary(values: Sequence[float]) -> bool:
    return all(v in (0.0, 1.0) for v in values)


# --- Student's t, through the regularised incomplete beta function -----------------


def _beta_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction for the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        step = d * c
        h *= step
        if abs(step - 1.0) < 3e-15:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom."""
    if math.isinf(t):
        return 0.0
    if df <= 0:
        return 1.0
    return min(1.0, incomplete_beta(df / 2.0, 0.5, df / (df + t * t)))


def t_critical(df: float, confidence: float = CONFIDENCE) -> float:
    """The t value leaving ``1 - confidence`` in both tails together."""
    alpha = 1.0 - confidence
    low, high = 0.0, 1.0
    while t_two_sided_p(high, df) > alpha:
        high *= 2.0
    for _ in range(100):
        mid = (low + high) / 2.0
        if t_two_sided_p(mid, df) > alpha:
            low = mid
        else:
            high = mid
    return (low + high) / 2.0


# --- one sample -----------------------------------------------------------------------


def wilson_interval(successes: float, n: int) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1.0 + _Z**2 / n
    centre = (p + _Z**2 / (2 * n)) / denominator
    half = _Z * math.sqrt(p * (1 - p) / n + _Z**2 / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_interval(values: Sequence[float]) -> Interval:
    """The mean of scores with its 95% confidence interval.

    >>> mean_interval([1, 1, 0, 1]).method
    'wilson'
    """
    n = len(values)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, "empty")
    mean = math.fsum(values) / n
    if is_binary(values):
        low, high = wilson_interval(math.fsum(values), n)
        return Interval(mean, low, high, n, "wilson")
    if n == 1:
        return Interval(mean, mean, mean, 1, "t")
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_critical(n - 1) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, "t")


# --- paired samples -------------------------------------------------------------------


def mcnemar(a: Sequence[float], b: Sequence[float]) -> Difference:
    """McNemar's exact test for paired 0/1 scores: only the rows that flipped count."""
    _same_length(a, b)
    gained = sum(1 for x, y in zip(a, b, strict=True) if x < y)
    lost = sum(1 for x, y in zip(a, b, strict=True) if x > y)
    flipped = gained + lost
    if flipped == 0:
        p = 1.0
    else:
        tail = sum(math.comb(flipped, k) for k in range(min(gained, lost) + 1)) / 2.0**flipped
        p = min(1.0, 2.0 * tail)
    n = len(a)
    delta = (gained - lost) / n if n else 0.0
    # Interval for a difference of paired proportions (Wald, as in Agresti's textbook).
    if n:
        var = ((gained + lost) / n - delta**2) / n
        half = _Z * math.sqrt(max(var, 0.0))
    else:
        half = 0.0
    return Difference(delta, delta - half, delta + half, p, n, "mcnemar-exact")


def paired_bootstrap(a: Sequence[float], b: Sequence[float], *, resamples: int = 4000, seed: int = 0) -> Difference:
    """Paired bootstrap of the mean difference ``b - a`` (percentile interval, centred p-value)."""
    _same_length(a, b)
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    n = len(diffs)
    if n == 0:
        return Difference(0.0, 0.0, 0.0, 1.0, 0, "paired-bootstrap")
    observed = math.fsum(diffs) / n
    rng = random.Random(seed)
    means = sorted(math.fsum(rng.choices(diffs, k=n)) / n for _ in range(resamples))
    low = means[int(0.025 * (resamples - 1))]
    high = means[math.ceil(0.975 * (resamples - 1))]
    # How often a resample lies as far from the observed mean as the observed mean lies from 0:
    # the bootstrap distribution shifted to the null hypothesis of no difference.
    extreme = sum(1 for m in means if abs(m - observed) >= abs(observed) - 1e-12)
    p = 1.0 if observed == 0.0 else (extreme + 1) / (resamples + 1)
    return Difference(observed, low, high, min(1.0, p), n, "paired-bootstrap")


def paired_test(a: Sequence[float], b: Sequence[float], *, seed: int = 0) -> Difference:
    """McNemar for 0/1 scores, a paired bootstrap for anything else."""
    if is_binary(a) and is_binary(b):
        return mcnemar(a, b)
    return paired_bootstrap(a, b, seed=seed)


def _same_length(a: Sequence[float], b: Sequence[float]) -> None:
    if len(a) != len(b):
        raise ValueError(f"paired scores need the same rows: {len(a)} and {len(b)} values")


# --- independent groups (experiment variants) -----------------------------------------


@dataclass(frozen=True)
class Moments:
    """Running count, sum and sum of squares: enough for a mean and a variance."""

    n: int = 0
    total: float = 0.0
    squares: float = 0.0

    def add(self, value: float) -> Moments:
        return Moments(self.n + 1, self.total + value, self.squares + value * value)

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        if self.n < 2:
            return math.nan
        return max(0.0, (self.squares - self.total * self.total / self.n) / (self.n - 1))


def welch_test(a: Moments, b: Moments) -> Difference:
    """Welch's t-test for ``mean(b) - mean(a)`` from running moments."""
    n = a.n + b.n
    if a.n < 2 or b.n < 2:
        delta = b.mean - a.mean if a.n and b.n else math.nan
        return Difference(delta, math.nan, math.nan, 1.0, n, "welch-t")
    delta = b.mean - a.mean
    va, vb = a.variance / a.n, b.variance / b.n
    se = math.sqrt(va + vb)
    if se == 0.0:
        return Difference(delta, delta, delta, 1.0 if delta == 0 else 0.0, n, "welch-t")
    df = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
    t = delta / se
    half = t_critical(df) * se
    return Difference(delta, delta - half, delta + half, t_two_sided_p(t, df), n, "welch-t")


def two_proportion_test(successes_a: float, n_a: int, successes_b: float, n_b: int) -> Difference:
    """Two-sided z-test for ``p_b - p_a`` (pooled under the null, unpooled for the interval)."""
    n = n_a + n_b
    if n_a == 0 or n_b == 0:
        return Difference(math.nan, math.nan, math.nan, 1.0, n, "two-proportion-z")
    pa, pb = successes_a / n_a, successes_b / n_b
    delta = pb - pa
    pooled = (successes_a + successes_b) / n
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    p = 1.0 if se0 == 0 else 2.0 * (1.0 - NormalDist().cdf(abs(delta) / se0))
    se = math.sqrt(pa * (1 - pa) / n_a + pb * (1 - pb) / n_b)
    return Difference(delta, delta - _Z * se, delta + _Z * se, min(1.0, p), n, "two-proportion-z")
