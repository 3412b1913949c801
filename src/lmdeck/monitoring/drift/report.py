"""Drift reports: one route's traffic in a current window against a reference window.

    monitor = DriftMonitor(db, redact="none")
    report = monitor.report(DriftScope(route="demo", windows=Windows.trailing(reference="7d", current="1d",
                                                                              until=time.time())))
    report.verdict, report.p_value, [(t.name, t.p_value) for t in report.tests], report.clusters

    monitor.drift_p_value("demo", "7d", "1d")      # the report's p-value alone: a signal for alert rules

Every method blocks (database reads, embeddings, permutation tests): call it from a worker thread or a
service loop, never the event loop. :meth:`DriftMonitor.analyze` takes samples already read (the API
reads them in the analytics pool), :meth:`DriftMonitor.report` reads them itself.

A report is bounded: at most ``max_samples`` traces per window (see
:mod:`lmdeck.monitoring.drift.samples`), so at most ``2 * max_samples`` prompts and as many answers are
embedded, one ``(2 * max_samples)²`` kernel matrix is held, and each permutation test costs
``permutations`` matrix-vector products with it.

The verdict: each test's p-value is adjusted for the number of tests that ran (Holm's step-down
method, :func:`holm`), so the chance of a false alarm over the
whole report stays at ``alpha``. ``drift`` when any adjusted p-value is below ``alpha``;
``insufficient_data`` when no test had enough samples (at least ``min_samples`` per window).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from lmdeck.db import Database
from lmdeck.monitoring.drift.embedder import PromptEmbedder
from lmdeck.monitoring.drift.registry import DriftData, DriftTestRegistry
from lmdeck.monitoring.drift.samples import DEFAULT_MAX_SAMPLES, DriftSamples, DriftScope, WindowSample, fetch_samples
from lmdeck.monitoring.drift.windows import Windows
from lmdeck.protocol.drift import DriftReport, DriftTestResult, Verdict, WindowSummary

log = logging.getLogger(__name__)

Embed = Callable[[list[str]], NDArray[np.float64]]

DEFAULT_ALPHA = 0.01
DEFAULT_MIN_SAMPLES = 20
#: Permutations of the permutation tests: the smallest p-value they can give is 1 / (1 + 999) = 0.001.
DEFAULT_PERMUTATIONS = 999


@dataclass(frozen=True)
class DriftOptions:
    """How a report tests: ``alpha`` (family-wise), least samples per window, permutations, the seed of
    every random choice (permutations, folds, k-means), clusters shown, and the tests (None: the defaults)."""

    alpha: float = DEFAULT_ALPHA
    min_samples: int = DEFAULT_MIN_SAMPLES
    permutations: int = DEFAULT_PERMUTATIONS
    seed: int = 0
    clusters: int = 3
    tests: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be between 0 and 1, got {self.alpha}")
        if self.min_samples < 2:
            raise ValueError(f"min_samples must be 2 or more, got {self.min_samples}")
        if not 99 <= self.permutations <= 9999:
            raise ValueError(f"permutations must be between 99 and 9999, got {self.permutations}")


def _summary(sample: WindowSample) -> WindowSummary:
    return WindowSummary(
        since=sample.window.since,
        until=sample.window.until,
        total=sample.total,
        sampled=sample.sampled,
        prompts=len(sample.prompts),
        answers=len(sample.answers),
        prompt_versions=sample.prompt_versions,
    )


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979, "A simple sequentially rejective multiple test
    procedure"), in the order given: the i-th smallest p-value times ``m - i + 1`` (i from 1), made
    non-decreasing in that order and capped at 1. Rejecting where the adjusted value is under alpha
    keeps the family-wise error rate at alpha.

    >>> holm([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    """
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def _adjust(results: list[DriftTestResult], alpha: float) -> float | None:
    """Fill in the Holm-adjusted p-values and drift flags; the smallest adjusted p-value (None: none ran)."""
    ran = [r for r in results if r.p_value is not None]
    if not ran:
        return None
    adjusted = holm([r.p_value for r in ran if r.p_value is not None])
    for result, value in zip(ran, adjusted, strict=True):
        result.adjusted_p_value = float(value)
        result.drift = bool(value < alpha)
    return float(min(adjusted))


