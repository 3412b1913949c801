"""Two-sample tests on embeddings: is sample ``x`` drawn from the same distribution as sample ``y``?

    result = mmd_test(x, y, permutations=999, seed=0)        # x: [n, d], y: [m, d] float arrays
    result.statistic, result.p_value                          # MMD², its permutation p-value
    centroid_test(x, y, seed=0)                               # distance between the means, same machinery
    classifier_test(x, y, seed=0)                             # held-out accuracy of a classifier telling x from y

``mmd_test`` is the kernel two-sample test of Gretton et al., "A Kernel Two-Sample Test" (JMLR 13, 2012):
the squared maximum mean discrepancy with a Gaussian kernel whose bandwidth is the median pairwise
distance of the pooled sample (the paper's median heuristic), kernel matrix by scikit-learn's
``rbf_kernel``. Its p-value is a permutation test by :func:`scipy.stats.permutation_test` (the
sample labels shuffled ``permutations`` times; ``(b + 1) / (permutations + 1)``, so it is exact in
level and never 0). Each permutation's statistic is read off the one kernel matrix (a label vector
times the matrix), so the cost is one ``(n + m)²`` matrix and ``permutations`` matrix-vector products.

``centroid_test`` is the same test with the linear kernel, whose MMD² is the squared distance between
the two means: what "the centroid moved" means, with a p-value.

``classifier_test`` is the classifier two-sample test of Lopez-Paz and Oquab, "Revisiting Classifier
Two-Sample Tests" (ICLR 2017): scikit-learn's logistic regression fitted on half the pooled sample,
and a one-sided binomial test of its accuracy on the other half against chance
(:func:`scipy.stats.binomtest`). (Scoring cross-validated predictions instead was measured to raise
false alarms to 5% at a 1% level: their errors are not independent.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics.pairwise import euclidean_distances, linear_kernel, rbf_kernel
from sklearn.model_selection import train_test_split

Matrix = NDArray[np.float64]

DEFAULT_PERMUTATIONS = 999


@dataclass(frozen=True)
class TwoSampleResult:
    """A test's statistic and p-value (the probability of a statistic at least as large with no drift)."""

    statistic: float
    p_value: float


def _kernel_permutation_test(kernel: Matrix, n: int, permutations: int, seed: int) -> TwoSampleResult:
    """MMD² (biased form) of the first ``n`` rows against the rest, with its permutation p-value."""
    size = kernel.shape[0]
    m = size - n
    total = float(kernel.sum())

    def mmd2(a: NDArray[np.int64], b: NDArray[np.int64], axis: int = -1) -> NDArray[np.float64]:
        a2 = np.atleast_2d(a)
        labels = np.zeros((a2.shape[0], size))
        np.put_along_axis(labels, a2.astype(np.int64), 1.0, axis=1)
        within_x = np.einsum("bi,bi->b", labels @ kernel, labels)
        rest = 1.0 - labels
        within_y = np.einsum("bi,bi->b", rest @ kernel, rest)
        between = (total - within_x - within_y) / 2.0
        value = within_x / n**2 + within_y / m**2 - 2.0 * between / (n * m)
        return value if np.ndim(a) > 1 else value[0]

    result = stats.permutation_test(
        (np.arange(n), np.arange(n, size)),
        mmd2,
        permutation_type="independent",
        vectorized=True,
        n_resamples=permutations,
        alternative="greater",
        random_state=np.random.default_rng(seed),
        batch=64,
    )
    return TwoSampleResult(float(result.statistic), float(result.pvalue))


def median_bandwidth(pooled: Matrix) -> float:
    """The median distance between two distinct points of ``pooled`` (1.0 when they all coincide)."""
    distances = euclidean_distances(pooled)
    upper = distances[np.triu_indices_from(distances, k=1)]
    median = float(np.median(upper)) if upper.size else 0.0
    return median if median > 0 else 1.0


def mmd_test(x: Matrix, y: Matrix, *, permutations: int = DEFAULT_PERMUTATIONS, seed: int = 0) -> TwoSampleResult:
    """Gaussian-kernel MMD² of ``x`` against ``y`` with a permutation p-value (median-heuristic bandwidth)."""
    pooled = np.vstack([x, y]).astype(np.float64)
    sigma = median_bandwidth(pooled)
    kernel = rbf_kernel(pooled, gamma=1.0 / (2.0 * sigma**2))
    return _kernel_permutation_test(kernel, len(x), permutations, seed)


def centroid_test(x: Matrix, y: Matrix, *, permutations: int = DEFAULT_PERMUTATIONS, seed: int = 0) -> TwoSampleResult:
    """Squared distance between the means of ``x`` and ``y`` with a permutation p-value (linear-kernel MMD²)."""
    pooled = np.vstack([x, y]).astype(np.float64)
    return _kernel_permutation_test(linear_kernel(pooled), len(x), permutations, seed)


def classifier_test(x: Matrix, y: Matrix, *, seed: int = 0) -> TwoSampleResult:
    """Held-out accuracy of logistic regression telling ``x`` from ``y``, against chance (one-sided binomial).

    The classifier is fitted on a stratified half of the pooled sample and scored on the other half,
    so the held-out predictions are independent and the binomial test is exact. Chance is the larger
    class's share of the held-out half (always guessing it); the statistic is the held-out accuracy.
    """
    pooled = np.vstack([x, y]).astype(np.float64)
    labels = np.concatenate([np.zeros(len(x), dtype=np.int64), np.ones(len(y), dtype=np.int64)])
    fit_x, test_x, fit_y, test_y = train_test_split(pooled, labels, test_size=0.5, stratify=labels, random_state=seed)
    predicted = LogisticRegression(max_iter=1000).fit(fit_x, fit_y).predict(test_x)
    correct = int((predicted == test_y).sum())
    chance = max(float(test_y.mean()), 1.0 - float(test_y.mean()))
    test = stats.binomtest(correct, len(test_y), chance, alternative="greater")
    return TwoSampleResult(correct / len(test_y), float(test.pvalue))
