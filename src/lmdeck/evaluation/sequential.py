"""Always-valid tests for experiments that are read again and again (mixture SPRT).

An experiment's verdict is recomputed on every read. A fixed-horizon test read that way
declares false winners far more often than its alpha (the more looks, the more often). The
mixture sequential probability ratio test (mSPRT; Robbins 1970, Johari et al. 2017, "Always
valid inference") keeps its error guarantee at every look: for the difference ``theta`` of two
means, with the estimate ``d`` and its variance ``V`` (``var_a/n_a + var_b/n_b``), the
likelihood ratio mixed over ``theta ~ N(0, tau^2)`` is::

    L = sqrt(V / (V + tau^2)) * exp(tau^2 * d^2 / (2 * V * (V + tau^2)))

Under the null hypothesis L is a nonnegative martingale, so by Ville's inequality
``P(L ever >= 1/alpha) <= alpha``: the always-valid p-value ``min(1, 1/L)`` may be read at any
time, as often as wanted. Inverting it gives a confidence sequence: every ``theta`` whose
shifted ratio stays under ``1/alpha``, an interval that covers the true difference at all
times at once with probability ``1 - alpha``.

``tau`` is ``mixture_scale`` times the observations' pooled standard deviation: the
standardised effect the test is most sensitive to. The variances are estimated from the data
(the normal approximation behind the test), which is why experiments wait for ``min_samples``
observations per variant before a verdict.

>>> result = msprt(Moments(200, 0.10, 18.0), Moments(200, 0.30, 42.0), mixture_scale=0.2)
>>> result.p_value < 0.01, result.method
(True, 'msprt-normal-mixture')
"""

from __future__ import annotations

import math

from lmdeck.evaluation.stats import Difference, Moments

METHOD = "msprt-normal-mixture"
#: The default mixing scale, in units of the observations' standard deviation.
DEFAULT_MIXTURE_SCALE = 0.2


def _log_ratio(d: float, v: float, tau2: float) -> float:
    return 0.5 * math.log(v / (v + tau2)) + tau2 * d * d / (2.0 * v * (v + tau2))


def msprt(a: Moments, b: Moments, *, alpha: float = 0.05, mixture_scale: float = DEFAULT_MIXTURE_SCALE) -> Difference:
    """Always-valid test of ``mean(b) - mean(a)``: p-value and ``1 - alpha`` confidence sequence.

    ``a`` and ``b`` are the two groups' moments (for proportions, the 0/1 outcomes' moments). The
    interval is undefined (None) while either group has fewer than two observations or the data
    show no spread at all.
    """
    n = a.n + b.n
    if a.n < 2 or b.n < 2:
        delta = b.mean - a.mean if a.n and b.n else math.nan
        return Difference(delta, None, None, 1.0, n, f"{METHOD}-undefined", 1.0 - alpha, n)
    delta = b.mean - a.mean
    v = a.variance / a.n + b.variance / b.n
    if v <= 0.0:
        return Difference(delta, None, None, 1.0, n, f"{METHOD}-undefined", 1.0 - alpha, n)
    tau2 = (mixture_scale**2) * (a.variance + b.variance) / 2.0
    log_l = _log_ratio(delta, v, tau2)
    p = 1.0 if log_l <= 0 else min(1.0, math.exp(-log_l))
    # {theta : L(d - theta) < 1/alpha}: |d - theta| < half.
    half_sq = (2.0 * v * (v + tau2) / tau2) * (math.log(1.0 / alpha) + 0.5 * math.log((v + tau2) / v))
    half = math.sqrt(max(0.0, half_sq))
    return Difference(delta, delta - half, delta + half, p, n, METHOD, 1.0 - alpha, n)


def proportion_moments(successes: float, n: int) -> Moments:
    """The moments of ``n`` 0/1 outcomes with ``successes`` ones, smoothed so the variance is never 0.

    Adding one success and one failure (as Agresti and Caffo do) keeps an arm that has seen only
    failures so far from claiming a variance of zero, which would make any difference look certain.
    """
    if n == 0:
        return Moments()
    mean = successes / n
    smoothed = (successes + 1.0) / (n + 2.0)
    return Moments(n, mean, smoothed * (1.0 - smoothed) * (n - 1))