@dataclass
class DriftMonitor:
    """Drift reports and the drift signal over one database's traces (blocking; thread-safe)."""

    db: Database
    redact: str = "none"
    embed: Embed | None = field(default_factory=PromptEmbedder.installed)
    tests: DriftTestRegistry | None = None

    def registry(self) -> DriftTestRegistry:
        """The drift tests, loaded on first use (the built-ins import scikit-learn)."""
        if self.tests is None:
            from lmdeck.monitoring.drift.loading import load_drift_tests

            self.tests = load_drift_tests()
        return self.tests

    @property
    def embedding_model(self) -> str | None:
        """The embedding model's name (None: no embeddings, so the embedding tests are skipped)."""
        return getattr(self.embed, "model_name", None if self.embed is None else type(self.embed).__name__)

    def _vectors(
        self, reference: Sequence[tuple[str, str]], current: Sequence[tuple[str, str]]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
        if self.embed is None or not reference or not current:
            return None
        vectors = self.embed([text for _, text in reference] + [text for _, text in current])
        return vectors[: len(reference)], vectors[len(reference) :]

    def analyze(self, samples: DriftSamples, options: DriftOptions | None = None) -> DriftReport:
        """The report over ``samples`` (a ``KeyError`` naming the choices for an unknown test name)."""
        options = options or DriftOptions()
        began = time.perf_counter()
        chosen = self.registry().select(options.tests)
        ref, cur = samples.reference, samples.current
        prompt_vectors = self._vectors(ref.prompts, cur.prompts)
        answer_vectors = (
            self._vectors(ref.answers, cur.answers) if any(t.name == "output_centroid" for t in chosen) else None
        )
        data = DriftData(
            samples=samples,
            prompt_vectors=prompt_vectors,
            answer_vectors=answer_vectors,
            min_samples=options.min_samples,
            permutations=options.permutations,
            seed=options.seed,
        )
        results = [result for test in chosen for result in test.run(data)]
        p_value = _adjust(results, options.alpha)
        verdict: Verdict = (
            "insufficient_data" if p_value is None else "drift" if p_value < options.alpha else "no_drift"
        )
        show_text = self.redact == "none"
        from lmdeck.monitoring.drift.clusters import new_clusters

        clusters = (
            new_clusters(*prompt_vectors, cur.prompts, top=options.clusters, seed=options.seed, show_text=show_text)
            if prompt_vectors is not None and min(len(ref.prompts), len(cur.prompts)) >= options.min_samples
            else []
        )
        scope = samples.scope
        notes = [
            f"each window is a uniform sample of at most {scope.max_samples} traces "
            f"(reference: {ref.sampled} of {ref.total}, current: {cur.sampled} of {cur.total})",
            f"p-values are Holm-adjusted over the {sum(r.p_value is not None for r in results)} tests that ran",
        ]
        if not show_text:
            notes.append(f"examples show trace ids only: tracing.redact is {self.redact!r}")
        return DriftReport(
            route=scope.route,
            prompt=scope.prompt_name,
            prompt_version=scope.prompt_version,
            reference=_summary(ref),
            current=_summary(cur),
            alpha=options.alpha,
            verdict=verdict,
            p_value=p_value,
            tests=results,
            clusters=clusters,
            max_samples=scope.max_samples,
            embedding_model=self.embedding_model,
            redacted=not show_text,
            notes=notes,
            seconds=time.perf_counter() - began,
        )

    def report(self, scope: DriftScope, options: DriftOptions | None = None) -> DriftReport:
        """Read both windows' samples, then :meth:`analyze` them."""
        began = time.perf_counter()
        report = self.analyze(fetch_samples(self.db, scope), options)
        report.seconds = time.perf_counter() - began
        return report

    def drift_p_value(
        self,
        route: str,
        reference: str | float,
        current: str | float,
        *,
        now: float | None = None,
        prompt_version: int | None = None,
        max_samples: int = DEFAULT_MAX_SAMPLES,
        options: DriftOptions | None = None,
    ) -> float | None:
        """The smallest Holm-adjusted p-value of ``route``'s drift report: the current window (a duration
        such as ``1d``, ending at ``now``) against the ``reference`` duration before it; None when no test
        had enough samples. Small means drift: fire below a level such as 0.01.

        Blocking (seconds: embeddings and permutation tests); every team's traces.
        """
        windows = Windows.trailing(reference=reference, current=current, until=time.time() if now is None else now)
        scope = DriftScope(route=route, windows=windows, prompt_version=prompt_version, max_samples=max_samples)
        return self.report(scope, options).p_value
